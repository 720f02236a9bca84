"""The shell's own routes: the root's links, liveness, readiness and audit-chain
verification."""

from __future__ import annotations

from typing import Any

from flask import current_app
from flask.views import MethodView
from marshmallow import fields
from sqlalchemy import text

from app import metrics
from app.api import Blueprint, ResponseSchema
from app.db import unit_of_work
from app.errors import problem
from app.extensions import db
from app.log.keys import log_verifier
from app.log.verification import LogReport, verify_log
from app.parties.auth import require_role
from app.parties.models import Role

ops = Blueprint("operations", __name__,
                description="The root's links, liveness and readiness probes")
audit_blp = Blueprint("audit", __name__, url_prefix="/api/v1/audit",
                      description="The audit trail, verified against the evidence log")


class StatusSchema(ResponseSchema):
    status = fields.String()


class ChainReportSchema(ResponseSchema):
    valid = fields.Boolean()
    entries = fields.Integer()
    head_hash = fields.String(allow_none=True,
                              metadata={"description": "root of the latest checkpoint (hex)"})
    first_bad_entry = fields.Integer(allow_none=True, metadata={
        "description": "id of the first entry, in log order, that does not fit"})


class RootLinksSchema(ResponseSchema):
    docs = fields.String(metadata={"example": "/docs"})
    openapi = fields.String(metadata={"example": "/openapi.json"})
    health = fields.String(metadata={"example": "/healthz"})
    readiness = fields.String(metadata={"example": "/readyz"})
    api = fields.String(metadata={"example": "/api/v1"})


class RootSchema(ResponseSchema):
    name = fields.String()
    links = fields.Nested(RootLinksSchema)


@ops.route("/", operation_ids={"get": "getRoot"})
class Root(MethodView):
    @ops.response(200, RootSchema)
    def get(self) -> dict[str, Any]:
        """Where to start: the API explorer, the OpenAPI contract and the probes."""
        config = current_app.config
        prefix = config["OPENAPI_URL_PREFIX"].rstrip("/")
        return {"name": config["API_TITLE"], "links": {
            "docs": f"{prefix}/{config['OPENAPI_SWAGGER_UI_PATH']}",
            "openapi": f"{prefix}/{config['OPENAPI_JSON_PATH']}",
            "health": "/healthz", "readiness": "/readyz",
            "api": "/api/v1"}}


@ops.route("/healthz", operation_ids={"get": "checkLiveness"})
class Health(MethodView):
    @ops.response(200, StatusSchema)
    def get(self) -> dict[str, str]:
        """The process is up."""
        return {"status": "ok"}


@ops.route("/metrics", operation_ids={"get": "getMetrics"})
class Metrics(MethodView):
    @ops.doc(security=[], responses={"200": {
        "description": "Prometheus text exposition format",
        "content": {"text/plain": {"schema": {"type": "string"}}}}})
    @ops.alt_response(401, response="UNAUTHORIZED")
    @ops.alt_response(404, response="NOT_FOUND")
    # A wrong token counts as a failed authentication of the address.
    @ops.alt_response(429, response="TOO_MANY_REQUESTS")
    def get(self) -> Any:
        """Request rate and latency per route, and the exchange's business counts.

        For Prometheus, with `Authorization: Bearer <METRICS_TOKEN>`; unset in production,
        it is not served.
        """
        metrics.authorize_scrape()
        # Flask types the current_app proxy as Flask, which has no _get_current_object.
        return metrics.exposition(current_app._get_current_object())  # type: ignore[attr-defined]


@ops.route("/readyz", operation_ids={"get": "checkReadiness"})
class Ready(MethodView):
    @ops.response(200, StatusSchema)
    @ops.alt_response(503, response="SERVICE_UNAVAILABLE")
    def get(self) -> Any:
        """The process can reach its database."""
        try:
            db.session.execute(text("SELECT 1"))
        except Exception:
            db.session.rollback()
            return problem(503, "database_unavailable", "Service unavailable",
                           "The database does not answer.")
        return {"status": "ok"}


@audit_blp.route("/verify", operation_ids={"get": "verifyAuditChain"})
class AuditVerify(MethodView):
    @require_role(Role.OPERATOR, Role.REGULATOR)
    @audit_blp.response(200, ChainReportSchema)
    def get(self) -> LogReport:
        """Recompute every leaf and the tree; compare with the tiles and signed checkpoint."""
        with unit_of_work() as session:
            return verify_log(session, log_verifier())
