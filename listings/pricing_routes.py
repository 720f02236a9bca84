"""HTTP routes of guide prices (指导定价)."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView

from app import clock
from app.api import Blueprint, SQLPage
from app.db import unit_of_work
from app.parties.auth import current_party, require_role
from app.parties.models import Role
from listings import pricing
from listings.pricing_schemas import (
    GuidePriceCreateSchema,
    GuidePriceQueryArgsSchema,
    GuidePriceSchema,
)

blp = Blueprint("guide_prices", __name__, url_prefix="/api/v1",
                description="Guided pricing: guide prices with floor and ceiling bands")


@blp.route("/guide-prices", operation_ids={"post": "setGuidePrice", "get": "listGuidePrices"})
class GuidePrices(MethodView):
    @require_role(Role.OPERATOR, Role.REGULATOR)
    @blp.arguments(GuidePriceCreateSchema)
    @blp.response(201, GuidePriceSchema)
    @blp.alt_response(409, response="CONFLICT")
    @blp.alt_response(422, response="UNPROCESSABLE_ENTITY")
    def post(self, body: dict[str, Any]) -> Any:
        """Set a guide price (operators, regulators).

        It supersedes the open-ended one in force for its scope from its effective date.
        Overlapping binding bands → 409.
        """
        with unit_of_work() as session:
            return pricing.set_guide_price(session, actor=current_party(), body=body)

    @require_role()
    @blp.arguments(GuidePriceQueryArgsSchema, location="query")
    @blp.response(200, GuidePriceSchema(many=True))
    @blp.paginate(SQLPage)
    def get(self, args: dict[str, Any]) -> Any:
        """Guide prices with their history (superseded ones included).

        Filters: `?category=`, `?in_force=true`.
        """
        return pricing.guide_prices_query(
            category=args.get("category"),
            in_force_at=clock.now() if args.get("in_force") else None)
