"""What operators watch of the evidence log: how far behind the sealer is, and why.

The merge delay of an entry is from its `occurred_at` (written just before its transaction
commits) to its leaf's `integrated_at`. On PostgreSQL the sealer takes only entries below the
oldest transaction still running in this database (`app.log.sealer`), so one left open holds
every later entry back: `holding_back` names it (PostgreSQL ends the service's own idle ones
after DATABASE_IDLE_IN_TRANSACTION_SECONDS).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, Text, cast, func, literal, select, text
from sqlalchemy.orm import Session

from app import clock
from app.audit import AuditEntry, Xid8
from app.log.models import LogLeaf, latest_checkpoint

RECENT_LEAVES = 10_000


@dataclass(frozen=True)
class Transaction:
    """A transaction running in this database, the oldest (it holds the sealer back)."""

    pid: int
    state: str
    application: str
    started_at: datetime


@dataclass(frozen=True)
class LogStatus:
    """The log's size and age, the entries waiting, and the recent merge delays (seconds)."""

    tree_size: int
    checkpoint_age: float | None  # seconds since the latest checkpoint was signed
    waiting: int  # committed entries not yet in the log
    oldest_waiting_age: float | None
    recent: int  # the latest leaves the delays are taken from
    delay_p50: float | None
    delay_p99: float | None
    delay_max: float | None
    holding_back: Transaction | None


def _percentile(values: list[float], fraction: float) -> float:
    return values[min(len(values) - 1, math.ceil(fraction * len(values)) - 1)]


def log_status(session: Session, recent: int = RECENT_LEAVES) -> LogStatus:
    """The sealer's figures now, the delays of the latest `recent` leaves."""
    now = clock.now()
    checkpoint = latest_checkpoint(session)
    # Only entries at or past the sealer's position can be waiting (PostgreSQL: from its
    # watermark on, by the txid index; SQLite: after the last leaf's entry, in id order).
    since: ColumnElement[bool]
    if session.get_bind().dialect.name == "postgresql":
        watermark = (checkpoint.xmin_watermark or 0) if checkpoint else 0
        since = AuditEntry.txid >= cast(cast(literal(watermark), Text), Xid8())
    else:
        since = AuditEntry.id > func.coalesce(select(func.max(LogLeaf.entry_id))
                                              .scalar_subquery(), 0)
    waiting, oldest = session.execute(
        select(func.count(), func.min(AuditEntry.occurred_at)).where(
            since, ~select(LogLeaf.entry_id).where(LogLeaf.entry_id == AuditEntry.id).exists())
    ).one()
    latest = (select(LogLeaf.entry_id, LogLeaf.integrated_at)
              .order_by(LogLeaf.log_index.desc()).limit(recent).subquery())
    delays = sorted((integrated - occurred).total_seconds() for integrated, occurred in
                    session.execute(select(latest.c.integrated_at, AuditEntry.occurred_at)
                                    .join(AuditEntry, AuditEntry.id == latest.c.entry_id)))
    return LogStatus(
        tree_size=checkpoint.tree_size if checkpoint else 0,
        checkpoint_age=(now - checkpoint.created_at).total_seconds() if checkpoint else None,
        waiting=waiting, oldest_waiting_age=(now - oldest).total_seconds() if oldest else None,
        recent=len(delays),
        delay_p50=_percentile(delays, 0.5) if delays else None,
        delay_p99=_percentile(delays, 0.99) if delays else None,
        delay_max=delays[-1] if delays else None,
        holding_back=_oldest_transaction(session))


def _oldest_transaction(session: Session) -> Transaction | None:
    if session.get_bind().dialect.name != "postgresql":
        return None  # one writer at a time: none holds the sealer back
    row = session.execute(text(
        "SELECT pid, state, application_name, xact_start FROM pg_stat_activity "
        "WHERE datname = current_database() AND backend_xid IS NOT NULL "
        "AND pid <> pg_backend_pid() ORDER BY age(backend_xid) DESC LIMIT 1")).first()
    return Transaction(row.pid, row.state or "", row.application_name or "",
                       row.xact_start) if row else None
