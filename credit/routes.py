"""HTTP routes of trading credit."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

from flask import Response, request, stream_with_context
from flask.views import MethodView

from app import clock
from app.api import Blueprint
from app.db import unit_of_work
from app.errors import Forbidden
from app.log.keys import log_verifier
from app.parties.auth import authenticated_party, current_party, optional_auth, require_role
from app.parties.models import Role
from app.routes import ChainReportSchema
from credit import ledger, remedies, services, views
from credit.schemas import (
    BlacklistedPartySchema,
    BlacklistQueryArgsSchema,
    CreditEventCreateSchema,
    CreditEventSchema,
    CreditFileSchema,
    ObjectionCreateSchema,
    ObjectionDecisionSchema,
    ObjectionSchema,
    PenaltyCreateSchema,
    PenaltySchema,
    RepairCreateSchema,
    RepairDecisionSchema,
    RepairSchema,
)

blp = Blueprint("credit", __name__, url_prefix="/api/v1/credit",
                description="Trading credit (交易信用): findings, penalties, blacklist, repair")

@blp.route("/events", operation_ids={"post": "recordCreditEvent"})
class CreditEvents(MethodView):
    @require_role(Role.OPERATOR, Role.REGULATOR)
    @blp.arguments(CreditEventCreateSchema)
    @blp.response(201, CreditEventSchema)
    @blp.alt_response(404, response="NOT_FOUND")
    def post(self, body: dict[str, Any]) -> Any:
        """Record a credit event (a finding or a positive event) about a party."""
        with unit_of_work() as session:
            entry = services.record_event(session, actor=current_party(), **body)
            return views.event_view(session, entry)


@blp.route("/parties/<uuid:party_id>", operation_ids={"get": "getCreditFile"})
class CreditFile(MethodView):
    @require_role()
    @blp.response(200, CreditFileSchema)
    @blp.alt_response(404, response="NOT_FOUND")
    def get(self, party_id: uuid.UUID) -> Any:
        """A party's credit file (the party itself, operators and regulators)."""
        with unit_of_work() as session:
            return views.credit_file(session, party_id=party_id, viewer=current_party(),
                                     at=clock.now())


@blp.route("/blacklist", operation_ids={"get": "searchBlacklist"})
class Blacklist(MethodView):
    @optional_auth
    @blp.arguments(BlacklistQueryArgsSchema, location="query")
    @blp.response(200, BlacklistedPartySchema(many=True),
                  description="JSON (paginated), or for regulators the whole result set as CSV "
                              "(Accept: text/csv; page and page_size do not apply)")
    @blp.paginate()
    def get(self, args: dict[str, Any], pagination_parameters: Any) -> Any:
        """The blacklist: public disclosure fields for anyone, the full record for regulators."""
        viewer = authenticated_party()
        full = viewer is not None and viewer.has_role(Role.REGULATOR)
        wants_csv = request.accept_mimetypes.best_match(
            ["application/json", "text/csv"]) == "text/csv"
        if wants_csv and not full:
            raise Forbidden("The CSV export is for regulators.")
        search: dict[str, Any] = {"q": args.get("q"), "credit_code": args.get("credit_code"),
                                  "at": clock.now()}
        with unit_of_work() as session:
            if wants_csv:
                total = views.blacklist_total(session, **search)
            else:
                rows, total = views.blacklist_page(
                    session, **search, first=pagination_parameters.first_item,
                    size=pagination_parameters.page_size, full=full)
        pagination_parameters.item_count = total
        if wants_csv:
            # Regulators export the list to file it: the whole result set, not a page,
            # streamed as it is read.
            return Response(stream_with_context(_blacklist_csv(search)), mimetype="text/csv",
                            headers={"Content-Disposition": "attachment; filename=blacklist.csv"})
        return rows


def _blacklist_csv(search: dict[str, Any]) -> Iterator[str]:
    """The export's lines, read in a transaction that lasts as long as the download."""
    with unit_of_work() as session:
        yield from views.blacklist_csv(session, **search)


@blp.route("/events/<uuid:event_id>/objections", operation_ids={"post": "objectToCreditEvent"})
class Objections(MethodView):
    @require_role()
    @blp.arguments(ObjectionCreateSchema)
    @blp.response(201, ObjectionSchema)
    @blp.alt_response(404, response="NOT_FOUND")
    @blp.alt_response(409, response="CONFLICT")
    def post(self, body: dict[str, Any], event_id: uuid.UUID) -> Any:
        """Object to a finding about yourself (异议); it shows as disputed until decided."""
        with unit_of_work() as session:
            return remedies.object_to_event(session, event_id=event_id, party=current_party(),
                                            **body)


@blp.route("/objections/<uuid:objection_id>/decide", operation_ids={"post": "decideObjection"})
class DecideObjection(MethodView):
    @require_role(Role.REGULATOR)
    @blp.arguments(ObjectionDecisionSchema)
    @blp.response(200, ObjectionSchema)
    @blp.alt_response(404, response="NOT_FOUND")
    @blp.alt_response(409, response="CONFLICT")
    def post(self, body: dict[str, Any], objection_id: uuid.UUID) -> Any:
        """Decide an objection: upheld, revoked (effect removed) or corrected (replaced)."""
        with unit_of_work() as session:
            return remedies.decide_objection(session, objection_id=objection_id,
                                             regulator=current_party(), **body)


@blp.route("/repairs", operation_ids={"post": "applyForRepair"})
class Repairs(MethodView):
    @require_role()
    @blp.arguments(RepairCreateSchema)
    @blp.response(201, RepairSchema)
    @blp.alt_response(404, response="NOT_FOUND")
    @blp.alt_response(409, response="CONFLICT")
    @blp.alt_response(422, response="UNPROCESSABLE_ENTITY")
    def post(self, body: dict[str, Any]) -> Any:
        """Apply for credit repair (信用修复) of your findings, with a signed commitment."""
        with unit_of_work() as session:
            return remedies.apply_for_repair(session, party=current_party(), **body)


@blp.route("/repairs/<uuid:repair_id>/decide", operation_ids={"post": "decideRepair"})
class DecideRepair(MethodView):
    @require_role(Role.REGULATOR)
    @blp.arguments(RepairDecisionSchema)
    @blp.response(200, RepairSchema)
    @blp.alt_response(404, response="NOT_FOUND")
    @blp.alt_response(409, response="CONFLICT")
    def post(self, body: dict[str, Any], repair_id: uuid.UUID) -> Any:
        """Approve (publicity ends, score restored) or reject a repair application."""
        with unit_of_work() as session:
            return remedies.decide_repair(session, repair_id=repair_id,
                                          regulator=current_party(), **body)


@blp.route("/penalties", operation_ids={"post": "imposePenalty"})
class Penalties(MethodView):
    @require_role(Role.OPERATOR, Role.REGULATOR)
    @blp.arguments(PenaltyCreateSchema)
    @blp.response(201, PenaltySchema)
    @blp.alt_response(404, response="NOT_FOUND")
    def post(self, body: dict[str, Any]) -> Any:
        """Impose a penalty: warning, trade restriction, listing ban, deposit or fine."""
        with unit_of_work() as session:
            penalty = services.impose_penalty(session, actor=current_party(), **body)
            return views.penalty_view(penalty, clock.now())


@blp.route("/penalties/<uuid:penalty_id>/payment", operation_ids={"post": "recordPenaltyPayment"})
class PenaltyPayment(MethodView):
    @require_role(Role.OPERATOR, Role.REGULATOR)
    @blp.response(200, PenaltySchema)
    @blp.alt_response(404, response="NOT_FOUND")
    def post(self, penalty_id: uuid.UUID) -> Any:
        """Record that a fine or deposit was paid."""
        with unit_of_work() as session:
            penalty = services.pay_fine(session, penalty_id=penalty_id, actor=current_party())
            return views.penalty_view(penalty, clock.now())


@blp.route("/ledger/verify", operation_ids={"get": "verifyCreditLedger"})
class CreditLedgerVerify(MethodView):
    @require_role(Role.OPERATOR, Role.REGULATOR)
    @blp.response(200, ChainReportSchema)
    def get(self) -> Any:
        """Check every credit entry against its leaf in the evidence log, and the log itself."""
        with unit_of_work() as session:
            return ledger.verify(session, log_verifier())


