"""What the public pages take: a document number in the query, a pasted document in a form."""

from __future__ import annotations

from marshmallow import fields, validate

from app.api import Schema


class VerifyQueryArgsSchema(Schema):
    document = fields.String(
        validate=validate.Length(max=40),
        metadata={"description": "a voucher's or certificate's number (TV-42, RC-7): its "
                                 "checks are shown, its facts are not",
                  "example": "TV-1042"})


class PastedDocumentSchema(Schema):
    document_json = fields.String(
        required=True, validate=validate.Length(max=100_000),
        metadata={"description": "a voucher or certificate as GET /orders/{id}/voucher or "
                                 "GET /listings/{id}/certificate served it (JSON)"})
