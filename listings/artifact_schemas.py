"""Request and response shapes of artifacts and their download links."""

from __future__ import annotations

from marshmallow import fields, validate

from app.api import ResponseSchema, Schema

SHA256_HEX = {"pattern": "^[0-9a-f]{64}$"}

# The upload's body, documented by hand: the file is streamed, not parsed by a schema.
UPLOAD_BODY = {
    "required": True,
    "description": "The data file, in the part named `file` (no other part).",
    "content": {"multipart/form-data": {
        "schema": {"type": "object", "required": ["file"], "additionalProperties": False,
                   "properties": {"file": {"type": "string", "format": "binary",
                                           "description": "The file, with its filename"}}},
    }},
}


class ArtifactSchema(ResponseSchema):
    id = fields.UUID()
    listing_id = fields.UUID()
    sha256 = fields.String(metadata={
        "description": "SHA-256 of the bytes, computed by the exchange (lowercase hex)",
        "example": "9b74c9897bac770ffc029102a200c5de0c3f1a7e48a2bd1d1c2b9b1c66f1a8e1",
        **SHA256_HEX})
    size = fields.Integer(metadata={"description": "Bytes", "example": 48_213_775})
    filename = fields.String(metadata={"example": "traffic-flows-2026-06.csv.gz"})
    content_type = fields.String(metadata={"example": "application/gzip"})
    uploaded_at = fields.DateTime()


class LinkQuerySchema(Schema):
    """The signed link's query (each part checked by the signature, so none is required by
    the schema: a link without them is refused with 403, as an altered one is)."""

    expires = fields.Integer(strict=False, validate=validate.Range(min=0, max=2**40),
                             metadata={"description": "Expiry, Unix seconds"})
    party = fields.UUID(metadata={"description": "The party the link was issued to"})
    license = fields.UUID(metadata={"description": "The licence it was issued under"})
    sig = fields.String(validate=validate.Length(max=200),
                        metadata={"description": "HMAC-SHA256 of the rest (base64url)"})
