"""Use cases of parties: registration, viewing, API key issue and revocation."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import Select, exists, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app import audit, clock
from app.errors import Forbidden, NotFound
from app.parties.auth import generate_api_key, hash_api_key
from app.parties.credit_code import is_valid_credit_code, normalize_credit_code
from app.parties.errors import DuplicateCreditCode, DuplicatePartyName, InvalidCreditCode
from app.parties.models import (
    INDEPENDENT_ROLES,
    SELF_REGISTRATION_ROLES,
    Actor,
    ApiKey,
    Party,
    PartyKind,
    Role,
    SystemActor,
)
from app.parties.names import clean_party_name, name_key


@dataclass(frozen=True)
class IssuedKey:
    """A new key: the stored record and the raw key, which exists only in this response."""

    key: ApiKey
    raw: str


def register_party(
    session: Session,
    *,
    name: str,
    credit_code: str,
    kind: PartyKind,
    roles: Iterable[Role],
    actor: Actor | None,
) -> tuple[Party, IssuedKey]:
    """Register a party and issue its first key; only operators grant roles beyond self-service."""
    wanted = sorted(set(roles), key=list(Role).index)
    is_operator = actor is not None and actor.has_role(Role.OPERATOR)
    privileged = [role.value for role in wanted if role not in SELF_REGISTRATION_ROLES]
    if privileged and not is_operator:
        raise Forbidden(f"Only an operator can grant the roles: {', '.join(privileged)}.")
    independent = [role.value for role in wanted if role in INDEPENDENT_ROLES]
    if independent and not isinstance(actor, SystemActor):
        raise Forbidden(f"Parties with the roles {', '.join(independent)} are registered with "
                        "`flask parties create`: whoever registers one holds its first key.")
    name = clean_party_name(name)
    code = normalize_credit_code(credit_code)
    if not is_valid_credit_code(code):
        raise InvalidCreditCode(
            "The credit code must be 18 characters of 0-9 A-H J-N P-R T U W-Y structured as "
            "GB 32100-2015 sets out (registration authority, organisation type, division) "
            "with a valid check character.",
            errors={"credit_code": ["Not a valid unified social credit code."]})
    _ensure_unregistered(session, name=name, code=code)
    party = Party(name=name, credit_code=code, kind=kind, roles=[role.value for role in wanted])
    session.add(party)
    try:
        with session.begin_nested():
            session.flush()
    except IntegrityError:  # a concurrent registration won the race: say which one
        _ensure_unregistered(session, name=name, code=code)
        raise
    # Self-registration is the new party's own act.
    actor = actor or party
    audit.record(session, actor_id=actor.id, action="party.registered",
                 subject=party, details={"credit_code": code, "kind": kind.value,
                                         "roles": party.roles})
    return party, issue_api_key(session, party=party, actor=actor)


def _ensure_unregistered(session: Session, *, name: str, code: str) -> None:
    if session.scalar(select(exists().where(Party.credit_code == code))):
        raise DuplicateCreditCode(f"A party with credit code {code} is already registered.")
    if session.scalar(select(exists().where(Party.name_key == name_key(name)))):
        raise DuplicatePartyName(f"A party named like {name!r} is already registered.")


def parties_query(*, q: str | None = None, kind: PartyKind | None = None) -> Select:
    """Parties matching the filters, oldest first (the operators' and regulators' register)."""
    stmt = select(Party).order_by(Party.created_at, Party.id)
    if q:
        stmt = stmt.where(or_(Party.name.contains(q, autoescape=True),
                              Party.credit_code == normalize_credit_code(q)))
    if kind:
        stmt = stmt.where(Party.kind == kind)
    return stmt


def get_party(session: Session, *, party_id: uuid.UUID, viewer: Party) -> Party:
    """A party as seen by the viewer: itself, an operator or a regulator."""
    # The viewer is checked first, so a 404 never tells an outsider that an id exists.
    if party_id != viewer.id and not viewer.has_role(Role.OPERATOR, Role.REGULATOR):
        raise Forbidden("Only the party itself, operators and regulators can see a party.")
    party = session.get(Party, party_id)
    if party is None:
        raise NotFound("No such party.")
    return party


def _managed_party(session: Session, party_id: uuid.UUID, actor: Actor) -> Party:
    """A party whose keys the actor may manage: itself, or any party for an operator."""
    if party_id != actor.id and not actor.has_role(Role.OPERATOR):
        raise Forbidden("Only the party itself or an operator can manage its API keys.")
    party = session.get(Party, party_id)
    if party is None:
        raise NotFound("No such party.")
    return party


def issue_api_key(session: Session, *, party: Party, actor: Actor) -> IssuedKey:
    """Issue another key for the party."""
    raw = generate_api_key()
    key = ApiKey(party=party, key_hash=hash_api_key(raw), prefix=raw[:10])
    session.add(key)
    audit.record(session, actor_id=actor.id, action="api_key.issued", subject=key,
                 details={"party_id": str(party.id), "prefix": key.prefix})
    return IssuedKey(key, raw)


def issue_api_key_for(session: Session, *, party_id: uuid.UUID, actor: Actor) -> IssuedKey:
    """Issue another key for a party the actor manages; a regulator's or a certifier's only
    for itself."""
    party = _managed_party(session, party_id, actor)
    if party.id != actor.id and party.has_role(*INDEPENDENT_ROLES):
        raise Forbidden("Only a regulator or certifier itself (or `flask parties issue-key`) "
                        "issues its keys.")
    return issue_api_key(session, party=party, actor=actor)


def party_with_credit_code(session: Session, *, credit_code: str) -> Party | None:
    """The party registered with this credit code, however it is spelled."""
    return session.scalar(select(Party).where(
        Party.credit_code == normalize_credit_code(credit_code)))


def list_api_keys(session: Session, *, party_id: uuid.UUID, actor: Actor) -> list[ApiKey]:
    """The party's keys (never the keys themselves), newest first."""
    party = _managed_party(session, party_id, actor)
    stmt = select(ApiKey).where(ApiKey.party_id == party.id).order_by(ApiKey.created_at.desc())
    return list(session.scalars(stmt))


def revoke_api_key(session: Session, *, party_id: uuid.UUID, key_id: uuid.UUID,
                   actor: Actor) -> None:
    """Revoke one of the party's keys; it stops authenticating at once."""
    party = _managed_party(session, party_id, actor)
    key = session.get(ApiKey, key_id)
    if key is None or key.party_id != party.id:
        raise NotFound("No such API key for this party.")
    if key.revoked_at is None:
        key.revoke(clock.now())
        audit.record(session, actor_id=actor.id, action="api_key.revoked", subject=key,
                     details={"party_id": str(party.id), "prefix": key.prefix})
