"""The blacklist (严重失信主体名单): who is listed, for how long, and what ends a listing.

Two kinds of decision list a party. A severe finding is a decision of its own: its listing ends
only when that finding is revoked, corrected or repaired, or when its publicity expires. A drop
to level D rests on the whole record, not on the finding that happened to tip it:
`reconcile_blacklisting` keeps such a listing in line with the level after every change to the
record (a finding, an objection decision, a repair decision, the nightly refresh).
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import Select, and_, bindparam, exists, or_, select
from sqlalchemy.orm import Session, aliased

from app import audit
from app.parties.credit_code import normalize_credit_code
from app.parties.models import Party
from credit import ledger
from credit.catalog import (
    BLACKLIST_PENALTIES,
    CATALOG,
    MAX_PUBLICITY,
    MIN_PUBLICITY,
    PenaltyKind,
    Severity,
    decision_minimum_publicity,
)
from credit.models import BlacklistEntry, CreditEntry, CreditProfile, Penalty
from credit.scoring import Level

LEVEL_RESTORED = "level_restored"


def active_blacklisting(session: Session, party_id: uuid.UUID,
                        at: datetime) -> BlacklistEntry | None:
    """The party's listing publicised longest at `at`, if it is listed."""
    return session.scalars(select(BlacklistEntry).where(
        BlacklistEntry.party_id == party_id, BlacklistEntry.ended_at.is_(None),
        BlacklistEntry.listed_at <= at, BlacklistEntry.publicity_until > at)
        .order_by(BlacklistEntry.publicity_until.desc(), BlacklistEntry.id)).first()


def is_blacklisted(session: Session, party_id: uuid.UUID, at: datetime) -> bool:
    return active_blacklisting(session, party_id, at) is not None


def list_party(session: Session, *, party_id: uuid.UUID, basis: CreditEntry | None,
               reason: str, at: datetime,
               penalties: Iterable[PenaltyKind]) -> BlacklistEntry:
    """Put the party on the blacklist on the strength of a finding (`basis`), with the
    penalties that last the whole publicity: at least the minimum of the finding's kind (or
    its longest penalty) and at most 3 years."""
    until = at + MAX_PUBLICITY
    minimum = (decision_minimum_publicity(CATALOG[basis.kind], basis.severity)
               if basis is not None else MIN_PUBLICITY)
    event_id = basis.id if basis is not None else None
    listing = BlacklistEntry(party_id=party_id, event_id=event_id, reason=reason, listed_at=at,
                             publicity_min_until=min(at + minimum, until), publicity_until=until)
    session.add(listing)
    for kind in penalties:
        session.add(Penalty(party_id=party_id, event_id=event_id, kind=kind, starts_at=at,
                            ends_at=until))
    session.flush()
    audit.record(session, actor_id=None, action="credit.party_blacklisted", subject=listing,
                 details={"party_id": str(party_id), "reason": reason,
                          "event_id": str(event_id) if event_id else None})
    return listing


def reconcile_blacklisting(session: Session, profile: CreditProfile, at: datetime, *,
                           may_list: bool = True) -> None:
    """Bring the party's level-D blacklisting in line with its (freshly computed) level.

    At level D a party that is not listed is listed, with the blacklist's penalties for the
    publicity period; `may_list=False` (after a positive event) never lists anyone, since good
    conduct must not be what puts a party on the blacklist. Above D, level-D listings end
    (`level_restored`) and their penalties are lifted. Listings for a severe finding are left
    alone: only that finding's revocation, correction or repair, or expiry, ends them.
    """
    if profile.level is Level.D:
        if may_list and not is_blacklisted(session, profile.party_id, at):
            basis = _latest_level_d_basis(session, profile.party_id)
            reason = "Credit level D" + (f" after: {CATALOG[basis.kind].description}"
                                         if basis is not None else "")
            list_party(session, party_id=profile.party_id, basis=basis, reason=reason, at=at,
                       penalties=[spec.kind for spec in BLACKLIST_PENALTIES])
        return
    for listing in _level_d_listings(session, profile.party_id):
        _end_listing(session, listing, at, LEVEL_RESTORED)


def end_findings_effects(session: Session, *, party_id: uuid.UUID,
                         event_ids: set[uuid.UUID], reason: str, at: datetime) -> None:
    """Lift the penalties and end the severe-finding listings that came from these findings
    (revoked, corrected or repaired). A level-D listing and its penalties stay even when it
    names one of them: it follows the level, which `reconcile_blacklisting` settles next."""
    following_level = {penalty.id for listing in _level_d_listings(session, party_id)
                       for penalty in _publicity_penalties(session, listing)}
    for penalty in session.scalars(select(Penalty).where(
            Penalty.party_id == party_id, Penalty.event_id.in_(event_ids),
            Penalty.lifted_at.is_(None))):
        if penalty.id not in following_level:
            penalty.lifted_at, penalty.lift_reason = at, reason
    for listing in session.scalars(select(BlacklistEntry).join(
            CreditEntry, CreditEntry.id == BlacklistEntry.event_id).where(
            BlacklistEntry.party_id == party_id, BlacklistEntry.event_id.in_(event_ids),
            BlacklistEntry.ended_at.is_(None), CreditEntry.severity == Severity.SEVERE)):
        listing.end(at, reason)


def end_expired_publicity(session: Session, *, at: datetime) -> int:
    """End every blacklisting whose maximum publicity has passed (idempotent). Its penalties
    end by themselves: they last exactly the publicity."""
    expired = list(session.scalars(select(BlacklistEntry).where(
        BlacklistEntry.ended_at.is_(None), BlacklistEntry.publicity_until <= at)))
    for entry in expired:
        entry.end(at, "expired")
        audit.record(session, actor_id=None, action="credit.publicity_ended", subject=entry,
                     details={"party_id": str(entry.party_id), "reason": "expired"})
    return len(expired)


def blacklist_query(*, q: str | None = None, credit_code: str | None = None,
                    at: datetime) -> tuple[Select, dict[str, Any]]:
    """Parties on the blacklist now, one row each (the decision publicised longest), with
    their party rows, newest listing first; and the values to run it with."""
    values: dict[str, Any] = {"at": at}
    if q:
        values["q"] = q.replace("/", "//").replace("%", "/%").replace("_", "/_")
    if credit_code:
        values["credit_code"] = normalize_credit_code(credit_code)
    return _blacklist_statement(bool(q), bool(credit_code)), values


@functools.cache
def _blacklist_statement(by_name: bool, by_code: bool) -> Select:
    # Built once per kind of search, its values bound: a public, unauthenticated query whose
    # construction cost more than running it on its indexes.
    at = bindparam("at", type_=BlacklistEntry.listed_at.type)

    def active(entry: Any) -> Any:
        return and_(entry.ended_at.is_(None), entry.listed_at <= at, entry.publicity_until > at)

    # A correlated NOT EXISTS (not a window over every listing) keeps a lookup by credit code
    # on indexes: no other active listing of the party is publicised longer.
    other = aliased(BlacklistEntry)
    outranked = exists().where(
        other.party_id == BlacklistEntry.party_id, active(other),
        or_(other.publicity_until > BlacklistEntry.publicity_until,
            and_(other.publicity_until == BlacklistEntry.publicity_until,
                 other.id < BlacklistEntry.id)))
    stmt = (select(BlacklistEntry, Party).join(Party, Party.id == BlacklistEntry.party_id)
            .where(active(BlacklistEntry), ~outranked))
    if by_name:
        stmt = stmt.where(Party.name.icontains(bindparam("q", type_=Party.name.type),
                                               escape="/"))
    if by_code:
        stmt = stmt.where(Party.credit_code == bindparam("credit_code"))
    return stmt.order_by(BlacklistEntry.listed_at.desc(), BlacklistEntry.id)


def _latest_level_d_basis(session: Session, party_id: uuid.UUID) -> CreditEntry | None:
    # The listing names the latest effective finding that weighs on the record, so the
    # regulator sees why. A severe finding is skipped: it has a listing of its own, and a
    # listing that names a severe finding counts as that finding's (see _level_d_listings).
    negative = [finding.entry for finding in ledger.party_findings(session, party_id).values()
                if finding.effective and finding.entry.points < 0
                and finding.entry.severity is not Severity.SEVERE]
    return negative[-1] if negative else None


def _level_d_listings(session: Session, party_id: uuid.UUID) -> list[BlacklistEntry]:
    """The party's unended listings for level D: those whose finding is not severe."""
    return list(session.scalars(select(BlacklistEntry).outerjoin(
        CreditEntry, CreditEntry.id == BlacklistEntry.event_id).where(
        BlacklistEntry.party_id == party_id, BlacklistEntry.ended_at.is_(None),
        or_(CreditEntry.severity.is_(None), CreditEntry.severity != Severity.SEVERE))))


def _publicity_penalties(session: Session, listing: BlacklistEntry) -> list[Penalty]:
    # A listing's penalties are the ones written with it: same finding, same period.
    return list(session.scalars(select(Penalty).where(
        Penalty.party_id == listing.party_id, Penalty.lifted_at.is_(None),
        Penalty.event_id.is_(None) if listing.event_id is None
        else Penalty.event_id == listing.event_id,
        Penalty.starts_at == listing.listed_at, Penalty.ends_at == listing.publicity_until)))


def _end_listing(session: Session, listing: BlacklistEntry, at: datetime, reason: str) -> None:
    for penalty in _publicity_penalties(session, listing):
        penalty.lifted_at, penalty.lift_reason = at, reason
    listing.end(at, reason)
    audit.record(session, actor_id=None, action="credit.publicity_ended", subject=listing,
                 details={"party_id": str(listing.party_id), "reason": reason})
