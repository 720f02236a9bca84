"""Use cases of trading credit: findings, scores, penalties, enforcement.

Other domains call `record_system_event` (the service's own findings), `ensure_may_list`,
`ensure_may_trade`, `trade_restricted` (the same rule as SQL, for queries), `credit_level_of`
and `credit_level`; nothing here knows about listings or orders. The
blacklist lives in `credit.blacklisting`, objections and repairs in `credit.remedies`.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Iterable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, ScalarSelect, bindparam, event, exists, select
from sqlalchemy.orm import Session, SessionTransaction

from app import audit, clock
from app.db import upsert_insert
from app.errors import NotFound, ValidationFailed
from app.parties.models import SYSTEM, Actor, Party
from credit import blacklisting, ledger
from credit.catalog import (
    CATALOG,
    EventKind,
    PenaltyKind,
    Severity,
    penalties_for,
    points_for,
)
from credit.errors import PartyRestricted, UnknownEventKind
from credit.models import CreditEntry, CreditProfile, EntryAction, Penalty
from credit.scoring import BASE_SCORE, Level, level, score


def event_kind(code: str) -> EventKind:
    try:
        return CATALOG[code]
    except KeyError:
        raise UnknownEventKind(f"{code!r} is not in the catalog.",
                               errors={"kind": [f"One of: {', '.join(CATALOG)}."]}) from None


def check_severity(kind: EventKind, severity: Severity) -> None:
    """422 unless the severity fits the kind: positive kinds take `positive`, others not."""
    if kind.positive != (severity is Severity.POSITIVE):
        expected = "positive" if kind.positive else "minor, general, serious or severe"
        raise ValidationFailed(f"A {kind.code} event takes severity {expected}.",
                               errors={"severity": [f"Must be {expected} for {kind.code}."]})


_LOCKED = "credit_profiles_locked"


class ProfileLockOrder(RuntimeError):
    """A transaction asked for a profile after taking others (a programming error)."""


def lock_profiles(session: Session, party_ids: Iterable[uuid.UUID],
                  ) -> dict[uuid.UUID, CreditProfile]:
    """The parties' cached profiles, created if missing and row-locked in party order: what
    a transaction that changes several parties' records takes first.

    No lock is common to every writer, so two transactions changing two parties' records
    each could take their profiles in opposite orders and deadlock. A transaction therefore
    takes its profiles once: all of them here, in one order (by party id), or one with
    `lock_profile`. Asking for another later is a programming error (`ProfileLockOrder`),
    refused whatever the ids, so a path that would deadlock only sometimes fails every time.
    """
    wanted = sorted(set(party_ids))
    if not wanted:
        return {}
    held: set[uuid.UUID] = session.info.setdefault(_LOCKED, set())
    new = [party_id for party_id in wanted if party_id not in held]
    if new and held:
        raise ProfileLockOrder(f"credit profile {new[0]} asked for while holding others: a "
                               f"transaction takes every profile it changes at once, with "
                               f"lock_profiles")
    if new:
        at = clock.now()
        session.execute(upsert_insert(session, CreditProfile).values([
            {"party_id": party_id, "score": BASE_SCORE, "level": level(BASE_SCORE).value,
             "computed_at": at} for party_id in new]).on_conflict_do_nothing())
    profiles = session.scalars(select(CreditProfile).where(CreditProfile.party_id.in_(wanted))
                               .order_by(CreditProfile.party_id).with_for_update()
                               .execution_options(populate_existing=True)).all()
    held.update(new)
    return {profile.party_id: profile for profile in profiles}


def lock_profile(session: Session, party_id: uuid.UUID) -> CreditProfile:
    """The party's cached profile, created if missing and row-locked: one writer per party
    (see `lock_profiles` for the order in which a transaction takes several)."""
    return lock_profiles(session, [party_id])[party_id]


@event.listens_for(Session, "after_transaction_end")
def _forget_profile_locks(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None:
        session.info.pop(_LOCKED, None)


def refresh_profile(session: Session, profile: CreditProfile, at: datetime, *,
                    findings: dict[uuid.UUID, ledger.Finding] | None = None) -> CreditProfile:
    """Recompute the cached score and level from the party's findings at `at` (read from
    the ledger unless the caller already folded them)."""
    if findings is None:
        findings = ledger.party_findings(session, profile.party_id)
    value = score(ledger.scored(findings.values()), at)
    profile.score, profile.level, profile.computed_at = value, level(value), at
    return profile


def refresh_standing(session: Session, profile: CreditProfile, at: datetime, *,
                     may_list: bool = True) -> CreditProfile:
    """Refresh the cached score and level at `at`, then bring the level-D blacklisting in
    line with the level. Every change to a party's record ends here (the profile locked)."""
    refresh_profile(session, profile, at)
    blacklisting.reconcile_blacklisting(session, profile, at, may_list=may_list)
    session.flush()
    return profile


def record_event(session: Session, *, party_id: uuid.UUID, kind: str, severity: Severity,
                 description: str, evidence_ref: str | None, actor: Actor) -> CreditEntry:
    """Record a finding (or a positive event) and apply what follows from it: the score,
    the catalog's penalties and, for severe findings or level D, the blacklist."""
    catalog_kind = event_kind(kind)
    check_severity(catalog_kind, severity)
    if session.get(Party, party_id) is None:
        raise NotFound("No such party.")
    profile = lock_profile(session, party_id)
    entry = ledger.append(session, CreditEntry(
        party_id=party_id, action=EntryAction.RECORDED, kind=kind, severity=severity,
        points=points_for(catalog_kind, severity), description=description,
        evidence_ref=evidence_ref, recorded_by=actor.id))
    apply_consequences(session, entry, catalog_kind)
    # Good conduct may lift a party out of level D, never put it on the blacklist.
    refresh_standing(session, profile, entry.occurred_at, may_list=not catalog_kind.positive)
    audit.record(session, actor_id=actor.id, action="credit.event_recorded", subject=entry.id,
                 subject_type="credit_entries",
                 details={"party_id": str(party_id), "kind": kind, "severity": severity.value,
                          "points": entry.points, "score": profile.score})
    return entry


def record_system_event(session: Session, *, party_id: uuid.UUID, kind: str, description: str,
                        evidence_ref: str | None = None,
                        severity: Severity | None = None) -> CreditEntry:
    """A finding the service makes itself (late delivery, prohibited listing attempt, ...)."""
    return record_event(session, party_id=party_id, kind=kind,
                        severity=severity or event_kind(kind).default_severity,
                        description=description, evidence_ref=evidence_ref, actor=SYSTEM)


def apply_consequences(session: Session, entry: CreditEntry, kind: EventKind) -> None:
    """The catalog's penalties for a finding and, for a severe one, its blacklisting.

    A severe finding is a decision of its own with its own publicity (a later fraud must not
    end with an earlier listing). What the level brings (a level-D listing) is left to
    `refresh_standing`, which the caller runs once the record is complete.
    """
    now = entry.occurred_at
    specs = penalties_for(kind, entry.severity)
    for spec in specs:
        if spec.duration is not None:
            session.add(Penalty(party_id=entry.party_id, event_id=entry.id, kind=spec.kind,
                                starts_at=now, ends_at=now + spec.duration))
    if entry.severity is Severity.SEVERE:
        # Penalties without a duration of their own last the publicity period.
        blacklisting.list_party(
            session, party_id=entry.party_id, basis=entry, at=now,
            reason=f"{kind.description} ({entry.severity.value})",
            penalties=[spec.kind for spec in specs if spec.duration is None])
    session.flush()


def impose_penalty(session: Session, *, party_id: uuid.UUID, kind: PenaltyKind, days: int,
                   amount: int | None, event_id: uuid.UUID | None, actor: Actor) -> Penalty:
    """A penalty decided by an operator or regulator (a fine or deposit carries an amount)."""
    if kind in (PenaltyKind.FINE, PenaltyKind.DEPOSIT) and not amount:
        raise ValidationFailed(f"A {kind.value} needs an amount.",
                               errors={"amount": ["Required for fines and deposits."]})
    if session.get(Party, party_id) is None:
        raise NotFound("No such party.")
    if event_id is not None:
        _check_penalised_finding(session, party_id=party_id, event_id=event_id)
    now = clock.now()
    penalty = Penalty(party_id=party_id, event_id=event_id, kind=kind, starts_at=now,
                      ends_at=now + timedelta(days=days), amount=amount)
    session.add(penalty)
    session.flush()
    audit.record(session, actor_id=actor.id, action="credit.penalty_imposed", subject=penalty,
                 details={"party_id": str(party_id), "kind": kind.value, "days": days,
                          "amount": amount})
    return penalty


def _check_penalised_finding(session: Session, *, party_id: uuid.UUID,
                             event_id: uuid.UUID) -> None:
    # A penalty names the finding it punishes: a fine tied to a missing event, to another
    # party's, or to a positive event or a ledger note (revocation, repair) would say
    # something false in the party's file and escape the rules that follow its finding.
    entry = session.scalar(select(CreditEntry).where(CreditEntry.id == event_id))
    if (entry is None or entry.party_id != party_id
            or entry.action not in (EntryAction.RECORDED, EntryAction.CORRECTED)
            or entry.points >= 0):
        raise ValidationFailed("The event is not a finding about this party.",
                               errors={"event_id": ["Must be a finding about the party."]})


def pay_fine(session: Session, *, penalty_id: uuid.UUID, actor: Actor) -> Penalty:
    """Record that a fine (or deposit) was paid."""
    penalty = session.get(Penalty, penalty_id)
    if penalty is None or penalty.kind not in (PenaltyKind.FINE, PenaltyKind.DEPOSIT):
        raise NotFound("No such fine or deposit.")
    if penalty.paid_at is None:
        penalty.paid_at = clock.now()
        audit.record(session, actor_id=actor.id, action="credit.fine_paid", subject=penalty,
                     details={"party_id": str(penalty.party_id), "amount": penalty.amount})
    return penalty


# Built once: every order, demand and listing submission asks it of one or two parties.
_ACTIVE_PENALTIES = select(Penalty).where(
    Penalty.party_id == bindparam("party_id"), Penalty.lifted_at.is_(None),
    Penalty.starts_at <= bindparam("at"), Penalty.ends_at > bindparam("at"),
).order_by(Penalty.starts_at)


def active_penalties(session: Session, party_id: uuid.UUID, at: datetime) -> list[Penalty]:
    """The party's penalties in force at `at`, oldest first."""
    return list(session.scalars(_ACTIVE_PENALTIES, {"party_id": party_id, "at": at}))


_ACTIVE_PENALTIES_OF_PARTIES = select(Penalty).where(
    Penalty.party_id.in_(bindparam("party_ids", expanding=True)), Penalty.lifted_at.is_(None),
    Penalty.starts_at <= bindparam("at"), Penalty.ends_at > bindparam("at"),
).order_by(Penalty.starts_at)


def _restrictions(penalties: list[Penalty], kind: PenaltyKind,
                  doing: str) -> PartyRestricted | None:
    restricting = [p for p in penalties if p.kind is kind]
    if not restricting:
        return None
    until = max(p.ends_at for p in restricting)
    return PartyRestricted(f"Under a {kind.value} until {until.isoformat()}: cannot {doing}.",
                           penalty=kind.value, until=until.isoformat())


def _ensure_free_of(session: Session, party_id: uuid.UUID, kind: PenaltyKind,
                    doing: str) -> None:
    restricted = _restrictions(active_penalties(session, party_id, clock.now()), kind, doing)
    if restricted is not None:
        raise restricted


def trade_restrictions(session: Session,
                       party_ids: Collection[uuid.UUID]) -> dict[uuid.UUID, PartyRestricted]:
    """The 403 `ensure_may_trade` raises, for each of the parties under a trade restriction:
    one query for both sides of an order."""
    penalties: dict[uuid.UUID, list[Penalty]] = {}
    for penalty in session.scalars(_ACTIVE_PENALTIES_OF_PARTIES,
                                   {"party_ids": list(party_ids), "at": clock.now()}):
        penalties.setdefault(penalty.party_id, []).append(penalty)
    found = {party_id: _restrictions(held, PenaltyKind.TRADE_RESTRICTION, "trade")
             for party_id, held in penalties.items()}
    return {party_id: error for party_id, error in found.items() if error is not None}


def ensure_may_list(session: Session, party_id: uuid.UUID) -> None:
    """403 party_restricted for a party under a listing ban."""
    _ensure_free_of(session, party_id, PenaltyKind.LISTING_BAN, "create or submit listings")


def ensure_may_trade(session: Session, party_id: uuid.UUID) -> None:
    """403 party_restricted for a party under a trade restriction (orders, demands, matches)."""
    _ensure_free_of(session, party_id, PenaltyKind.TRADE_RESTRICTION, "trade")


def trade_restricted(party_id: Any, at: datetime) -> ColumnElement[bool]:
    """SQL: the party in `party_id` (a column) is under a trade restriction at `at` — the
    rule of `ensure_may_trade`, for filtering many parties in one query."""
    return exists().where(Penalty.party_id == party_id,
                          Penalty.kind == PenaltyKind.TRADE_RESTRICTION,
                          Penalty.lifted_at.is_(None), Penalty.starts_at <= at,
                          Penalty.ends_at > at)


def credit_level(session: Session, party_id: uuid.UUID) -> Level:
    """The party's cached level (A for a party with no record yet)."""
    cached = session.get(CreditProfile, party_id)
    return cached.level if cached is not None else level(BASE_SCORE)


def credit_level_of(party_id: Any) -> ScalarSelect[Level]:
    """SQL: the cached credit level of the party in `party_id` (a column), NULL for a party
    never scored (see `level_or_base`), so a query ranks many parties' rows at once."""
    return select(CreditProfile.level).where(
        CreditProfile.party_id == party_id).scalar_subquery()


def level_or_base(cached: Level | None) -> Level:
    return cached if cached is not None else level(BASE_SCORE)


# The matching engine ranks better-rated merchants higher by this many points out of 100.
RANKING_BOOST = {Level.A: 10, Level.B: 5, Level.C: 0, Level.D: 0}


def unpaid_penalties(session: Session, party_id: uuid.UUID) -> list[Penalty]:
    """The party's fines and deposits still owed (not paid, not lifted), oldest first.

    Whatever finding they were imposed for, and whether or not their period has run: a
    debt to the exchange is settled by paying it, not by waiting.
    """
    return list(session.scalars(select(Penalty).where(
        Penalty.party_id == party_id,
        Penalty.kind.in_([PenaltyKind.FINE, PenaltyKind.DEPOSIT]),
        Penalty.paid_at.is_(None), Penalty.lifted_at.is_(None)).order_by(Penalty.starts_at)))
