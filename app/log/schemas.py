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


_HASH = validate.Regexp(r"^[0-9a-f]{64}$", error="A SHA-256 hash in lowercase hex.")
_DOCUMENT_EXAMPLE_LEAF = ('{"action":"voucher.issued",'
                          '"actor_id":"6f1c2a8e-3d4b-4c5a-9e7f-1a2b3c4d5e6f","id":1042,"occurred_at":"2026-06-01T08:00:00+00:00",'
                          '"payload_digest":"' + "0" * 64 + '",'
                          '"subject_id":"2f7d9c1e-4b6a-4e83-9a0f-5c1d7e2b8a64",'
                          '"subject_type":"orders"}')


class DocumentEvidenceSchema(Schema):
    log_index = fields.Integer(required=True, validate=_SIZE)
    leaf = fields.String(required=True, validate=validate.Length(max=10_000))
    leaf_hash = fields.String(required=True, validate=_HASH)
    inclusion_proof = fields.List(fields.String(validate=_HASH), required=True,
                                  validate=validate.Length(max=64))
    tree_size = fields.Integer(required=True,
                               validate=validate.Range(min=1, max=(1 << 63) - 1))
    checkpoint = fields.String(required=True, validate=validate.Length(max=10_000))


class DocumentSchema(Schema):
    """A transaction voucher or a registration certificate, as served."""

    voucher_no = fields.String(validate=validate.Length(max=40))
    certificate_no = fields.String(validate=validate.Length(max=40))
    kind = fields.String(validate=validate.OneOf(["transaction_voucher",
                                                  "registration_certificate"]))
    facts = fields.Dict(required=True)
    evidence = fields.Nested(DocumentEvidenceSchema, required=True)

    example = {
        "voucher_no": "TV-1042", "kind": "transaction_voucher",
        "facts": {"order_id": "2f7d9c1e-4b6a-4e83-9a0f-5c1d7e2b8a64",
                  "listing": {"id": "8b0e6c2a-5f3d-4a71-b9e8-0c4d2f6a1e37",
                              "title": "上海市公共交通客流数据 Shanghai transit ridership"},
                  "quantity": 1, "unit_price": 120_000, "total_amount": 120_000,
                  "currency": "CNY"},
        "evidence": {"log_index": 1042, "leaf": _DOCUMENT_EXAMPLE_LEAF,
                     "leaf_hash": "5f7b" + "0" * 60, "inclusion_proof": ["a3c1" + "0" * 60],
                     "tree_size": 1043,
                     "checkpoint": "exchange.local/log\n1043\n" + "A" * 43 + "=\n\n"
                                   "— exchange.local/log AAAAAA==\n"},
    }


class CheckSchema(ResponseSchema):
    name = fields.String(validate=validate.OneOf(["signature", "inclusion", "facts_digest",
                                                  "consistency"]))
    ok = fields.Boolean()
    detail = fields.String()


class VerificationSchema(ResponseSchema):
    valid = fields.Boolean(metadata={"description": "every check passed"})
    checks = fields.List(fields.Nested(CheckSchema))
