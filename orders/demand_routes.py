"""HTTP routes of demands and matching (供需匹配)."""

from __future__ import annotations

import uuid
from typing import Any

from flask.views import MethodView
from flask_smorest import Page

from app.api import Blueprint, SQLPage
from app.db import unit_of_work
from app.idempotency import idempotent
from app.limits import limit
from app.parties.auth import current_party, require_role
from app.parties.models import Role
from orders import demands
from orders.schemas import (
    DemandCreateSchema,
    DemandQueryArgsSchema,
    DemandSchema,
    FittingDemandSchema,
    MatchSchema,
)

blp = Blueprint("demands", __name__, url_prefix="/api/v1",
                description="Demands and matching: buyers' needs met by listings")


@blp.route("/demands", operation_ids={"post": "postDemand", "get": "listDemands"})
class Demands(MethodView):
    @limit("RATE_LIMIT_TRADING")
    @require_role(Role.BUYER)
    @idempotent
    @blp.arguments(DemandCreateSchema)
    @blp.response(201, DemandSchema)
    @blp.alt_response(403, response="FORBIDDEN")
    @blp.alt_response(422, response="UNPROCESSABLE_ENTITY")
    def post(self, body: dict[str, Any]) -> Any:
        """Post a demand (Idempotency-Key); with `auto_order` the best match is ordered.

        The response's `order` is that order (status `pending_payment`), or null when no
        listing meets the demand yet: it stays open, and is ordered when one comes.
        """
        with unit_of_work() as session:
            return demands.post_demand(session, buyer=current_party(), body=body)

    @require_role()
    @blp.arguments(DemandQueryArgsSchema, location="query")
    @blp.response(200, DemandSchema(many=True))
    @blp.paginate(SQLPage)
    def get(self, args: dict[str, Any]) -> Any:
        """Your demands (all of them for operators and regulators), newest first."""
        return demands.demands_query(viewer=current_party(), **args)


@blp.route("/demands/<uuid:demand_id>", operation_ids={"get": "getDemand"})
class DemandDetail(MethodView):
    @require_role()
    @blp.response(200, DemandSchema)
    @blp.alt_response(404, response="NOT_FOUND")
    def get(self, demand_id: uuid.UUID) -> Any:
        """A demand, for its buyer, operators and regulators."""
        with unit_of_work() as session:
            return demands.get_demand(session, demand_id=demand_id, viewer=current_party())


@blp.route("/demands/<uuid:demand_id>/cancel", operation_ids={"post": "cancelDemand"})
class CancelDemand(MethodView):
    @require_role(Role.BUYER)
    @blp.response(200, DemandSchema)
    @blp.alt_response(403, response="FORBIDDEN")
    @blp.alt_response(404, response="NOT_FOUND")
    @blp.alt_response(409, response="CONFLICT")
    def post(self, demand_id: uuid.UUID) -> Any:
        """Withdraw an open demand (its buyer)."""
        with unit_of_work() as session:
            return demands.cancel_demand(session, demand_id=demand_id, actor=current_party())


@blp.route("/demands/<uuid:demand_id>/matches", operation_ids={"get": "listDemandMatches"})
class DemandMatches(MethodView):
    @require_role()
    @blp.response(200, MatchSchema(many=True))
    @blp.alt_response(403, response="FORBIDDEN")
    @blp.alt_response(404, response="NOT_FOUND")
    @blp.paginate(Page)
    def get(self, demand_id: uuid.UUID) -> Any:
        """Listings meeting every hard constraint of the demand, best first.

        Each with its score (0-100) and the reasons for it; for the demand's buyer, operators
        and regulators.
        """
        with unit_of_work() as session:
            return demands.demand_matches(session, demand_id=demand_id,
                                          viewer=current_party())


@blp.route("/listings/<uuid:listing_id>/matches", tags=["listings"],
           operation_ids={"get": "listFittingDemands"})
class ListingMatches(MethodView):
    @require_role()
    @blp.response(200, FittingDemandSchema(many=True))
    @blp.alt_response(403, response="FORBIDDEN")
    @blp.alt_response(404, response="NOT_FOUND")
    @blp.paginate(SQLPage)
    def get(self, listing_id: uuid.UUID) -> Any:
        """Open demands this listing meets, oldest first; buyers are not named.

        For the listing's merchant, operators and regulators.
        """
        with unit_of_work() as session:
            return demands.listing_matches(session, listing_id=listing_id,
                                           viewer=current_party())
