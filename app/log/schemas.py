"""Request and response shapes of the evidence log's endpoints (hashes in lowercase hex)."""

from __future__ import annotations

from marshmallow import fields, validate

from app.api import ResponseSchema, Schema

_HEX = {"description": "lowercase hex", "example": "5f7b" + "0" * 60}
_SIZE = validate.Range(min=0, max=(1 << 63) - 1)


class CheckpointSchema(ResponseSchema):
    origin = fields.String(metadata={"example": "exchange.local/log"})
    tree_size = fields.Integer()
    root_hash = fields.String(metadata=_HEX)
    signed_note = fields.String(metadata={"description": "the C2SP tlog-checkpoint signed note"})
    timestamp = fields.DateTime(metadata={"description": "when the checkpoint was signed"})


class PublicKeySchema(ResponseSchema):
    vkey = fields.String(metadata={"description": "signed-note verifier key "
                                                  "<name>+<key id>+<base64(0x01 ‖ key)>"})
    key_name = fields.String()
    key_id = fields.String(metadata={"description": "8 hex digits"})
    algorithm = fields.String(validate=validate.OneOf(["ed25519"]))


class LogEntrySchema(ResponseSchema):
    index = fields.Integer()
    leaf = fields.String(metadata={"description": "the entry's canonical JSON: the leaf bytes"})
    leaf_hash = fields.String(metadata=_HEX)
    integrated_at = fields.DateTime()


class InclusionQueryArgsSchema(Schema):
    index = fields.Integer(required=True, validate=_SIZE)
    tree_size = fields.Integer(required=True, validate=validate.Range(min=1, max=(1 << 63) - 1))


class InclusionProofSchema(ResponseSchema):
    index = fields.Integer()
    tree_size = fields.Integer()
    leaf_hash = fields.String(metadata=_HEX)
    hashes = fields.List(fields.String(metadata=_HEX))


class ConsistencyQueryArgsSchema(Schema):
    first = fields.Integer(required=True, validate=_SIZE)
    second = fields.Integer(required=True, validate=_SIZE)


class ConsistencyProofSchema(ResponseSchema):
    first = fields.Integer()
    second = fields.Integer()
    hashes = fields.List(fields.String(metadata=_HEX))


class EvidenceSchema(ResponseSchema):
    """The proof that the log holds a document's facts."""

    log_index = fields.Integer()
    leaf = fields.String(metadata={"description": "the entry's canonical JSON: the leaf bytes; "
                                                  "its payload_digest is the SHA-256 of the "
                                                  "canonical JSON of the facts"})
    leaf_hash = fields.String(metadata=_HEX)
    inclusion_proof = fields.List(fields.String(metadata=_HEX))
    tree_size = fields.Integer()
    checkpoint = fields.String(metadata={"description": "the signed checkpoint note the "
                                                        "inclusion proof is against"})
