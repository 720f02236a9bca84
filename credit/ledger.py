"""The credit ledger: entries appended as leaves of the evidence log, and folded into findings.

An entry is written with an audit entry of its own (`credit.entry_appended`) whose details
are the entry's content, so the leaf the sealer makes of it holds the content's digest; the
entry's number (`seq`) is that audit entry's id. Both are plain rows: no writer waits for
another beyond the row lock of the party's profile that every change to a party's record
takes (`services.lock_profiles`), so one party's entries are numbered in their order.

Entries are written at once (not at commit, like the audit trail's) because the cached score,
penalties and blacklist are updated from them in the same transaction. A revocation,
correction or repair is a new entry referring to the finding it ends.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from app import audit, clock
from app.audit import AuditEntry
from app.log.models import LogLeaf
from app.log.note import Verifier
from app.log.verification import LogReport, verify_log
from app.records import make_append_only
from credit.models import CreditEntry, EntryAction, entry_content
from credit.scoring import ScoredEvent

ENTRY_ACTION = "credit.entry_appended"

make_append_only(CreditEntry)


def append(session: Session, entry: CreditEntry) -> CreditEntry:
    """Write the entry and its audit entry (the party's profile is locked by the caller)."""
    entry.id = entry.id or uuid.uuid4()
    entry.occurred_at = entry.occurred_at or clock.now()
    logged = audit.write(session, actor_id=entry.recorded_by, action=ENTRY_ACTION,
                         subject_type=CreditEntry.__tablename__, subject_id=str(entry.id),
                         details=entry.content(), occurred_at=entry.occurred_at)
    entry.seq = logged.id
    session.add(entry)
    session.flush()
    return entry


def verify(session: Session, verifier: Verifier, *, batch_size: int = 5000) -> LogReport:
    """Whether every credit entry is the content of its leaf in the evidence log and the log
    verifies (`app.log.verification`: every leaf, the tree and the signed checkpoint).

    `entries` counts the credit entries checked against their leaves (those the sealer has
    not integrated yet are not, and are not faults); `first_bad_entry` is the `seq` of the
    first that does not fit: changed, deleted, without its audit entry, or whose leaf is not
    what its audit entry now makes. `head_hash` is the latest checkpoint's root.
    """
    log = verify_log(session, verifier, batch_size=batch_size)
    entries, first_bad = _check_entries(session, batch_size)
    if first_bad is None and log.first_bad_entry is not None and \
            session.get(CreditEntry, log.first_bad_entry) is not None:
        first_bad = log.first_bad_entry  # the entry fits its audit entry; not its leaf
    return LogReport(log.valid and first_bad is None, entries, log.head_hash, first_bad)


def _check_entries(session: Session, batch_size: int) -> tuple[int, int | None]:
    """Each credit entry beside its audit entry and leaf (by key, one pass in seq order), then
    the audit entries of credit entries that are gone (deleted behind the service)."""
    credit, logged = CreditEntry.__table__, AuditEntry.__table__
    rows = session.execute(
        select(*credit.c, logged.c.action.label("logged_action"), logged.c.subject_id,
               logged.c.payload_digest, LogLeaf.log_index)
        .outerjoin(logged, logged.c.id == credit.c.seq)
        .outerjoin(LogLeaf, LogLeaf.entry_id == credit.c.seq)
        .order_by(credit.c.seq).execution_options(yield_per=batch_size))
    checked, first_bad = 0, None
    for row in rows:
        found = row.logged_action == ENTRY_ACTION
        if found and row.log_index is None:
            continue  # not integrated yet
        checked += 1
        intact = (found and row.subject_id == str(row.id)
                  and row.payload_digest == audit.digest(entry_content(row)))
        if not intact and first_bad is None:
            first_bad = row.seq
    gone = select(logged.c.id).where(
        logged.c.action == ENTRY_ACTION,
        ~exists().where(credit.c.seq == logged.c.id)).order_by(logged.c.id)
    deleted = list(session.scalars(gone))
    if deleted:
        first_bad = min(deleted[0], first_bad) if first_bad is not None else deleted[0]
    return checked + len(deleted), first_bad


@dataclass
class Finding:
    """A recorded (or corrected) event and what became of it."""

    entry: CreditEntry
    since: datetime  # when the act was found: a correction keeps the original date
    status: str = "effective"  # effective, revoked, corrected, repaired
    ended_by: uuid.UUID | None = None

    @property
    def effective(self) -> bool:
        return self.status == "effective"


def fold(entries: Iterable[CreditEntry]) -> dict[uuid.UUID, Finding]:
    """Replay a party's entries in order into its findings, keyed by entry id."""
    findings: dict[uuid.UUID, Finding] = {}
    ending = {EntryAction.REVOKED: "revoked", EntryAction.CORRECTED: "corrected",
              EntryAction.REPAIRED: "repaired"}
    for entry in entries:
        ended = findings.get(entry.refers_to) if entry.refers_to else None
        if entry.action in ending and ended is not None:
            ended.status, ended.ended_by = ending[entry.action], entry.id
        if entry.action in (EntryAction.RECORDED, EntryAction.CORRECTED):
            since = ended.since if ended is not None else entry.occurred_at
            findings[entry.id] = Finding(entry, since)
    return findings


def party_findings(session: Session, party_id: uuid.UUID) -> dict[uuid.UUID, Finding]:
    stmt = select(CreditEntry).where(CreditEntry.party_id == party_id).order_by(CreditEntry.seq)
    return fold(session.scalars(stmt))


def scored(findings: Iterable[Finding]) -> list[ScoredEvent]:
    """What the score counts: effective findings, dated from when the act was found."""
    return [ScoredEvent(f.entry.points, f.since) for f in findings if f.effective]
