"""HTTP routes of licences, their access tokens, usage and token introspection.

Renewal creates an order, so its route (POST /licenses/{id}/renew) is served by orders.
"""

from __future__ import annotations

import uuid
from typing import Any

from flask import redirect
from flask.views import MethodView

from app.api import Blueprint, SQLPage
from app.db import unit_of_work
from app.idempotency import idempotent
from app.limits import limit
from app.parties.auth import current_party, require_role
from app.parties.models import Role
from licenses import downloads, services, tokens
from licenses.schemas import (
    AccessTokenSchema,
    IntrospectionRequestSchema,
    IntrospectionSchema,
    LicenseDecisionSchema,
    LicenseQueryArgsSchema,
    LicenseRevocationSchema,
    LicenseSchema,
    UsageReportSchema,
    UsageSchema,
)

blp = Blueprint("licenses", __name__, url_prefix="/api/v1",
                description="Licences: terms enforced after the sale, API access, usage")


@blp.route("/licenses", operation_ids={"get": "listLicenses"})
class Licenses(MethodView):
    @require_role()
    @blp.arguments(LicenseQueryArgsSchema, location="query")
    @blp.response(200, LicenseSchema(many=True))
    @blp.paginate(SQLPage)
    def get(self, args: dict[str, Any]) -> Any:
        """Licences you hold (buyer, beneficiary) or granted (merchant); all for overseers."""
        return services.licenses_query(viewer=current_party(), **args)


@blp.route("/licenses/<uuid:license_id>", operation_ids={"get": "getLicense"})
class LicenseDetail(MethodView):
    @require_role()
    @blp.response(200, LicenseSchema)
    @blp.alt_response(404, response="NOT_FOUND")
    def get(self, license_id: uuid.UUID) -> Any:
        """A licence, for its buyer, beneficiaries and merchant, operators and regulators."""
        with unit_of_work() as session:
            return services.get_license(session, license_id=license_id, viewer=current_party())


@blp.route("/licenses/<uuid:license_id>/suspend", operation_ids={"post": "suspendLicense"})
class SuspendLicense(MethodView):
    @require_role(Role.OPERATOR, Role.REGULATOR)
    @blp.arguments(LicenseDecisionSchema)
    @blp.response(200, LicenseSchema)
    @blp.alt_response(404, response="NOT_FOUND")
    @blp.alt_response(409, response="CONFLICT")
    def post(self, body: dict[str, Any], license_id: uuid.UUID) -> Any:
        """Suspend an active licence (operator, regulator): its tokens stop at once."""
        with unit_of_work() as session:
            return services.suspend_license(session, license_id=license_id,
                                            actor=current_party(), **body)


@blp.route("/licenses/<uuid:license_id>/reinstate", operation_ids={"post": "reinstateLicense"})
class ReinstateLicense(MethodView):
    @require_role(Role.OPERATOR, Role.REGULATOR)
    @blp.arguments(LicenseDecisionSchema)
    @blp.response(200, LicenseSchema)
    @blp.alt_response(404, response="NOT_FOUND")
    @blp.alt_response(409, response="CONFLICT")
    def post(self, body: dict[str, Any], license_id: uuid.UUID) -> Any:
        """Reinstate a suspended licence (operator, regulator)."""
        with unit_of_work() as session:
            return services.reinstate_license(session, license_id=license_id,
                                              actor=current_party(), **body)


@blp.route("/licenses/<uuid:license_id>/revoke", operation_ids={"post": "revokeLicense"})
class RevokeLicense(MethodView):
    @require_role(Role.OPERATOR, Role.REGULATOR)
    @blp.arguments(LicenseRevocationSchema)
    @blp.response(200, LicenseSchema)
    @blp.alt_response(404, response="NOT_FOUND")
    @blp.alt_response(409, response="CONFLICT")
    def post(self, body: dict[str, Any], license_id: uuid.UUID) -> Any:
        """Revoke a licence for good (operator, regulator); the party at fault gets a finding.

        `fault_party` `buyer` or `merchant` records a credit event of `kind` against it
        (at the kind's usual severity unless `severity` is given); `none` records none.
        Its tokens stop at once.
        """
        with unit_of_work() as session:
            return services.revoke_license(session, license_id=license_id,
                                           actor=current_party(), **body)


@blp.route("/licenses/<uuid:license_id>/download", operation_ids={"get": "downloadLicensedData"})
class LicenseDownload(MethodView):
    @require_role()
    @blp.response(303, description="To a link valid `DOWNLOAD_URL_TTL_SECONDS`", headers={
        "Location": {"description": "The signed link to the file", "schema": {"type": "string"}}})
    @blp.alt_response(403, response="FORBIDDEN")
    @blp.alt_response(404, response="NOT_FOUND")
    @blp.alt_response(409, response="CONFLICT")
    def get(self, license_id: uuid.UUID) -> Any:
        """The delivered file (the buyer, beneficiaries; download licences).

        Answers 303 to a short-lived signed link, every issue logged; a licence not in force
        → 403 `license_inactive`, one delivered otherwise → 409 `delivery_mode_mismatch`, data
        delivered outside the exchange → 409 `nothing_to_download`.
        """
        with unit_of_work() as session:
            url = downloads.download_link(session, license_id=license_id,
                                          holder=current_party())
        return redirect(url, code=303)


@blp.route("/licenses/<uuid:license_id>/tokens", operation_ids={"post": "issueLicenseToken"})
class LicenseTokens(MethodView):
    @limit("RATE_LIMIT_TRADING")
    @require_role()
    @blp.response(201, AccessTokenSchema)
    @blp.alt_response(404, response="NOT_FOUND")
    @blp.alt_response(409, response="CONFLICT")
    def post(self, license_id: uuid.UUID) -> Any:
        """An access token to the merchant's API (the buyer, beneficiaries; api licences).

        Short-lived (`LICENSE_TOKEN_TTL_SECONDS`, never past the licence's end) and shown
        once. A licence not active, past its end or out of calls → 403 `license_inactive`;
        one delivered otherwise than by API → 409 `delivery_mode_mismatch`.
        """
        with unit_of_work() as session:
            return tokens.issue_token(session, license_id=license_id, actor=current_party())


@blp.route("/licenses/<uuid:license_id>/usage", operation_ids={"post": "reportLicenseUsage"})
class ReportUsage(MethodView):
    @require_role(Role.MERCHANT)
    @idempotent
    @blp.arguments(UsageReportSchema)
    @blp.response(201, UsageSchema)
    @blp.alt_response(404, response="NOT_FOUND")
    @blp.alt_response(409, response="CONFLICT")
    @blp.alt_response(422, response="UNPROCESSABLE_ENTITY")
    def post(self, body: dict[str, Any], license_id: uuid.UUID) -> Any:
        """Report calls served under a per-call licence (its merchant; Idempotency-Key).

        `calls_remaining` goes down by `calls`, never below zero: more calls than are left
        → 422 `calls_exhausted` and nothing is counted.
        """
        with unit_of_work() as session:
            return services.report_usage(session, license_id=license_id, actor=current_party(),
                                         **body)


@blp.route("/oauth/introspect", tags=["licenses"], operation_ids={"post": "introspectToken"})
class TokenIntrospection(MethodView):
    @require_role(Role.MERCHANT)
    @blp.arguments(IntrospectionRequestSchema, location="json_or_form")
    @blp.response(200, IntrospectionSchema)
    def post(self, body: dict[str, Any]) -> Any:
        """RFC 7662 token introspection, for the merchant whose listing the token opens.

        Form (`application/x-www-form-urlencoded`) or JSON `token`. An inactive token
        (unknown, expired, revoked, another merchant's, or its licence suspended, revoked,
        past its end or out of calls) is `{"active": false}` alone.
        """
        with unit_of_work() as session:
            return tokens.introspect(session, token=body["token"], merchant=current_party())
