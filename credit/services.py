"""Use cases of trading credit: findings, scores, penalties, blacklisting, enforcement.

Other domains call `record_system_event` (the service's own findings), `ensure_may_list`,
`ensure_may_trade` and `credit_level`; nothing here knows about listings or orders.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, and_, func, select
from sqlalchemy.orm import Session

from app import audit, clock
from app.db import upsert_insert
from app.errors import NotFound, ValidationFailed
from app.parties.credit_code import normalize_credit_code
from app.parties.models import SYSTEM, Actor, Party
from credit import ledger
from credit.catalog import (
    CATALOG,
    MAX_PUBLICITY,
    EventKind,
    PenaltyKind,
    Severity,
    minimum_publicity,
    penalties_for,
    points_for,
)
from credit.errors import PartyRestricted, UnknownEventKind
from credit.models import (
    BlacklistEntry,
    CreditEntry,
    CreditProfile,
    EntryAction,
    Penalty,
)
from credit.scoring import BASE_SCORE, Level, level, score


def event_kind(code: str) -> EventKind:
    try:
        return CATALOG[code]
    except KeyError:
        raise UnknownEventKind(f"{code!r} is not in the catalog.",
                               errors={"kind": [f"One of: {', '.join(CATALOG)}."]}) from None


def _check_severity(kind: EventKind, severity: Severity) -> None:
    if kind.positive != (severity is Severity.POSITIVE):
        expected = "positive" if kind.positive else "minor, general, serious or severe"
        raise ValidationFailed(f"A {kind.code} event takes severity {expected}.",
                               errors={"severity": [f"Must be {expected} for {kind.code}."]})


def lock_profile(session: Session, party_id: uuid.UUID) -> CreditProfile:
    """The party's cached profile, created if missing and row-locked: one writer per party."""
    session.execute(upsert_insert(session, CreditProfile).values(
        party_id=party_id, score=BASE_SCORE, level=level(BASE_SCORE).value,
        computed_at=clock.now()).on_conflict_do_nothing())
    return session.scalars(select(CreditProfile).where(CreditProfile.party_id == party_id)
                           .with_for_update().execution_options(populate_existing=True)).one()


def refresh_profile(session: Session, profile: CreditProfile, at: datetime) -> CreditProfile:
    """Recompute the cached score and level from the party's findings at `at`."""
    value = score(ledger.scored(ledger.party_findings(session, profile.party_id).values()), at)
    profile.score, profile.level, profile.computed_at = value, level(value), at
    return profile


def record_event(session: Session, *, party_id: uuid.UUID, kind: str, severity: Severity,
                 description: str, evidence_ref: str | None, actor: Actor) -> CreditEntry:
    """Record a finding (or a positive event) and apply what follows from it: the score,
    the catalog's penalties and, for severe findings or level D, the blacklist."""
    catalog_kind = event_kind(kind)
    _check_severity(catalog_kind, severity)
    if session.get(Party, party_id) is None:
        raise NotFound("No such party.")
    profile = lock_profile(session, party_id)
    entry = ledger.append(session, CreditEntry(
        party_id=party_id, action=EntryAction.RECORDED, kind=kind, severity=severity,
        points=points_for(catalog_kind, severity), description=description,
        evidence_ref=evidence_ref, recorded_by=actor.id))
    apply_consequences(session, profile, entry, catalog_kind)
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


def apply_consequences(session: Session, profile: CreditProfile, entry: CreditEntry,
                        kind: EventKind) -> None:
    now = entry.occurred_at
    refresh_profile(session, profile, now)
    specs = penalties_for(kind, entry.severity)
    blacklisting = entry.severity is Severity.SEVERE or profile.level is Level.D
    publicity_until = now + MAX_PUBLICITY
    fixed = [spec.duration for spec in specs if spec.duration is not None]
    for spec in specs:
        if spec.duration is None and not blacklisting:
            continue  # penalties for the publicity period come only with a blacklisting
        ends = now + spec.duration if spec.duration is not None else publicity_until
        session.add(Penalty(party_id=entry.party_id, event_id=entry.id, kind=spec.kind,
                            starts_at=now, ends_at=ends))
    # A severe finding is a decision of its own with its own publicity (a later fraud must not
    # end with an earlier listing); a drop to D lists a party only once.
    if blacklisting and (entry.severity is Severity.SEVERE
                         or not is_blacklisted(session, entry.party_id, now)):
        # Where one decision carries several penalties, the longest period applies.
        minimum = max([minimum_publicity(kind), *fixed])
        reason = (f"{kind.description} ({entry.severity.value})" if entry.severity is
                  Severity.SEVERE else f"Credit level D after: {kind.description}")
        session.add(BlacklistEntry(
            party_id=entry.party_id, event_id=entry.id, reason=reason, listed_at=now,
            publicity_min_until=min(now + minimum, publicity_until),
            publicity_until=publicity_until))
    session.flush()


def impose_penalty(session: Session, *, party_id: uuid.UUID, kind: PenaltyKind, days: int,
                   amount: int | None, event_id: uuid.UUID | None, actor: Actor) -> Penalty:
    """A penalty decided by an operator or regulator (a fine or deposit carries an amount)."""
    if kind in (PenaltyKind.FINE, PenaltyKind.DEPOSIT) and not amount:
        raise ValidationFailed(f"A {kind.value} needs an amount.",
                               errors={"amount": ["Required for fines and deposits."]})
    if session.get(Party, party_id) is None:
        raise NotFound("No such party.")
    now = clock.now()
    penalty = Penalty(party_id=party_id, event_id=event_id, kind=kind, starts_at=now,
                      ends_at=now + timedelta(days=days), amount=amount)
    session.add(penalty)
    session.flush()
    audit.record(session, actor_id=actor.id, action="credit.penalty_imposed", subject=penalty,
                 details={"party_id": str(party_id), "kind": kind.value, "days": days,
                          "amount": amount})
    return penalty


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


def active_penalties(session: Session, party_id: uuid.UUID, at: datetime) -> list[Penalty]:
    stmt = select(Penalty).where(Penalty.party_id == party_id, Penalty.lifted_at.is_(None),
                                 Penalty.starts_at <= at, Penalty.ends_at > at)
    return list(session.scalars(stmt.order_by(Penalty.starts_at)))


def _ensure_free_of(session: Session, party_id: uuid.UUID, kind: PenaltyKind,
                    doing: str) -> None:
    now = clock.now()
    restricting = [p for p in active_penalties(session, party_id, now) if p.kind is kind]
    if restricting:
        until = max(p.ends_at for p in restricting)
        raise PartyRestricted(f"Under a {kind.value} until {until.isoformat()}: cannot {doing}.",
                              penalty=kind.value, until=until.isoformat())


def ensure_may_list(session: Session, party_id: uuid.UUID) -> None:
    """403 party_restricted for a party under a listing ban."""
    _ensure_free_of(session, party_id, PenaltyKind.LISTING_BAN, "create or submit listings")


def ensure_may_trade(session: Session, party_id: uuid.UUID) -> None:
    """403 party_restricted for a party under a trade restriction (orders, demands, matches)."""
    _ensure_free_of(session, party_id, PenaltyKind.TRADE_RESTRICTION, "trade")


def credit_level(session: Session, party_id: uuid.UUID) -> Level:
    """The party's cached level (A for a party with no record yet)."""
    cached = session.get(CreditProfile, party_id)
    return cached.level if cached is not None else level(BASE_SCORE)


# The matching engine ranks better-rated merchants higher by this many points out of 100.
RANKING_BOOST = {Level.A: 10, Level.B: 5, Level.C: 0, Level.D: 0}


def active_blacklisting(session: Session, party_id: uuid.UUID,
                        at: datetime) -> BlacklistEntry | None:
    return session.scalars(select(BlacklistEntry).where(
        BlacklistEntry.party_id == party_id, BlacklistEntry.ended_at.is_(None),
        BlacklistEntry.listed_at <= at, BlacklistEntry.publicity_until > at)
        .order_by(BlacklistEntry.publicity_until.desc(), BlacklistEntry.id)).first()


def is_blacklisted(session: Session, party_id: uuid.UUID, at: datetime) -> bool:
    return active_blacklisting(session, party_id, at) is not None


def end_findings_effects(session: Session, *, party_id: uuid.UUID,
                         event_ids: set[uuid.UUID], reason: str, at: datetime) -> None:
    """Lift the penalties and end the blacklistings that came from these findings."""
    for penalty in session.scalars(select(Penalty).where(
            Penalty.party_id == party_id, Penalty.event_id.in_(event_ids),
            Penalty.lifted_at.is_(None))):
        penalty.lifted_at, penalty.lift_reason = at, reason
    for entry in session.scalars(select(BlacklistEntry).where(
            BlacklistEntry.party_id == party_id, BlacklistEntry.event_id.in_(event_ids),
            BlacklistEntry.ended_at.is_(None))):
        entry.end(at, reason)


def end_expired_publicity(session: Session, *, at: datetime) -> int:
    """End every blacklisting whose maximum publicity has passed (idempotent)."""
    expired = list(session.scalars(select(BlacklistEntry).where(
        BlacklistEntry.ended_at.is_(None), BlacklistEntry.publicity_until <= at)))
    for entry in expired:
        entry.end(at, "expired")
        audit.record(session, actor_id=None, action="credit.publicity_ended", subject=entry,
                     details={"party_id": str(entry.party_id), "reason": "expired"})
    return len(expired)


def recompute_all(session: Session) -> list[dict[str, Any]]:
    """Recompute every cached profile from the chain at its own computed_at; the differences."""
    differences = []
    for profile in session.scalars(select(CreditProfile).order_by(CreditProfile.party_id)):
        findings = ledger.party_findings(session, profile.party_id)
        value = score(ledger.scored(findings.values()), profile.computed_at)
        if (value, level(value)) != (profile.score, profile.level):
            differences.append({"party_id": str(profile.party_id), "cached": profile.score,
                                "recomputed": value})
    return differences


def blacklist_query(*, q: str | None = None, credit_code: str | None = None,
                    at: datetime) -> Select:
    """Parties on the blacklist now, one row each (the decision publicised longest), with
    their party rows, newest listing first."""
    ranked = (select(BlacklistEntry.id, func.row_number().over(
        partition_by=BlacklistEntry.party_id,
        order_by=(BlacklistEntry.publicity_until.desc(), BlacklistEntry.id)).label("rank"))
        .where(BlacklistEntry.ended_at.is_(None), BlacklistEntry.listed_at <= at,
               BlacklistEntry.publicity_until > at).subquery())
    stmt = (select(BlacklistEntry, Party)
            .join(ranked, and_(ranked.c.id == BlacklistEntry.id, ranked.c.rank == 1))
            .join(Party, Party.id == BlacklistEntry.party_id))
    if q:
        stmt = stmt.where(Party.name.icontains(q, autoescape=True))
    if credit_code:
        stmt = stmt.where(Party.credit_code == normalize_credit_code(credit_code))
    return stmt.order_by(BlacklistEntry.listed_at.desc(), BlacklistEntry.id)

