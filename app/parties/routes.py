"""HTTP routes of parties and API keys."""

from __future__ import annotations

import uuid
from typing import Any

from flask.views import MethodView

from app.api import Blueprint, SQLPage
from app.db import unit_of_work
from app.limits import limit, per_address
from app.parties import services
from app.parties.auth import authenticated_party, current_party, optional_auth, require_role
from app.parties.models import Party, Role
from app.parties.schemas import (
    ApiKeyCreatedSchema,
    ApiKeySchema,
    PartyCreatedSchema,
    PartyCreateSchema,
    PartyQueryArgsSchema,
    PartySchema,
)

blp = Blueprint("parties", __name__, url_prefix="/api/v1/parties",
                description="Market participants, their roles and API keys")


def _attributes(obj: Any, schema: type[Any]) -> dict[str, Any]:
    # @blp.response serializes the result: hand it attribute values, not an already-dumped
    # dict, which it would dump a second time (enums and datetimes fail on strings).
    return {name: getattr(obj, name) for name in schema().fields}


def _created(party: Party, issued: services.IssuedKey) -> dict[str, Any]:
    return {**_attributes(party, PartySchema), "api_key": issued.raw,
            "api_key_id": issued.key.id}


@blp.route("", operation_ids={"get": "listParties", "post": "registerParty"})
class Parties(MethodView):
    @require_role(Role.OPERATOR, Role.REGULATOR)
    @blp.arguments(PartyQueryArgsSchema, location="query")
    @blp.response(200, PartySchema(many=True))
    @blp.paginate(SQLPage)
    def get(self, args: dict[str, Any]) -> Any:
        """The register of parties (operators and regulators), paginated."""
        return services.parties_query(**args)

    @limit("RATE_LIMIT_REGISTRATION", by=per_address)
    @optional_auth
    @blp.arguments(PartyCreateSchema)
    @blp.response(201, PartyCreatedSchema)
    @blp.alt_response(403, response="FORBIDDEN")
    @blp.alt_response(409, response="CONFLICT")
    def post(self, body: dict[str, Any]) -> dict[str, Any]:
        """Register a party (merchant, buyer or broker; operators may grant operator)."""
        with unit_of_work() as session:
            party, issued = services.register_party(session, actor=authenticated_party(), **body)
        return _created(party, issued)


@blp.route("/me", operation_ids={"get": "getCurrentParty"})
class Me(MethodView):
    @require_role()
    @blp.response(200, PartySchema)
    def get(self) -> Party:
        """The calling party."""
        return current_party()


@blp.route("/<uuid:party_id>", operation_ids={"get": "getParty"})
class PartyDetail(MethodView):
    @require_role()
    @blp.response(200, PartySchema)
    @blp.alt_response(404, response="NOT_FOUND")
    def get(self, party_id: uuid.UUID) -> Party:
        """A party, for itself, operators and regulators."""
        with unit_of_work() as session:
            return services.get_party(session, party_id=party_id, viewer=current_party())


@blp.route("/<uuid:party_id>/api-keys", operation_ids={"get": "listApiKeys", "post": "issueApiKey"})
class PartyApiKeys(MethodView):
    @require_role()
    @blp.response(200, ApiKeySchema(many=True))
    @blp.alt_response(404, response="NOT_FOUND")
    def get(self, party_id: uuid.UUID) -> list[Any]:
        """The party's keys (prefixes and dates, never the keys)."""
        with unit_of_work() as session:
            return services.list_api_keys(session, party_id=party_id, actor=current_party())

    @limit("RATE_LIMIT_KEY_ISSUANCE")
    @require_role()
    @blp.response(201, ApiKeyCreatedSchema)
    @blp.alt_response(404, response="NOT_FOUND")
    def post(self, party_id: uuid.UUID) -> dict[str, Any]:
        """Issue another key (the party, or an operator unless it regulates or certifies)."""
        with unit_of_work() as session:
            issued = services.issue_api_key_for(session, party_id=party_id, actor=current_party())
        return {**_attributes(issued.key, ApiKeySchema), "api_key": issued.raw}


@blp.route("/<uuid:party_id>/api-keys/<uuid:key_id>", operation_ids={"delete": "revokeApiKey"})
class PartyApiKey(MethodView):
    @require_role()
    @blp.response(204)
    @blp.alt_response(404, response="NOT_FOUND")
    def delete(self, party_id: uuid.UUID, key_id: uuid.UUID) -> None:
        """Revoke a key; it stops authenticating at once."""
        with unit_of_work() as session:
            services.revoke_api_key(session, party_id=party_id, key_id=key_id,
                                    actor=current_party())
