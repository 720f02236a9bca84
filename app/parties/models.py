"""Parties and their API keys."""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from sqlalchemy import JSON, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column, relationship, validates

from app.db import Base, created_at, str_enum, substring_index, uuid_pk
from app.parties.names import name_key


class PartyKind(enum.StrEnum):
    ENTERPRISE = "enterprise"
    PUBLIC_AGENCY = "public_agency"
    INSTITUTION = "institution"
    INDIVIDUAL_BUSINESS = "individual_business"


class Role(enum.StrEnum):
    MERCHANT = "merchant"
    BUYER = "buyer"
    BROKER = "broker"
    CERTIFIER = "certifier"
    REGULATOR = "regulator"
    OPERATOR = "operator"


# Roles anyone may take by registering; the others are granted by an operator.
SELF_REGISTRATION_ROLES = frozenset({Role.MERCHANT, Role.BUYER, Role.BROKER})
# Roles that see every party's objects (operators run the exchange, regulators oversee it).
OVERSEERS = (Role.OPERATOR, Role.REGULATOR)
# Roles independent of the operators (separation of duties): their parties are registered and
# given keys by the command line or by themselves, never by an operator through the API, who
# could otherwise act as one (decide objections and repairs, certify listings).
INDEPENDENT_ROLES = frozenset({Role.REGULATOR, Role.CERTIFIER})


class Actor(Protocol):
    """Whoever performs an action: a party, or the service itself."""

    @property
    def id(self) -> uuid.UUID | None: ...

    def has_role(self, *roles: Role) -> bool: ...


@dataclass(frozen=True)
class SystemActor:
    """The service itself (command line, scheduled jobs): audited with no actor id."""

    id: None = None

    def has_role(self, *roles: Role) -> bool:
        return True


SYSTEM = SystemActor()


class Party(Base):
    """A market participant: an enterprise, public agency, institution or individual business."""

    __tablename__ = "parties"

    id: Mapped[uuid_pk]
    name: Mapped[str] = mapped_column(String(200))
    # One party per name, however it is spelled (app/parties/names.py); kept with the name.
    # Null only where a party held an equal name before names were compared (migration 0014).
    name_key: Mapped[str | None] = mapped_column(String(64), unique=True, index=True)
    credit_code: Mapped[str] = mapped_column(String(18), unique=True)
    kind: Mapped[PartyKind] = mapped_column(str_enum(PartyKind, "party_kind"))
    roles: Mapped[list[str]] = mapped_column(JSON)
    created_at: Mapped[created_at]

    # The blacklist is searched by a fragment of a name.
    __table_args__ = (substring_index("ix_parties_name_trgm", "name"),)

    @validates("name")
    def _keep_name_key(self, _: str, name: str) -> str:
        self.name_key = name_key(name)
        return name

    def has_role(self, *roles: Role) -> bool:
        """True when the party holds any of the given roles."""
        return any(role.value in self.roles for role in roles)


class ApiKey(Base):
    """A bearer key; only its SHA-256 is stored, the key itself is shown once."""

    __tablename__ = "api_keys"

    id: Mapped[uuid_pk]
    party_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("parties.id"), index=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(12))
    created_at: Mapped[created_at]
    revoked_at: Mapped[datetime | None]

    party: Mapped[Party] = relationship(lazy="joined", innerjoin=True)

    def revoke(self, at: datetime) -> None:
        """Revoke the key; revoking twice keeps the first time."""
        if self.revoked_at is None:
            self.revoked_at = at
