"""Hash chains: the credit ledger's (the audit trail's entries are leaves of the evidence log,
`app.log`, instead), and the canonical JSON and append-only guard every record shares.

Each entry carries a gapless `seq`, the previous entry's hash and its own: SHA-256 over the
previous hash and the entry's canonical JSON. Appends take a PostgreSQL advisory lock held to
commit, so concurrent writers never fork a chain; updates and deletes are refused.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import BigInteger, Integer, String, event, select, text
from sqlalchemy.orm import Mapped, ORMExecuteState, Session, mapped_column

from app.db import Base

GENESIS_HASH = "0" * 64


# One encoder for every call (json.dumps with options builds one per call).
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                              default=str)


def canonical_json(value: Any) -> str:
    """Sorted keys, no spaces, UTF-8 text: one byte string per value."""
    return _CANONICAL.encode(value)


def sha256_hex(text_: str) -> str:
    return hashlib.sha256(text_.encode()).hexdigest()


class ChainedEntry:
    """Mixin for an append-only model whose rows form a hash chain."""

    seq: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=False)
    prev_hash: Mapped[str] = mapped_column(String(64), unique=True)
    hash: Mapped[str] = mapped_column(String(64), unique=True)

    def chained_content(self) -> dict[str, Any]:
        """What the hash covers besides the previous hash."""
        raise NotImplementedError

    def computed_hash(self) -> str:
        return sha256_hex(self.prev_hash + canonical_json(self.chained_content()))

    def seal(self, seq: int, prev_hash: str) -> None:
        """Place the entry after (seq - 1, prev_hash) and compute its hash."""
        self.seq, self.prev_hash = seq, prev_hash
        self.hash = self.computed_hash()


@dataclass(frozen=True)
class ChainReport:
    valid: bool
    entries: int
    head_hash: str | None
    first_bad_entry: int | None


def lock_and_read_head(session: Session, model: type[ChainedEntry],
                       lock_key: int) -> tuple[int, str]:
    """Serialize appenders (PostgreSQL, until commit) and return the head (seq, hash)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": lock_key})
    head = session.execute(
        select(model.seq, model.hash).order_by(model.seq.desc()).limit(1)).first()
    return (head.seq, head.hash) if head else (0, GENESIS_HASH)


def verify_chain(session: Session, model: type[ChainedEntry], *,
                 batch_size: int = 5000) -> ChainReport:
    """Recompute every entry in order; report the first whose seq, link or hash is wrong."""
    entries = 0
    prev_hash = GENESIS_HASH
    head_hash: str | None = None
    first_bad: int | None = None
    # ChainedEntry is a mixin: the table is its mapped subclass's, unknown to the checker.
    columns = list(model.__table__.columns)  # type: ignore[attr-defined]
    # Plain rows, not tracked instances: memory stays flat over millions of entries.
    rows = session.execute(
        select(*columns).order_by(model.seq).execution_options(yield_per=batch_size))
    for row in rows:
        entries += 1
        entry = model(**row._asdict())
        intact = (entry.seq == entries and entry.prev_hash == prev_hash
                  and entry.hash == entry.computed_hash())
        if not intact and first_bad is None:
            first_bad = entry.seq
        prev_hash = head_hash = entry.hash
    return ChainReport(first_bad is None, entries, head_hash, first_bad)


def make_append_only(model: type[Base]) -> None:
    """Refuse updates and deletes through the ORM, unit of work and bulk statements alike
    (PostgreSQL triggers refuse them from outside the service)."""
    name = model.__tablename__

    def refuse(*_: Any) -> None:
        raise PermissionError(f"{name} is append-only")

    event.listen(model, "before_update", refuse)
    event.listen(model, "before_delete", refuse)

    def refuse_bulk(state: ORMExecuteState) -> None:
        # An UPDATE's or DELETE's statement has a table; SQLAlchemy types it as any Executable.
        if (state.is_update or state.is_delete) and \
                state.statement.table.name == name:  # type: ignore[attr-defined]
            refuse()

    event.listen(Session, "do_orm_execute", refuse_bulk)
