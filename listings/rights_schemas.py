"""Request and response shapes of consents."""

from __future__ import annotations

from marshmallow import fields, validate

from app.api import ResponseSchema, Schema
from listings.rights_models import ConsentRole, ConsentStatus


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
