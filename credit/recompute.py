"""Recomputing cached credit profiles from the ledger, in batches of parties.

The cached score is only written when a party's record changes, but it also moves with time
(old findings decay, incentives older than a year stop counting). The nightly job therefore
checks each cached profile against the ledger at the moment it was computed (a difference
means the cache or the ledger was tampered with, or a bug) and then refreshes every profile
at the present, so that levels, blacklistings and fast-track eligibility follow the decay.

Entries are read for a batch of parties at a time in one ordered query, not one query per
party, and each batch is one transaction holding its profiles' row locks briefly.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from itertools import groupby
from operator import attrgetter
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app import clock
from credit import blacklisting, ledger, services
from credit.models import BlacklistEntry, CreditEntry, CreditProfile
from credit.scoring import Level, level, score

BATCH_SIZE = 500


@dataclass
class BatchResult:
    differences: list[dict[str, Any]] = field(default_factory=list)
    refreshed: int = 0
    last_party_id: uuid.UUID | None = None  # where the next batch starts; None when done


def recompute_all(session: Session, *, batch_size: int = BATCH_SIZE) -> list[dict[str, Any]]:
    """Profiles whose cached score differs from the ledger at their own computed_at (read
    only: nothing is locked or changed)."""
    differences: list[dict[str, Any]] = []
    after: uuid.UUID | None = None
    while profiles := _next_profiles(session, after, batch_size, lock=False):
        findings = _findings_by_party(session, [p.party_id for p in profiles])
        differences += _differences(profiles, findings)
        after = profiles[-1].party_id
    return differences


def recompute_and_refresh_batch(session: Session, *, after: uuid.UUID | None,
                                batch_size: int = BATCH_SIZE) -> BatchResult:
    """For the next batch of profiles (by party id, after `after`), row-locked as
    `services.lock_profile` locks one: report those whose cached score differs from the ledger
    at their computed_at, then refresh all of them at the present and reconcile their
    blacklisting."""
    profiles = _next_profiles(session, after, batch_size, lock=True)
    if not profiles:
        return BatchResult()
    # Read under the locks: an event recorded before them is then never in the future of the
    # refresh (which would drop it from the score).
    at = clock.now()
    party_ids = [profile.party_id for profile in profiles]
    findings = _findings_by_party(session, party_ids)
    result = BatchResult(differences=_differences(profiles, findings), refreshed=len(profiles),
                         last_party_id=party_ids[-1] if len(profiles) == batch_size else None)
    listed = set(session.scalars(select(BlacklistEntry.party_id).where(
        BlacklistEntry.party_id.in_(party_ids), BlacklistEntry.ended_at.is_(None))))
    for profile in profiles:
        party_findings = findings.get(profile.party_id, {})
        services.refresh_profile(session, profile, at, findings=party_findings)
        # Only a party now at level D, or one with a listing, can need its blacklisting
        # changed; the others are spared the queries.
        if profile.level is Level.D or profile.party_id in listed:
            blacklisting.reconcile_blacklisting(session, profile, at)
    session.flush()
    return result


def _next_profiles(session: Session, after: uuid.UUID | None, size: int, *,
                   lock: bool) -> list[CreditProfile]:
    stmt = select(CreditProfile).order_by(CreditProfile.party_id).limit(size)
    if after is not None:
        stmt = stmt.where(CreditProfile.party_id > after)
    if lock:
        # The same row locks lock_profiles takes, in its order (by party id), for the whole
        # batch at once; re-read, so the score compared is the one committed before the lock
        # was granted.
        stmt = stmt.with_for_update().execution_options(populate_existing=True)
    return list(session.scalars(stmt))


def _findings_by_party(session: Session, party_ids: list[uuid.UUID],
                       ) -> dict[uuid.UUID, dict[uuid.UUID, ledger.Finding]]:
    """Every entry of these parties in one pass, ordered by party and entry number."""
    entries = session.scalars(select(CreditEntry).where(CreditEntry.party_id.in_(party_ids))
                              .order_by(CreditEntry.party_id, CreditEntry.seq))
    return {party_id: ledger.fold(group)
            for party_id, group in groupby(entries, key=attrgetter("party_id"))}


def _differences(profiles: list[CreditProfile],
                 findings: dict[uuid.UUID, dict[uuid.UUID, ledger.Finding]],
                 ) -> list[dict[str, Any]]:
    differences = []
    for profile in profiles:
        party_findings = findings.get(profile.party_id, {})
        value = score(ledger.scored(party_findings.values()), profile.computed_at)
        if (value, level(value)) != (profile.score, profile.level):
            differences.append({"party_id": str(profile.party_id), "cached": profile.score,
                                "recomputed": value})
    return differences
