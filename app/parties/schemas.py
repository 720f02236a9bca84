"""Request and response shapes of parties and API keys."""

from __future__ import annotations

from marshmallow import fields, validate

from app.api import ResponseSchema, Schema
from app.parties.models import PartyKind, Role


class PartyCreateSchema(Schema):
    example = {"name": "上海智行交通数据有限公司 Shanghai Zhixing Traffic Data Co., Ltd.",
               "credit_code": "91310115MA1K4PQ0XA", "kind": "enterprise",
               "roles": ["merchant"]}

    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    credit_code = fields.String(
        required=True, validate=validate.Length(min=1, max=64),
        metadata={"description": "18-character unified social credit code (GB 32100-2015)"})
    kind = fields.Enum(PartyKind, by_value=True, required=True)
    roles = fields.List(fields.Enum(Role, by_value=True), required=True,
                        validate=validate.Length(min=1, max=len(Role)))


class PartySchema(ResponseSchema):
    id = fields.UUID(dump_only=True)
    name = fields.String()
    credit_code = fields.String()
    kind = fields.Enum(PartyKind, by_value=True)
    roles = fields.List(fields.String())
    created_at = fields.DateTime()


class PartyCreatedSchema(PartySchema):
    api_key = fields.String(metadata={"description": "Shown once; only its hash is kept"})
    api_key_id = fields.UUID()


class ApiKeySchema(ResponseSchema):
    id = fields.UUID()
    prefix = fields.String(metadata={"description": "First characters, to tell keys apart"})
    created_at = fields.DateTime()
    revoked_at = fields.DateTime(allow_none=True)


class ApiKeyCreatedSchema(ApiKeySchema):
    api_key = fields.String(metadata={"description": "Shown once; only its hash is kept"})


class PartyQueryArgsSchema(Schema):
    q = fields.String(validate=validate.Length(min=1, max=200),
                      metadata={"description": "Part of the name, or the exact credit code"})
    kind = fields.Enum(PartyKind, by_value=True)
