"""Credit ledger entries, cached profiles, penalties, blacklistings, objections and repairs."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.audit import AuditEntry, digest
from app.db import Base, Money, created_at, str_enum, uuid_pk
from credit.catalog import PenaltyKind, Severity
from credit.scoring import Level


class EntryAction(enum.StrEnum):
    RECORDED = "recorded"  # a finding (or a positive event)
    REVOKED = "revoked"  # an objection upheld against a finding: its effect is removed
    CORRECTED = "corrected"  # replaces the finding it refers to
    REPAIRED = "repaired"  # credit repair approved: the finding stays, its effect ends


class CreditEntry(Base):
    """One entry of the append-only credit ledger, and a leaf of the evidence log through the
    audit entry it is written with (see `credit.ledger.append`)."""

    __tablename__ = "credit_entries"

    # The id of the entry's audit entry (`credit.entry_appended`, whose details are this
    # entry's content): drawn at insert under the party's profile lock, so one party's
    # entries follow one another in it; other parties' entries fall in between.
    seq: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"),
                                     ForeignKey(AuditEntry.id), primary_key=True,
                                     autoincrement=False)
    id: Mapped[uuid.UUID] = mapped_column(unique=True, default=uuid.uuid4)
    party_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("parties.id"))
    action: Mapped[EntryAction] = mapped_column(str_enum(EntryAction, "credit_entry_action"))
    kind: Mapped[str] = mapped_column(String(40))
    severity: Mapped[Severity] = mapped_column(str_enum(Severity, "credit_severity"))
    points: Mapped[int] = mapped_column(Integer)
    description: Mapped[str] = mapped_column(Text)
    evidence_ref: Mapped[str | None] = mapped_column(String(500))
    refers_to: Mapped[uuid.UUID | None]
    recorded_by: Mapped[uuid.UUID | None]
    occurred_at: Mapped[datetime]

    __table_args__ = (Index("ix_credit_entries_party_seq", "party_id", "seq"),)

    def content(self) -> dict[str, Any]:
        """What its audit entry holds as details (their digest is in the leaf)."""
        return entry_content(self)

    @property
    def content_digest(self) -> str:
        """SHA-256 of the content's canonical JSON: the leaf's payload_digest."""
        return digest(self.content())


def entry_content(entry: Any) -> dict[str, Any]:
    """A credit entry's content, from a model instance or a row with its columns."""
    return {
        "id": str(entry.id), "party_id": str(entry.party_id),
        "action": EntryAction(entry.action).value, "kind": entry.kind,
        "severity": Severity(entry.severity).value, "points": entry.points,
        "description": entry.description, "evidence_ref": entry.evidence_ref,
        "refers_to": str(entry.refers_to) if entry.refers_to else None,
        "recorded_by": str(entry.recorded_by) if entry.recorded_by else None,
        "occurred_at": entry.occurred_at.isoformat(),
    }


class CreditProfile(Base):
    """A party's cached score and level, updated in the transaction of each entry."""

    __tablename__ = "credit_profiles"

    party_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("parties.id"), primary_key=True)
    score: Mapped[int] = mapped_column(Integer)
    level: Mapped[Level] = mapped_column(str_enum(Level, "credit_level"))
    computed_at: Mapped[datetime]


class Penalty(Base):
    """A sanction with a period; fines and deposits carry an amount and whether it was paid."""

    __tablename__ = "credit_penalties"

    id: Mapped[uuid_pk]
    party_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("parties.id"), index=True)
    event_id: Mapped[uuid.UUID | None]
    kind: Mapped[PenaltyKind] = mapped_column(str_enum(PenaltyKind, "penalty_kind"))
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime]
    amount: Mapped[int | None] = mapped_column(Money)
    paid_at: Mapped[datetime | None]
    lifted_at: Mapped[datetime | None]
    lift_reason: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[created_at]

    def active(self, at: datetime) -> bool:
        return self.lifted_at is None and self.starts_at <= at < self.ends_at

    @property
    def unpaid(self) -> bool:
        return self.kind is PenaltyKind.FINE and self.paid_at is None

    def state(self, at: datetime) -> str:
        if self.lifted_at is not None:
            return "lifted"
        if at < self.starts_at:
            return "pending"
        return "active" if at < self.ends_at else "ended"


class BlacklistEntry(Base):
    """A listing on the blacklist of seriously untrustworthy parties (严重失信主体名单)."""

    __tablename__ = "blacklist_entries"

    id: Mapped[uuid_pk]
    party_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("parties.id"), index=True)
    event_id: Mapped[uuid.UUID | None]
    reason: Mapped[str] = mapped_column(Text)
    listed_at: Mapped[datetime]
    publicity_min_until: Mapped[datetime]
    publicity_until: Mapped[datetime] = mapped_column(index=True)
    ended_at: Mapped[datetime | None]
    end_reason: Mapped[str | None] = mapped_column(String(40))

    def active(self, at: datetime) -> bool:
        return self.ended_at is None and self.listed_at <= at < self.publicity_until

    def end(self, at: datetime, reason: str) -> None:
        if self.ended_at is None:
            self.ended_at, self.end_reason = at, reason


class DecisionStatus(enum.StrEnum):
    PENDING = "pending"
    UPHELD = "upheld"
    REVOKED = "revoked"
    CORRECTED = "corrected"
    APPROVED = "approved"
    REJECTED = "rejected"


class Objection(Base):
    """A party disputes a finding (异议); a regulator upholds, revokes or corrects it."""

    __tablename__ = "credit_objections"

    id: Mapped[uuid_pk]
    event_id: Mapped[uuid.UUID] = mapped_column(index=True)
    party_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("parties.id"))
    reason: Mapped[str] = mapped_column(Text)
    evidence_ref: Mapped[str | None] = mapped_column(String(500))
    status: Mapped[DecisionStatus] = mapped_column(
        str_enum(DecisionStatus, "objection_status"), default=DecisionStatus.PENDING)
    decided_by: Mapped[uuid.UUID | None]
    note: Mapped[str | None] = mapped_column(Text)
    decided_at: Mapped[datetime | None]
    correction_id: Mapped[uuid.UUID | None]
    created_at: Mapped[created_at]


class Repair(Base):
    """An application for credit repair (信用修复) of some findings."""

    __tablename__ = "credit_repairs"

    id: Mapped[uuid_pk]
    party_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("parties.id"), index=True)
    measures: Mapped[str] = mapped_column(Text)
    commitment: Mapped[bool] = mapped_column(Boolean)
    evidence_ref: Mapped[str | None] = mapped_column(String(500))
    status: Mapped[DecisionStatus] = mapped_column(
        str_enum(DecisionStatus, "repair_status"), default=DecisionStatus.PENDING)
    decided_by: Mapped[uuid.UUID | None]
    note: Mapped[str | None] = mapped_column(Text)
    decided_at: Mapped[datetime | None]
    created_at: Mapped[created_at]

    events: Mapped[list[RepairEvent]] = relationship(lazy="selectin", cascade="all")

    @property
    def event_ids(self) -> list[uuid.UUID]:
        return [link.event_id for link in self.events]


class RepairEvent(Base):
    """Which findings a repair covers; at most one pending repair per finding."""

    __tablename__ = "credit_repair_events"

    repair_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("credit_repairs.id"),
                                                 primary_key=True)
    event_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    pending: Mapped[bool | None] = mapped_column(Boolean)

    # NULLs are distinct, so only the pending row (True) is unique per finding.
    __table_args__ = (UniqueConstraint("event_id", "pending"),)
