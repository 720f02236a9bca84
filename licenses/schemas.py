"""Request and response shapes of licences, access tokens and usage."""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from marshmallow import fields, validate

from app.api import ResponseSchema, Schema
from credit.catalog import CATALOG, Severity
from licenses.models import FaultParty, LicenseStatus
from listings.models import DeliveryMode, PriceModel, Territory

_reason = validate.Length(min=1, max=2000)
FINDING_KINDS = [code for code, kind in CATALOG.items() if not kind.positive]


class LicenseSchema(ResponseSchema):
    id = fields.UUID()
    order_id = fields.UUID(metadata={"description": "The order that granted it"})
    listing_id = fields.UUID()
    buyer_id = fields.UUID()
    merchant_id = fields.UUID()
    beneficiaries = fields.List(fields.String(), metadata={
        "description": "Public agencies a joint purchase serves (统采分用): they hold it too"})
    quantity = fields.Integer(metadata={"description": "Licences bought; calls for per_call"})
    purpose = fields.String(metadata={"description": "The purpose the buyer declared"})
    purposes = fields.List(fields.String(), metadata={
        "description": "The listing's purposes when bought"})
    territory = fields.Enum(Territory, by_value=True)
    resale = fields.Boolean()
    derivatives = fields.Boolean()
    delivery_mode = fields.Enum(DeliveryMode, by_value=True)
    price_model = fields.Enum(PriceModel, by_value=True)
    term_days = fields.Integer(allow_none=True, metadata={"description": "null: no end"})
    valid_from = fields.DateTime(allow_none=True, metadata={"description": "Delivery time"})
    valid_until = fields.DateTime(allow_none=True, metadata={
        "description": "valid_from + term_days, moved on by renewals; null: no end"})
    status = fields.Enum(LicenseStatus, by_value=True)
    status_reason = fields.String(allow_none=True, metadata={
        "description": "Why it is suspended, revoked or expired"})
    verified_delivery = fields.Boolean(allow_none=True, metadata={
        "description": "true: delivered from data the exchange holds, its hash checked; "
                       "false: a reference given as text; null until delivery"})
    calls_remaining = fields.Integer(allow_none=True, metadata={
        "description": "Per-call licences: calls not yet reported; null otherwise"})
    created_at = fields.DateTime()


class LicenseQueryArgsSchema(Schema):
    status = fields.Enum(LicenseStatus, by_value=True)
    listing_id = fields.UUID()


class LicenseDecisionSchema(Schema):
    example = {"reason": "调查买方涉嫌超范围转售期间暂停 Suspected resale beyond scope: "
                         "suspended while it is investigated."}

    reason = fields.String(required=True, validate=_reason)


class LicenseRevocationSchema(Schema):
    example = {"reason": "买方将数据转售第三方 The buyer resold the data to a third party.",
               "fault_party": "buyer", "kind": "resale_beyond_scope", "severity": "serious"}

    reason = fields.String(required=True, validate=_reason)
    fault_party = fields.Enum(FaultParty, by_value=True, required=True, metadata={
        "description": "Whose fault the revocation is: a credit finding of `kind` is "
                       "recorded against the buyer or the merchant; none records nothing"})
    kind = fields.String(load_default=None, allow_none=True,
                         validate=validate.OneOf(FINDING_KINDS),
                         metadata={"description": "The finding's kind (with a party at fault)"})
    severity = fields.Enum(Severity, by_value=True, load_default=None, allow_none=True,
                           validate=validate.OneOf([s for s in Severity
                                                    if s is not Severity.POSITIVE]),
                           metadata={"description": "Default: the kind's usual severity"})


class AccessTokenSchema(ResponseSchema):
    access_token = fields.String(metadata={
        "description": "Shown once; the merchant's API checks it with POST /oauth/introspect",
        "example": "dxt_Q2hhbmdlIG1lIGZvciBhIHJlYWwgdG9rZW4gcGxlYXNlIQ"})
    token_type = fields.String(validate=validate.OneOf(["Bearer"]))
    expires_at = fields.DateTime()
    license_id = fields.UUID()


class IntrospectionRequestSchema(Schema):
    example = {"token": "dxt_Q2hhbmdlIG1lIGZvciBhIHJlYWwgdG9rZW4gcGxlYXNlIQ",
               "token_type_hint": "access_token"}

    token = fields.String(required=True, validate=validate.Length(min=1, max=500))
    token_type_hint = fields.String(load_default=None, validate=validate.Length(max=64),
                                    metadata={"description": "Accepted and ignored (RFC 7662)"})


class IntrospectionSchema(ResponseSchema):
    """RFC 7662 §2.2: an inactive token is `{"active": false}` and nothing more."""

    sometimes_absent = frozenset({"token_type", "scope", "exp", "iat", "sub", "license_id",
                                  "buyer_id", "listing_id", "calls_remaining"})

    active = fields.Boolean()
    token_type = fields.String()
    scope = fields.String(metadata={"description": "The licence's purposes, space-separated"})
    exp = fields.Integer(metadata={"description": "Expiry, seconds since the epoch"})
    iat = fields.Integer(metadata={"description": "Issue time, seconds since the epoch"})
    sub = fields.String(metadata={"description": "The party the token was issued to"})
    license_id = fields.UUID()
    buyer_id = fields.UUID()
    listing_id = fields.UUID()
    calls_remaining = fields.Integer(allow_none=True, metadata={
        "description": "Per-call licences: calls left; null otherwise"})


class UsageReportSchema(Schema):
    example = {"calls": 1200, "period_start": "2026-06-01T00:00:00+08:00",
               "period_end": "2026-06-02T00:00:00+08:00"}

    calls = fields.Integer(required=True, strict=True,
                           validate=validate.Range(min=1, max=1_000_000_000))
    period_start = fields.AwareDateTime(required=True)
    period_end = fields.AwareDateTime(required=True)

    @ma.validates_schema
    def _period_in_order(self, data: dict[str, Any], **kwargs: Any) -> None:
        if data["period_end"] < data["period_start"]:
            raise ma.ValidationError("Must not be before period_start.", "period_end")


class UsageSchema(ResponseSchema):
    id = fields.UUID()
    license_id = fields.UUID()
    calls = fields.Integer()
    period_start = fields.DateTime()
    period_end = fields.DateTime()
    calls_remaining = fields.Integer(metadata={"description": "Left after this report"})
    created_at = fields.DateTime()
