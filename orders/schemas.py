"""Request and response shapes of orders and disputes."""

from __future__ import annotations

from typing import Any

from marshmallow import ValidationError, fields, validate, validates_schema

from app.api import Currency, NestedMethod, ResponseSchema, Schema, StrictBoolean
from app.log.schemas import EvidenceSchema
from listings.models import Classification, DeliveryMode, Territory
from orders.models import DemandStatus, DisputeOutcome, Order, OrderStatus, PaymentStatus

_ref = validate.Length(min=1, max=500)
# A payment's reference is stored in payments.reference, VARCHAR(200).
_payment_reference = validate.Length(min=1, max=200)


class OrderCreateSchema(Schema):
    example = {"listing_id": "8c3f2b6e-1a4d-4f7b-b2e9-6d0a5c9e3f14", "quantity": 1,
               "purpose": "logistics_planning", "beneficiaries": []}

    listing_id = fields.UUID(required=True)
    quantity = fields.Integer(load_default=1, strict=True,
                              validate=validate.Range(min=1, max=10_000))
    purpose = fields.String(required=True, validate=validate.Length(min=1, max=64))
    beneficiaries = fields.List(fields.UUID(), load_default=list,
                                validate=validate.Length(max=100), metadata={
                                    "description": "Public agencies served (统采分用)"})


class PaymentInfoSchema(ResponseSchema):
    # Present while the order is unpaid and the provider has them (GET .../payment).
    sometimes_absent = frozenset({"client_secret", "instructions"})

    provider = fields.String(metadata={"description": "stripe or offline"})
    status = fields.String(validate=validate.OneOf([status.value for status in PaymentStatus]))
    client_secret = fields.String(allow_none=True)
    instructions = fields.String(allow_none=True)


class WebhookAckSchema(ResponseSchema):
    received = fields.Boolean()
    event_id = fields.String()
    outcome = fields.String(metadata={"description": "paid, duplicate, ignored, ..."})


class OrderSchema(ResponseSchema):
    id = fields.UUID()
    listing_id = fields.UUID()
    buyer_id = fields.UUID()
    merchant_id = fields.UUID()
    quantity = fields.Integer()
    purpose = fields.String()
    beneficiaries = fields.List(fields.String())
    status = fields.Enum(OrderStatus, by_value=True)
    unit_price = fields.Integer()
    total_amount = fields.Integer()
    currency = Currency()
    license = fields.Dict(metadata={"description": "The usage scope frozen at purchase"})
    license_id = fields.UUID(allow_none=True, metadata={
        "description": "The licence the order grants, or for a renewal the licence it "
                       "extends (GET /licenses/{id})"})
    payment = NestedMethod(PaymentInfoSchema, "_payment")
    paid_amount = fields.Integer()
    refunded_amount = fields.Integer()
    expires_at = fields.DateTime()
    paid_at = fields.DateTime(allow_none=True)
    delivered_at = fields.DateTime(allow_none=True)
    delivery_ref = fields.String(allow_none=True)
    checksum = fields.String(allow_none=True)
    artifact_id = fields.UUID(allow_none=True, metadata={
        "description": "The artifact delivered, when the exchange holds the data"})
    verified_delivery = fields.Boolean(metadata={
        "description": "Delivered with an artifact: the checksum is its SHA-256, computed by "
                       "the exchange (false for references and checksums given as text)"})
    completed_at = fields.DateTime(allow_none=True)
    created_at = fields.DateTime()

    def _payment(self, order: Order) -> object:
        start = order.payment_start
        if start is not None:
            return start
        status = order.payment_status
        return {"provider": order.payment_provider,
                "status": status.value if isinstance(status, PaymentStatus) else status}


class OrderQueryArgsSchema(Schema):
    status = fields.Enum(OrderStatus, by_value=True)


class PaymentConfirmSchema(Schema):
    example = {"reference": "ICBC 转账 20260612-000187"}

    reference = fields.String(required=True, validate=_payment_reference,
                              metadata={"description": "The bank transfer's reference"})


class DeliverySchema(Schema):
    """Either an artifact the exchange holds (verified: its SHA-256 is the checksum, and a
    checksum sent too must equal it), or a reference and checksum for data delivered
    elsewhere (unverified)."""

    example = {"artifact_id": "5d0c8e1a-3b7f-4a62-9e14-7c2f0b9d4e31",
               "checksum": "sha256:9b74c9897bac770ffc029102a200c5de"
                           "c3f1a7e48a2bd1d1c2b9b1c66f1a8e11"}

    artifact_id = fields.UUID(load_default=None, allow_none=True, metadata={
        "description": "An artifact of the order's listing (POST /listings/{id}/artifacts)"})
    delivery_ref = fields.String(load_default=None, allow_none=True, validate=_ref, metadata={
        "description": "File reference, API credential id, or sandbox grant id (without "
                       "artifact_id)"})
    checksum = fields.String(load_default=None, allow_none=True,
                             validate=validate.Length(min=1, max=200), metadata={
                                 "description": "Required with delivery_ref; with artifact_id, "
                                                "checked against its SHA-256 (`sha256:<hex>` "
                                                "or the hex alone)"})

    @validates_schema
    def _one_form(self, data: dict[str, Any], **kwargs: Any) -> None:
        if (data["artifact_id"] is None) == (data["delivery_ref"] is None):
            raise ValidationError("Send artifact_id (data the exchange holds), or "
                                  "delivery_ref and checksum (data delivered elsewhere).")
        if data["delivery_ref"] is not None and data["checksum"] is None:
            raise ValidationError("Missing data for required field.", "checksum")


class DisputeCreateSchema(Schema):
    example = {"reason": "约 30% 路段缺少 6 月数据 About 30% of road segments have no June data."}

    reason = fields.String(required=True, validate=validate.Length(min=1, max=2000))


class DisputeSchema(ResponseSchema):
    id = fields.UUID()
    order_id = fields.UUID()
    buyer_id = fields.UUID()
    reason = fields.String()
    status = fields.String()
    outcome = fields.Enum(DisputeOutcome, by_value=True, allow_none=True)
    refund_amount = fields.Integer(allow_none=True)
    note = fields.String(allow_none=True)
    resolved_at = fields.DateTime(allow_none=True)
    created_at = fields.DateTime()


class DisputeResolutionSchema(Schema):
    example = {"outcome": "refund_partial", "refund_amount": 36_000,
               "note": "缺失数据按比例退款 Refund in proportion to the missing data."}

    outcome = fields.Enum(DisputeOutcome, by_value=True, required=True)
    refund_amount = fields.Integer(load_default=None, allow_none=True, strict=True,
                                   validate=validate.Range(min=1, max=10**13))
    note = fields.String(load_default=None, allow_none=True,
                         validate=validate.Length(max=2000))


class DemandCreateSchema(Schema):
    example = {"category": "transport", "keywords": ["交通流量", "traffic", "congestion"],
               "max_classification": "general", "delivery_modes": ["api", "download"],
               "purpose": "logistics_planning", "territory": "domestic",
               "max_unit_price": 150_000, "currency": "CNY", "quantity": 1,
               "auto_order": False, "expires_at": "2027-03-31T23:59:59+08:00"}

    category = fields.String(required=True, validate=validate.Length(min=1, max=64))
    keywords = fields.List(fields.String(validate=validate.Length(min=1, max=64)),
                           load_default=list, validate=validate.Length(max=20))
    max_classification = fields.Enum(
        Classification, by_value=True, load_default=Classification.IMPORTANT,
        metadata={"description": "The highest grade acceptable (default: any tradable)"})
    delivery_modes = fields.List(fields.Enum(DeliveryMode, by_value=True),
                                 load_default=lambda: list(DeliveryMode),
                                 validate=validate.Length(min=1))
    purpose = fields.String(required=True, validate=validate.Length(min=1, max=64))
    territory = fields.Enum(Territory, by_value=True, load_default=Territory.DOMESTIC,
                            metadata={"description": "Where the data will be used"})
    max_unit_price = fields.Integer(required=True, strict=True,
                                    validate=validate.Range(min=0, max=10**13))
    currency = fields.String(load_default="CNY", validate=validate.OneOf(["CNY"]))
    quantity = fields.Integer(load_default=1, strict=True,
                              validate=validate.Range(min=1, max=10_000))
    auto_order = StrictBoolean(load_default=False, metadata={
        "description": "Order the best match at once (and, while open, when one appears)"})
    expires_at = fields.AwareDateTime(load_default=None, metadata={
        "description": "Default: DEMAND_TTL_DAYS from now"})


class DemandSchema(DemandCreateSchema, ResponseSchema):
    id = fields.UUID()
    buyer_id = fields.UUID()
    # Read back as stored, the modes' values: strings, not the members the input loads.
    delivery_modes: fields.List[Any] = fields.List(fields.String())
    status = fields.Enum(DemandStatus, by_value=True)
    order_id = fields.UUID(allow_none=True)
    order = NestedMethod(OrderSchema, "_order", allow_none=True, metadata={
        "description": "The order auto_order placed, in the response that placed it"})
    closed_at = fields.DateTime(allow_none=True)
    created_at = fields.DateTime()

    def _order(self, demand: object) -> object | None:
        return getattr(demand, "placed_order", None)


class DemandQueryArgsSchema(Schema):
    status = fields.Enum(DemandStatus, by_value=True)


class MatchSchema(ResponseSchema):
    listing_id = fields.UUID()
    merchant_id = fields.UUID()
    title = fields.String()
    unit_price = fields.Integer()
    currency = Currency()
    score = fields.Integer(metadata={"description": "0-100, see the ranking in the docs"})
    reasons = fields.List(fields.String())


class FittingDemandSchema(ResponseSchema):
    """A demand as its fitting listing's merchant sees it: the terms, not the buyer."""

    id = fields.UUID()
    demand_id = fields.Function(lambda demand: str(demand.id), metadata={
        "type": "string", "format": "uuid", "description": "The same as id"})
    category = fields.String()
    keywords = fields.List(fields.String())
    max_classification = fields.Enum(Classification, by_value=True)
    delivery_modes = fields.List(fields.String())
    purpose = fields.String()
    territory = fields.Enum(Territory, by_value=True)
    max_unit_price = fields.Integer()
    currency = Currency()
    quantity = fields.Integer()
    expires_at = fields.DateTime()


class VoucherSchema(ResponseSchema):
    """The transaction voucher (交易凭证) of a completed order."""

    voucher_no = fields.String(metadata={"example": "TV-1042", "description": "TV- and the "
                                                                             "log index"})
    kind = fields.String(validate=validate.OneOf(["transaction_voucher"]))
    facts = fields.Dict(metadata={"description": "order id, listing (id, title), merchant and "
                                                 "buyer (id, name, credit code), beneficiaries, "
                                                 "licence, quantity, unit price, total amount, "
                                                 "currency, paid and completed times"})
    evidence = fields.Nested(EvidenceSchema)
