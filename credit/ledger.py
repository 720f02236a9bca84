"""The credit ledger: appending to its hash chain, and folding entries into findings.

Entries are written at once (not at commit, like the audit trail) because the cached score,
penalties and blacklist are updated from them in the same transaction. A revocation,
correction or repair is a new entry referring to the finding it ends.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from app import chains, clock
from app.chains import ChainReport, lock_and_read_head, make_append_only
from credit.models import CreditEntry, EntryAction
from credit.scoring import ScoredEvent

_CHAIN_LOCK_KEY = 0x63726564697400  # names the credit chain's PostgreSQL advisory lock

make_append_only(CreditEntry)


def lock_chain(session: Session) -> None:
    """Take the chain's lock (PostgreSQL; held until commit) without reading its head.

    Every writer takes it before any profile's row lock (`services.lock_profile`): a writer
    holding a profile while it waited for the chain, held by one that had appended for
    another party and now wanted that profile, deadlocked. One order: chain, then profiles.
    """
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _CHAIN_LOCK_KEY})


def append(session: Session, entry: CreditEntry) -> CreditEntry:
    """Chain the entry after the current head and write it (the lock is held until commit)."""
    seq, prev_hash = lock_and_read_head(session, CreditEntry, _CHAIN_LOCK_KEY)
    entry.id = entry.id or uuid.uuid4()
    entry.occurred_at = entry.occurred_at or clock.now()
    entry.seal(seq + 1, prev_hash)
    session.add(entry)
    session.flush()
    return entry


def verify(session: Session) -> ChainReport:
    """Recompute the whole credit chain; report the first entry that does not fit."""
    return chains.verify_chain(session, CreditEntry)


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
