"""The append-only audit trail of every state change: plain rows, appended without a lock.

Services call `record()` during a unit of work; the entries are written just before the
commit (`write()` writes one at once, for a record numbered by its entry). No writer waits for
another: each entry is a row with an id, its fields and the digest of its details, and on
PostgreSQL the id of the transaction that wrote it (`txid`). The evidence log's sealer
(`app.log.sealer`) integrates committed entries into the Merkle tree afterwards, in an order it
can decide without a lock; tamper evidence comes from there.

Entries follow their transaction, savepoints included: an entry recorded inside a savepoint
that rolls back is dropped with it, one recorded inside a released savepoint joins the
enclosing level, and nothing is written when a savepoint is released (SQLAlchemy fires
`before_commit` for savepoints too), so a savepoint that fails cannot take earlier entries
down with it.
"""

from __future__ import annotations

import json.encoder
import logging
import uuid
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, FetchedValue, Index, Integer, String, event
from sqlalchemy.dialects.postgresql.base import ischema_names
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Mapped, Session, SessionTransaction, mapped_column
from sqlalchemy.types import TypeDecorator, TypeEngine, UserDefinedType

from app import clock
from app.db import Base
from app.records import canonical_json, make_append_only, sha256_hex

log = logging.getLogger(__name__)

_PENDING = "audit_pending"
# How canonical_json (ensure_ascii=False) writes a string.
_json_string = json.encoder.encode_basestring


class Xid8(UserDefinedType[int]):
    """PostgreSQL's 64-bit transaction id (13+)."""

    cache_ok = True

    def get_col_spec(self, **_: Any) -> str:
        return "xid8"


# Reflection (flask db check) knows the type instead of warning about it.
ischema_names.setdefault("xid8", Xid8)


class TransactionId(TypeDecorator[int]):
    """The writing transaction's id: xid8 on PostgreSQL, a plain (unused) integer elsewhere."""

    impl = BigInteger
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        return dialect.type_descriptor(Xid8() if dialect.name == "postgresql" else BigInteger())

    def process_result_value(self, value: Any, dialect: Dialect) -> int | None:
        return None if value is None else int(value)


class AuditEntry(Base):
    """One state change: who did what to which subject, and the digest of its details."""

    __tablename__ = "audit_entries"

    # BIGINT on PostgreSQL; INTEGER on SQLite, where only that is an autoincrementing rowid.
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"),
                                    primary_key=True, autoincrement=True)
    occurred_at: Mapped[datetime]
    actor_id: Mapped[uuid.UUID | None] = mapped_column(index=True)
    action: Mapped[str] = mapped_column(String(80))
    subject_type: Mapped[str] = mapped_column(String(40))
    subject_id: Mapped[str] = mapped_column(String(64))
    details: Mapped[dict[str, Any]] = mapped_column(JSON)
    payload_digest: Mapped[str] = mapped_column(String(64))
    # The product the change concerns, when it is not the listing itself (an order of it,
    # its settlement, a payout of it): what a listing's trace reads. Not hashed: it is
    # derived from facts the entry's hash covers (the order, named by the subject or the
    # details, fixes its listing), and entries written before it existed were backfilled.
    listing_id: Mapped[uuid.UUID | None] = mapped_column(index=True)
    # PostgreSQL fills it in (DEFAULT pg_current_xact_id()): the sealer takes entries by the
    # transactions that have ended, not by ids, which are drawn before their commit.
    txid: Mapped[int | None] = mapped_column(TransactionId(), server_default=FetchedValue(),
                                             index=True)

    __table_args__ = (
        # A subject's trace (a listing's whole life) is read by subject.
        Index("ix_audit_entries_subject", "subject_type", "subject_id"),
    )

    def content_intact(self) -> bool:
        return self.payload_digest == digest(self.details)


make_append_only(AuditEntry)


def leaf_content(entry: Any) -> dict[str, Any]:
    """What an entry's leaf holds: every field but the details, which its digest stands for
    (a model instance or a row with the entry's columns)."""
    return {
        "id": entry.id,
        "occurred_at": entry.occurred_at.isoformat(),
        "actor_id": str(entry.actor_id) if entry.actor_id else None,
        "action": entry.action,
        "subject_type": entry.subject_type,
        "subject_id": entry.subject_id,
        "payload_digest": entry.payload_digest,
    }


def leaf_bytes(entry: Any) -> bytes:
    """The entry's leaf in the evidence log: the canonical JSON of `leaf_content`, UTF-8."""
    return leaf_bytes_of(entry.id, entry.occurred_at, entry.actor_id, entry.action,
                         entry.subject_type, entry.subject_id, entry.payload_digest)


def leaf_bytes_of(entry_id: int, occurred_at: datetime, actor_id: uuid.UUID | None,
                  action: str, subject_type: str, subject_id: str,
                  payload_digest: str) -> bytes:
    """`leaf_bytes` from the entry's fields: written out field by field, in canonical_json's
    sorted key order and with its string escaping, because full verification builds every
    leaf of the log (tests hold it equal to canonical_json(leaf_content(entry)))."""
    actor = _json_string(str(actor_id)) if actor_id else "null"
    return (f'{{"action":{_json_string(action)},"actor_id":{actor},"id":{int(entry_id)},'
            f'"occurred_at":{_json_string(occurred_at.isoformat())},'
            f'"payload_digest":{_json_string(payload_digest)},'
            f'"subject_id":{_json_string(subject_id)},'
            f'"subject_type":{_json_string(subject_type)}}}').encode()


def digest(payload: dict[str, Any]) -> str:
    return sha256_hex(canonical_json(payload))


@dataclass(frozen=True)
class _Pending:
    actor_id: uuid.UUID | None
    action: str
    subject: Any
    subject_type: str
    details: dict[str, Any]
    listing_id: uuid.UUID | None
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
    listing_id: uuid.UUID | None = None,
) -> None:
    """Queue an audit entry for the current transaction (written at commit, or never).

    `subject` is a model instance (its id is read at commit, after the flush) or an id;
    `listing_id` names the product the change concerns, for that listing's trace.
    """
    subject_type = subject_type or getattr(subject, "__tablename__", None)
    if subject_type is None:
        raise ValueError("subject_type is required when the subject is not a model")
    if not session.in_transaction():
        # Begin now, so that a rollback before any query still ends (and drops) the entry.
        session.begin()
    pending = session.info.setdefault(_PENDING, [])
    pending.append(_Pending(actor_id, action, subject, subject_type, dict(details or {}),
                            listing_id, session.get_nested_transaction()))


def write(session: Session, *, actor_id: uuid.UUID | None, action: str, subject_type: str,
          subject_id: str, details: dict[str, Any], occurred_at: datetime) -> AuditEntry:
    """Write an entry now, in the current transaction, and return it with its id: for a record
    that is numbered by its own entry (a credit ledger entry). Like every entry, it is a
    plain row that the sealer integrates once its transaction has committed."""
    entry = AuditEntry(occurred_at=occurred_at, actor_id=actor_id, action=action,
                       subject_type=subject_type, subject_id=subject_id, details=details,
                       payload_digest=digest(details))
    session.add(entry)
    session.flush([entry])
    return entry


def _subject_id(subject: Any) -> str:
    return str(getattr(subject, "id", subject))


def _enclosing_savepoint(savepoint: SessionTransaction) -> SessionTransaction | None:
    transaction = savepoint.parent
    while transaction is not None and not transaction.nested:
        transaction = transaction.parent
    return transaction


# insert=True: before every other listener, so the entries are flushed ahead of the
# transaction's last statements (`app.db.run_last`).
@event.listens_for(Session, "before_commit", insert=True)
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
    at = clock.now()
    session.add_all(AuditEntry(occurred_at=at, actor_id=item.actor_id, action=item.action,
                               subject_type=item.subject_type,
                               subject_id=_subject_id(item.subject), details=item.details,
                               payload_digest=digest(item.details), listing_id=item.listing_id)
                    for item in pending)


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
