"""HTTP routes of consents (三权确认)."""

from __future__ import annotations

import uuid
from typing import Any

from flask.views import MethodView

from app.api import Blueprint, SQLPage
from app.db import unit_of_work
from app.parties.auth import current_party, require_role
from listings import consents, services
from listings.rights_schemas import ConsentDecisionSchema, ConsentQueryArgsSchema, ConsentSchema

blp = Blueprint("rights", __name__, url_prefix="/api/v1",
                description="Rights confirmed by their holders (三权确认): consents")


@blp.route("/consents", operation_ids={"get": "listConsents"})
class Consents(MethodView):
    @require_role()
    @blp.arguments(ConsentQueryArgsSchema, location="query")
    @blp.response(200, ConsentSchema(many=True))
    @blp.paginate(SQLPage)
    def get(self, args: dict[str, Any]) -> Any:
        """The consents asked of me, newest first; `?status=`."""
        return consents.consents_asked_of(party=current_party(), status=args.get("status"))


@blp.route("/consents/<uuid:consent_id>/decide", operation_ids={"post": "decideConsent"})
class DecideConsent(MethodView):
    @require_role()
    @blp.arguments(ConsentDecisionSchema)
    @blp.response(200, ConsentSchema)
    @blp.alt_response(404, response="NOT_FOUND")
    @blp.alt_response(409, response="CONFLICT")
    def post(self, body: dict[str, Any], consent_id: uuid.UUID) -> Any:
        """Accept or decline being named on a listing (the party asked; once: 409 after).

        A listing cannot pass its submission until every party it names accepts; a decline
        blocks it, with the note as the reason, until the merchant changes what it names.
        """
        with unit_of_work() as session:
            return consents.decide_consent(session, consent_id=consent_id,
                                           party=current_party(),
                                           accept=body["decision"] == "accept",
                                           note=body["note"])


@blp.route("/listings/<uuid:listing_id>/consents", tags=["listings"],
           operation_ids={"get": "listListingConsents"})
class ListingConsents(MethodView):
    @require_role()
    @blp.arguments(ConsentQueryArgsSchema, location="query")
    @blp.response(200, ConsentSchema(many=True))
    @blp.alt_response(404, response="NOT_FOUND")
    @blp.paginate(SQLPage)
    def get(self, args: dict[str, Any], listing_id: uuid.UUID) -> Any:
        """Every consent a listing asked for, superseded ones included; `?status=`.

        For the listing's merchant, operators and regulators (others: 404).
        """
        with unit_of_work() as session:
            services.ensure_may_trace(session, listing_id=listing_id, viewer=current_party())
        return consents.consents_of_listing(listing_id=listing_id, status=args.get("status"))
