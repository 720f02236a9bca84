"""The append-only, hash-chained audit trail of every state change, and its verifier.

Services call `record()` during a unit of work; the entries are chained and written just
before the commit, under a lock held only until that commit, so concurrent writers never
fork the chain and the lock is held as briefly as possible.

Entries follow their transaction, savepoints included: an entry recorded inside a savepoint
that rolls back is dropped with it, one recorded inside a released savepoint joins the
enclosing level, and nothing is written when a savepoint is released (SQLAlchemy fires
`before_commit` for savepoints too), so a savepoint that fails cannot take earlier entries
down with it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Index, Integer, String, event, select, text
from sqlalchemy.orm import Mapped, ORMExecuteState, Session, SessionTransaction, mapped_column

from app import clock
from app.db import Base

log = logging.getLogger(__name__)

GENESIS_HASH = "0" * 64
# Arbitrary constant naming the audit chain's PostgreSQL advisory lock.
_CHAIN_LOCK_KEY = 0x617564697400
_PENDING = "audit_pending"


class AuditEntry(Base):
    """One state change: who did what to which subject, chained to the entry before it."""

    __tablename__ = "audit_entries"

    seq: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=False)
    occurred_at: Mapped[datetime]
    actor_id: Mapped[uuid.UUID | None] = mapped_column(index=True)
    action: Mapped[str] = mapped_column(String(80))
    subject_type: Mapped[str] = mapped_column(String(40))
    subject_id: Mapped[str] = mapped_column(String(64))
    details: Mapped[dict[str, Any]] = mapped_column(JSON)
    payload_digest: Mapped[str] = mapped_column(String(64))
    prev_hash: Mapped[str] = mapped_column(String(64), unique=True)
    hash: Mapped[str] = mapped_column(String(64), unique=True)

    __table_args__ = (
        # A subject's trace (a listing's whole life) is read by subject.
        Index("ix_audit_entries_subject", "subject_type", "subject_id"),
    )

    def computed_hash(self) -> str:
        """SHA-256 over the previous hash and this entry's canonical JSON."""
        body = canonical_json({
            "seq": self.seq,
            "occurred_at": self.occurred_at.isoformat(),
            "actor_id": str(self.actor_id) if self.actor_id else None,
            "action": self.action,
            "subject_type": self.subject_type,
            "subject_id": self.subject_id,
            "payload_digest": self.payload_digest,
        })
        return hashlib.sha256((self.prev_hash + body).encode()).hexdigest()


def canonical_json(value: Any) -> str:
    """Sorted keys, no spaces, UTF-8 text: one byte string per value."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      default=str)


def digest(payload: dict[str, Any]) -> str:
    return hashlib.sha256(canonical_json(payload).encode()).hexdigest()


@dataclass(frozen=True)
class _Pending:
    actor_id: uuid.UUID | None
    action: str
    subject: Any
    subject_type: str
    details: dict[str, Any]
    # The innermost savepoint open when it was recorded; None: the transaction itself.
    savepoint: SessionTransaction | None = None


def record(
    session: Session,
    *,
    actor_id: uuid.UUID | None,
    action: str,
    subject: Any,
    subject_type: str | None = None,
    details: dict[str, Any] | None = None,
) -> None:
    """Queue an audit entry for the current transaction (written at commit, or never).

    `subject` is a model instance (its id is read at commit, after the flush) or an id.
    """
    subject_type = subject_type or getattr(subject, "__tablename__", None)
    if subject_type is None:
        raise ValueError("subject_type is required when the subject is not a model")
    if not session.in_transaction():
        # Begin now, so that a rollback before any query still ends (and drops) the entry.
        session.begin()
    pending = session.info.setdefault(_PENDING, [])
    pending.append(_Pending(actor_id, action, subject, subject_type, dict(details or {}),
                            session.get_nested_transaction()))


def _subject_id(subject: Any) -> str:
    return str(getattr(subject, "id", subject))


def _lock_chain(session: Session) -> None:
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _CHAIN_LOCK_KEY})


def _enclosing_savepoint(savepoint: SessionTransaction) -> SessionTransaction | None:
    transaction = savepoint.parent
    while transaction is not None and not transaction.nested:
        transaction = transaction.parent
    return transaction


@event.listens_for(Session, "before_commit")
def _write_pending_entries(session: Session) -> None:
    if session.in_nested_transaction():
        # A savepoint is being released: its entries move up in _adopt_released_entries and
        # are written when the whole transaction commits. (Session.commit(), which
        # unit_of_work uses, releases open savepoints before the outermost commit fires.)
        return
    pending: list[_Pending] = session.info.pop(_PENDING, [])
    if not pending:
        return
    session.flush()  # subjects created in this transaction get their ids
    _lock_chain(session)
    head = session.execute(
        select(AuditEntry.seq, AuditEntry.hash).order_by(AuditEntry.seq.desc()).limit(1)
    ).first()
    seq, prev_hash = (head.seq, head.hash) if head else (0, GENESIS_HASH)
    at = clock.now()
    for item in pending:
        seq += 1
        entry = AuditEntry(
            seq=seq,
            occurred_at=at,
            actor_id=item.actor_id,
            action=item.action,
            subject_type=item.subject_type,
            subject_id=_subject_id(item.subject),
            details=item.details,
            payload_digest=digest(item.details),
            prev_hash=prev_hash,
        )
        entry.hash = entry.computed_hash()
        prev_hash = entry.hash
        session.add(entry)


@event.listens_for(Session, "after_commit")
def _adopt_released_entries(session: Session) -> None:
    savepoint = session.get_nested_transaction()  # still the one just released
    pending: list[_Pending] = session.info.get(_PENDING, [])
    if savepoint is None:
        if pending:  # only if a savepoint was left open when its root was committed
            log.error("audit entries recorded in an unreleased savepoint were not written",
                      extra={"actions": [item.action for item in pending]})
        return
    enclosing = _enclosing_savepoint(savepoint)
    session.info[_PENDING] = [
        replace(item, savepoint=enclosing) if item.savepoint is savepoint else item
        for item in pending
    ]


@event.listens_for(Session, "after_transaction_end")
def _drop_entries_of_ended_transaction(session: Session, transaction: SessionTransaction) -> None:
    # A rolled-back transaction's (or savepoint's) entries must never reach a later commit;
    # a released savepoint's entries were adopted by the enclosing level before this runs.
    if transaction.parent is None:
        session.info.pop(_PENDING, None)
    elif transaction.nested and _PENDING in session.info:
        session.info[_PENDING] = [item for item in session.info[_PENDING]
                                  if item.savepoint is not transaction]


@event.listens_for(AuditEntry, "before_update")
@event.listens_for(AuditEntry, "before_delete")
def _refuse_changes(mapper: Any, connection: Any, target: AuditEntry) -> None:
    raise PermissionError("audit entries are append-only")


@event.listens_for(Session, "do_orm_execute")
def _refuse_bulk_changes(state: ORMExecuteState) -> None:
    # UPDATE and DELETE statements run through a session skip the mapper events above.
    if state.is_update or state.is_delete:
        table = state.statement.table  # type: ignore[attr-defined]
        if (table.name, table.schema) == (AuditEntry.__table__.name,
                                          AuditEntry.__table__.schema):
            raise PermissionError("audit entries are append-only")


@dataclass(frozen=True)
class ChainReport:
    valid: bool
    entries: int
    head_hash: str | None
    first_bad_entry: int | None


def verify_chain(session: Session, *, batch_size: int = 5000) -> ChainReport:
    """Recompute every entry's digest and hash in order; report the first that does not fit."""
    entries = 0
    prev_hash = GENESIS_HASH
    head_hash: str | None = None
    first_bad: int | None = None
    columns = [column for column in AuditEntry.__table__.columns]
    # Plain rows, not tracked instances: memory stays flat over millions of entries.
    rows = session.execute(
        select(*columns).order_by(AuditEntry.seq).execution_options(yield_per=batch_size))
    for row in rows:
        entries += 1
        entry = AuditEntry(**row._asdict())
        intact = (
            entry.seq == entries
            and entry.prev_hash == prev_hash
            and entry.payload_digest == digest(entry.details)
            and entry.hash == entry.computed_hash()
        )
        if not intact and first_bad is None:
            first_bad = entry.seq
        prev_hash = head_hash = entry.hash
    return ChainReport(first_bad is None, entries, head_hash, first_bad)
