"""Request and response shapes of consents, qualifications and accreditations."""

from __future__ import annotations

from marshmallow import fields, validate

from app.api import ResponseSchema, Schema
from listings.models import CertificationScope, Classification
from listings.rights_models import ConsentRole, ConsentStatus
from listings.schemas import _enum

# Core data is never traded: no qualification or accreditation reaches it.
_GRADES = [c.value for c in Classification if c is not Classification.CORE]


class ConsentSchema(ResponseSchema):
    """A request that a party agree to be named on a listing, and its outcome."""

    id = fields.UUID()
    listing_id = fields.UUID()
    listing_title = fields.String()
    merchant_id = fields.UUID(metadata={"description": "The merchant that named the party"})
    party_id = fields.UUID(metadata={"description": "The party asked"})
    role = fields.Enum(ConsentRole, by_value=True, metadata={
        "description": "What the listing names the party as: `holder` or `processor` (its "
                       "rights), `authority` (the public data's authorization), `payee` (a "
                       "revenue share)"})
    status = fields.Enum(ConsentStatus, by_value=True, metadata={
        "description": "`superseded`: the merchant changed what the party was asked about; "
                       "the next submission asks again"})
    terms = fields.Dict(metadata={
        "description": "What the party is asked to agree to, as the listing named it: its "
                       "`rights`, its `revenue_shares` lines naming the party, or the "
                       "`authorization`"})
    note = fields.String(allow_none=True)
    requested_at = fields.DateTime()
    decided_at = fields.DateTime(allow_none=True)
    superseded_at = fields.DateTime(allow_none=True)


class ConsentDecisionSchema(Schema):
    example = {"decision": "accept",
               "note": "我方确认为该数据资源持有方 We hold the source data and agree to its sale."}

    decision = fields.String(required=True, validate=validate.OneOf(["accept", "decline"]))
    note = fields.String(load_default=None, allow_none=True,
                         validate=validate.Length(max=2000))


class ConsentQueryArgsSchema(Schema):
    status = fields.Enum(ConsentStatus, by_value=True)


def _max_classification() -> fields.Enum:
    return fields.Enum(Classification, by_value=True, required=True,
                       validate=validate.OneOf([Classification(g) for g in _GRADES]),
                       metadata={"description": "The highest classification covered "
                                                "(core data is never traded)"})


class _GrantSchema(Schema):
    max_classification = _max_classification()
    valid_until = fields.AwareDateTime(required=True, default_timezone=None)
    evidence_ref = fields.String(required=True, validate=validate.Length(min=1, max=200))


class _GrantedSchema(ResponseSchema):
    id = fields.UUID(dump_only=True)
    party_id = fields.UUID(dump_only=True)
    granted_by = fields.UUID(dump_only=True, allow_none=True)
    granted_at = fields.DateTime(dump_only=True)


class QualificationCreateSchema(_GrantSchema):
    example = {"max_classification": "sensitive", "valid_until": "2028-06-30T23:59:59+08:00",
               "evidence_ref": "数据产品开发利用资格审核 SHDEX-QUAL-2026-0193"}


class QualificationSchema(QualificationCreateSchema, _GrantedSchema):
    pass


class AccreditationCreateSchema(_GrantSchema):
    example = {"scopes": ["compliance", "security"], "max_classification": "important",
               "valid_until": "2029-12-31T23:59:59+08:00",
               "evidence_ref": "CNAS 认可证书 CNAS-C-2026-0412"}

    scopes = fields.List(_enum(CertificationScope), required=True,
                         validate=validate.Length(min=1, max=3))


class AccreditationSchema(AccreditationCreateSchema, _GrantedSchema):
    pass
