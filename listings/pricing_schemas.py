"""Request and response shapes of guide prices and price guidance."""

from __future__ import annotations

from marshmallow import fields, validate

from app.api import Currency, ResponseSchema, Schema, StrictBoolean
from listings.models import Classification, GuidePrice, PriceModel

_money = validate.Range(min=0, max=10**13)


class GuidePriceCreateSchema(Schema):
    example = {"category": "transport", "classification": "open", "price_model": "one_time",
               "reference_price": 20_000, "floor_pct": 20, "ceiling_pct": 50, "binding": True,
               "currency": "CNY", "effective_from": "2027-01-01T00:00:00+08:00",
               "effective_to": None}

    category = fields.String(required=True, validate=validate.Length(min=1, max=64))
    classification = fields.Enum(Classification, by_value=True, load_default=None,
                                 allow_none=True, metadata={"description": "null: any"})
    price_model = fields.Enum(PriceModel, by_value=True, load_default=None, allow_none=True,
                              metadata={"description": "null: any"})
    reference_price = fields.Integer(required=True, strict=True,
                                     validate=validate.Range(min=1, max=10**13))
    floor_pct = fields.Integer(required=True, strict=True, validate=validate.Range(0, 100),
                               metadata={"description": "floor = reference less this %"})
    ceiling_pct = fields.Integer(required=True, strict=True, validate=validate.Range(0, 1000),
                                 metadata={"description": "ceiling = reference plus this %"})
    binding = StrictBoolean(required=True, metadata={
        "description": "Enforced (public data priced under government guidance)"})
    currency = fields.String(load_default="CNY", validate=validate.OneOf(["CNY"]))
    effective_from = fields.AwareDateTime(load_default=None, metadata={"description":
                                                                      "Default: now"})
    effective_to = fields.AwareDateTime(load_default=None, allow_none=True)


class GuidePriceSchema(GuidePriceCreateSchema, ResponseSchema):
    id = fields.UUID()
    floor_price = fields.Integer(validate=_money)
    ceiling_price = fields.Integer(validate=_money)
    superseded_at = fields.DateTime(allow_none=True)
    superseded_by = fields.UUID(allow_none=True)
    in_force = fields.Method("_in_force", metadata={"type": "boolean"})
    set_by = fields.UUID(allow_none=True)
    created_at = fields.DateTime()

    def _in_force(self, guide: GuidePrice) -> bool:
        from app import clock

        return guide.in_force(clock.now())


class GuidePriceQueryArgsSchema(Schema):
    category = fields.String(validate=validate.Length(min=1, max=64))
    in_force = fields.Boolean(metadata={"description": "Only those in force now"})


class FactorSchema(ResponseSchema):
    name = fields.String()
    value = fields.String()
    effect = fields.Integer(metadata={"description": "fen added to (or taken from) the basis"})


class RecentDealsSchema(ResponseSchema):
    count = fields.Integer()
    median_unit_price = fields.Integer(allow_none=True)


class PriceGuidanceSchema(ResponseSchema):
    listing_id = fields.UUID()
    currency = Currency()
    basis = fields.String(metadata={"description": "guide_price, recent_deals or listing_price"})
    reference_price = fields.Integer()
    floor_price = fields.Integer(allow_none=True)
    ceiling_price = fields.Integer(allow_none=True)
    binding = fields.Boolean()
    guide_price_id = fields.UUID(allow_none=True)
    suggested_price = fields.Integer()
    factors = fields.List(fields.Nested(FactorSchema), metadata={
        "description": "reference_price + the sum of the effects = suggested_price"})
    recent_deals = fields.Nested(RecentDealsSchema)
