"""Request and response shapes of trading credit."""

from __future__ import annotations

from marshmallow import fields, validate

from app.api import ResponseSchema, Schema, StrictBoolean
from credit.catalog import CATALOG, PenaltyKind, Severity
from credit.models import DecisionStatus
from credit.scoring import Level

_text = validate.Length(min=1, max=2000)
_ref = validate.Length(min=1, max=500)


class CreditEventCreateSchema(Schema):
    example = {"party_id": "5b0e7a1c-3d2f-4a8e-9c61-2f4d8e7b1a30", "kind": "late_delivery",
               "severity": "minor",
               "description": "订单交付晚于约定两天 Delivered two days after the agreed date.",
               "evidence_ref": "DX-CASE-2026-0311"}

    party_id = fields.UUID(required=True)
    kind = fields.String(required=True, validate=validate.OneOf(list(CATALOG)))
    severity = fields.Enum(Severity, by_value=True, required=True)
    description = fields.String(required=True, validate=_text)
    evidence_ref = fields.String(load_default=None, allow_none=True, validate=_ref)


class CreditEventSchema(ResponseSchema):
    sometimes_absent = frozenset({"party_id"})  # not repeated in its party's credit file

    id = fields.UUID()
    party_id = fields.UUID()
    kind = fields.String()
    severity = fields.Enum(Severity, by_value=True)
    points = fields.Integer()
    description = fields.String()
    evidence_ref = fields.String(allow_none=True)
    occurred_at = fields.DateTime()
    recorded_at = fields.DateTime()
    status = fields.String(metadata={"description": "effective, revoked, corrected, repaired"})
    disputed = fields.Boolean(metadata={"description": "An objection is pending"})
    corrects = fields.UUID(allow_none=True)
    hash = fields.String(metadata={
        "description": "SHA-256 (hex) of the entry's canonical JSON: the payload_digest of its "
                       "leaf in the evidence log"})


class PenaltySchema(ResponseSchema):
    id = fields.UUID()
    kind = fields.Enum(PenaltyKind, by_value=True)
    event_id = fields.UUID(allow_none=True)
    starts_at = fields.DateTime()
    ends_at = fields.DateTime()
    amount = fields.Integer(allow_none=True)
    paid = fields.Boolean()
    state = fields.String()


class PenaltyCreateSchema(Schema):
    example = {"party_id": "5b0e7a1c-3d2f-4a8e-9c61-2f4d8e7b1a30", "kind": "fine", "days": 30,
               "amount": 500_000, "event_id": "e41f6a2b-9c3d-4b7e-8a15-0f2d6c9b3e78"}

    party_id = fields.UUID(required=True)
    kind = fields.Enum(PenaltyKind, by_value=True, required=True)
    days = fields.Integer(required=True, strict=True, validate=validate.Range(min=1, max=3 * 365))
    amount = fields.Integer(load_default=None, allow_none=True, strict=True,
                            validate=validate.Range(min=1, max=10**12))
    event_id = fields.UUID(load_default=None, allow_none=True)


class BlacklistingSchema(ResponseSchema):
    reason = fields.String()
    listed_at = fields.DateTime()
    publicity_min_until = fields.DateTime()
    publicity_until = fields.DateTime()


class RepairCreateSchema(Schema):
    example = {"event_ids": ["e41f6a2b-9c3d-4b7e-8a15-0f2d6c9b3e78"],
               "measures": "新增交付时限监控与双人复核 Delivery deadlines are now monitored "
                           "and every delivery is checked by a second person.",
               "commitment": True, "evidence_ref": "整改报告 RECTIFY-2026-018"}

    event_ids = fields.List(fields.UUID(), required=True, validate=validate.Length(min=1, max=50))
    measures = fields.String(required=True, validate=_text)
    commitment = StrictBoolean(required=True)
    evidence_ref = fields.String(load_default=None, allow_none=True, validate=_ref)


class RepairSchema(RepairCreateSchema, ResponseSchema):
    id = fields.UUID(dump_only=True)
    party_id = fields.UUID(dump_only=True)
    status = fields.Enum(DecisionStatus, by_value=True, dump_only=True)
    note = fields.String(dump_only=True, allow_none=True)
    decided_at = fields.DateTime(dump_only=True, allow_none=True)
    created_at = fields.DateTime(dump_only=True)


class CreditFileSchema(ResponseSchema):
    party_id = fields.UUID()
    score = fields.Integer()
    level = fields.Enum(Level, by_value=True)
    computed_at = fields.DateTime()
    blacklisted = fields.Boolean()
    blacklisting = fields.Nested(BlacklistingSchema, allow_none=True)
    penalties = fields.List(fields.Nested(PenaltySchema))
    events = fields.List(fields.Nested(CreditEventSchema))
    repairs = fields.List(fields.Nested(RepairSchema))


class ObjectionCreateSchema(Schema):
    example = {"reason": "交付已按期完成 Delivery was on time: the buyer signed the receipt.",
               "evidence_ref": "签收单 receipt-2026-0142.pdf"}

    reason = fields.String(required=True, validate=_text)
    evidence_ref = fields.String(load_default=None, allow_none=True, validate=_ref)


class ObjectionSchema(ObjectionCreateSchema, ResponseSchema):
    id = fields.UUID(dump_only=True)
    event_id = fields.UUID(dump_only=True)
    party_id = fields.UUID(dump_only=True)
    status = fields.Enum(DecisionStatus, by_value=True, dump_only=True)
    note = fields.String(dump_only=True, allow_none=True)
    correction_id = fields.UUID(dump_only=True, allow_none=True)
    decided_at = fields.DateTime(dump_only=True, allow_none=True)
    created_at = fields.DateTime(dump_only=True)


class CorrectionSchema(Schema):
    kind = fields.String(validate=validate.OneOf(list(CATALOG)))
    severity = fields.Enum(Severity, by_value=True)
    description = fields.String(validate=_text)


class ObjectionDecisionSchema(Schema):
    example = {"decision": "corrected",
               "note": "迟延一天而非两天 One day late, not two.",
               "correction": {"kind": "late_delivery", "severity": "minor",
                              "description": "订单交付晚于约定一天 Delivered one day late."}}

    decision = fields.Enum(DecisionStatus, by_value=True, required=True, validate=validate.OneOf(
        [DecisionStatus.UPHELD, DecisionStatus.REVOKED, DecisionStatus.CORRECTED]))
    note = fields.String(required=True, validate=_text)
    correction = fields.Nested(CorrectionSchema, load_default=None, allow_none=True)


class RepairDecisionSchema(Schema):
    example = {"decision": "approved", "note": "整改措施已核实 The measures were verified."}

    decision = fields.Enum(DecisionStatus, by_value=True, required=True, validate=validate.OneOf(
        [DecisionStatus.APPROVED, DecisionStatus.REJECTED]))
    note = fields.String(required=True, validate=_text)


class BlacklistQueryArgsSchema(Schema):
    q = fields.String(validate=validate.Length(min=1, max=200),
                      metadata={"description": "Part of the party's name"})
    credit_code = fields.String(validate=validate.Length(min=1, max=64))


class BlacklistedPartySchema(ResponseSchema):
    # The full record is for regulators; anyone else reads the public disclosure fields.
    sometimes_absent = frozenset({"blacklist_id", "event_id", "party_kind",
                                  "publicity_min_until"})

    party_id = fields.UUID()
    name = fields.String()
    credit_code = fields.String()
    reason = fields.String()
    listed_at = fields.DateTime()
    publicity_until = fields.DateTime()
    disputed = fields.Boolean()
    blacklist_id = fields.UUID(metadata={"description": "regulators only"})
    event_id = fields.UUID(allow_none=True, metadata={"description": "regulators only"})
    party_kind = fields.String(metadata={"description": "regulators only"})
    publicity_min_until = fields.DateTime(metadata={"description": "regulators only"})
