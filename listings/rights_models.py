"""Who agreed to be named on a listing (consents), and who may list or certify what
(merchants' qualifications, certifiers' accreditations)."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, Text, text
from sqlalchemy.orm import Mapped, declared_attr, mapped_column, relationship

from app.db import Base, created_at, str_enum, uuid_pk
from app.errors import InvalidTransition
from listings.models import CertificationScope, Classification, Listing


class ConsentRole(enum.StrEnum):
    """Why a party is asked: what the listing names it as."""

    HOLDER = "holder"  # rights.holder_id: 数据资源持有权
    PROCESSOR = "processor"  # rights.processor_ids: 数据加工使用权
    AUTHORITY = "authority"  # source.authorization.authority_id: 公共数据授权
    PAYEE = "payee"  # a revenue-share line: a share of the proceeds


class ConsentStatus(enum.StrEnum):
    PENDING = "pending"
    ACCEPTED = "accepted"
    DECLINED = "declined"
    # The merchant changed what the party was asked about: the request no longer counts and
    # a new one is asked at the next submission.
    SUPERSEDED = "superseded"


OPEN_STATUSES = (ConsentStatus.PENDING, ConsentStatus.ACCEPTED, ConsentStatus.DECLINED)
_OPEN = "status <> 'superseded'"


class Consent(Base):
    """One party's agreement (or refusal) to be named on a listing in one role."""

    __tablename__ = "consents"

    id: Mapped[uuid_pk]
    listing_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("listings.id"), index=True)
    party_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("parties.id"))
    role: Mapped[ConsentRole] = mapped_column(str_enum(ConsentRole, "consent_role"))
    status: Mapped[ConsentStatus] = mapped_column(
        str_enum(ConsentStatus, "consent_status"), default=ConsentStatus.PENDING)
    # What the party is asked to agree to, as the listing named it when asked.
    terms: Mapped[dict[str, Any]] = mapped_column(JSON)
    note: Mapped[str | None] = mapped_column(Text)
    requested_by: Mapped[uuid.UUID] = mapped_column(ForeignKey("parties.id"))
    requested_at: Mapped[created_at]
    decided_at: Mapped[datetime | None]
    superseded_at: Mapped[datetime | None]

    listing: Mapped[Listing] = relationship(lazy="joined", innerjoin=True, viewonly=True)

    __table_args__ = (
        # One request in force per party and role of a listing (a concurrent second
        # submission cannot ask twice); superseded ones stay, as history.
        Index("ix_consents_open_request", "listing_id", "party_id", "role", unique=True,
              postgresql_where=text(_OPEN), sqlite_where=text(_OPEN)),
        # A party's requests, by status (GET /consents).
        Index("ix_consents_party_status", "party_id", "status"),
    )

    def decide(self, *, accept: bool, note: str | None, at: datetime) -> None:
        """Accept or decline once; a decided or superseded request cannot be decided."""
        if self.status is not ConsentStatus.PENDING:
            raise InvalidTransition(f"This consent is {self.status.value}: it cannot be "
                                    f"decided.", status=self.status.value)
        self.status = ConsentStatus.ACCEPTED if accept else ConsentStatus.DECLINED
        self.note = note
        self.decided_at = at

    @property
    def listing_title(self) -> str:
        return self.listing.title

    @property
    def merchant_id(self) -> uuid.UUID:
        return self.listing.merchant_id

    def describe(self) -> str:
        return f"party {self.party_id} as {self.role.value}"


def reason_of(consent: Consent) -> str:
    """A declined request's reason, as a submission reports it."""
    note = (consent.note or "").strip()
    return f"{consent.describe()} declined" + (f": {note}" if note else " (no reason given)")



class _Grant:
    """What an operator grants a party: up to a classification, until a date, on the
    evidence named."""

    __tablename__: str
    id: Mapped[uuid_pk]
    party_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("parties.id"), index=True)
    valid_until: Mapped[datetime]
    evidence_ref: Mapped[str] = mapped_column(String(200))
    granted_by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("parties.id"))
    granted_at: Mapped[created_at]

    @declared_attr
    def max_classification(cls) -> Mapped[Classification]:
        # One CHECK constraint per table: qualification_classification, ...
        return mapped_column(str_enum(Classification,
                                      f"{cls.__tablename__[:-1]}_classification"))

    def _covers(self, classification: Classification, at: datetime) -> bool:
        return self.valid_until > at and classification.rank <= self.max_classification.rank


class Qualification(_Grant, Base):
    """An operator's grant that a merchant may list data up to a classification, until a
    date (数据产品开发利用资格)."""

    __tablename__ = "qualifications"

    def covers(self, classification: Classification, at: datetime) -> bool:
        return self._covers(classification, at)


class Accreditation(_Grant, Base):
    """An operator's grant that a certification body may certify some scopes of data up to a
    classification, until a date."""

    __tablename__ = "accreditations"

    scopes: Mapped[list[str]] = mapped_column(JSON)

    def covers(self, scope: CertificationScope, classification: Classification,
               at: datetime) -> bool:
        return scope.value in self.scopes and self._covers(classification, at)
