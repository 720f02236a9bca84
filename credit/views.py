"""Read models of credit: events, penalties, a party's credit file and the blacklist, as the
API shows them. Routes serialize what these return and run no queries of their own."""

from __future__ import annotations

import functools
import uuid
from collections.abc import Iterator, Sequence
from datetime import datetime
from itertools import chain
from typing import Any

from sqlalchemy import Row, Select, bindparam, exists, func, select
from sqlalchemy.orm import Session

from app import csv_export
from app.api import MAX_OFFSET
from app.parties.models import OVERSEERS, Actor, Party
from credit import blacklisting, ledger, services
from credit.errors import CreditFileNotFound
from credit.models import (
    BlacklistEntry,
    CreditEntry,
    CreditProfile,
    DecisionStatus,
    Objection,
    Penalty,
    Repair,
)
from credit.scoring import BASE_SCORE, level

BLACKLIST_CSV_COLUMNS = ["party_id", "name", "credit_code", "reason", "listed_at",
                         "publicity_min_until", "publicity_until", "disputed", "event_id",
                         "blacklist_id", "party_kind"]
# Rows fetched per round trip while streaming the CSV export, which holds the whole list.
_CSV_CHUNK = 1000


def _disputed(session: Session, event_ids: list[uuid.UUID]) -> set[uuid.UUID]:
    if not event_ids:
        return set()
    return set(session.scalars(select(Objection.event_id).where(
        Objection.event_id.in_(event_ids), Objection.status == DecisionStatus.PENDING)))


def event_view(session: Session, entry: CreditEntry) -> dict[str, Any]:
    """One credit event as the API shows it, with its party, status and dispute flag."""
    finding = ledger.party_findings(session, entry.party_id)[entry.id]
    disputed = entry.id in _disputed(session, [entry.id])
    return {**_event(finding, disputed), "party_id": entry.party_id}


def penalty_view(penalty: Penalty, at: datetime) -> dict[str, Any]:
    """One penalty as the API shows it, with its state at `at`."""
    return {"id": penalty.id, "kind": penalty.kind, "event_id": penalty.event_id,
            "starts_at": penalty.starts_at, "ends_at": penalty.ends_at,
            "amount": penalty.amount, "paid": penalty.paid_at is not None,
            "state": penalty.state(at)}


def credit_file(session: Session, *, party_id: uuid.UUID, viewer: Actor,
                at: datetime) -> dict[str, Any]:
    """Score, level, blacklisting, active penalties, events and repairs of one party."""
    if party_id != viewer.id and not viewer.has_role(*OVERSEERS):
        raise CreditFileNotFound()
    if session.get(Party, party_id) is None:
        raise CreditFileNotFound()
    profile = session.get(CreditProfile, party_id)
    findings = ledger.party_findings(session, party_id)
    disputed = _disputed(session, list(findings))
    listing = blacklisting.active_blacklisting(session, party_id, at)
    repairs = session.scalars(select(Repair).where(Repair.party_id == party_id)
                              .order_by(Repair.created_at))
    return {
        "party_id": party_id,
        "score": profile.score if profile else BASE_SCORE,
        "level": profile.level if profile else level(BASE_SCORE),
        "computed_at": profile.computed_at if profile else at,
        "blacklisted": listing is not None,
        "blacklisting": listing,
        "penalties": [penalty_view(p, at) for p in services.active_penalties(
            session, party_id, at)],
        "events": [_event(f, f.entry.id in disputed) for f in findings.values()],
        "repairs": list(repairs),
    }


def _event(finding: ledger.Finding, disputed: bool) -> dict[str, Any]:
    entry = finding.entry
    return {"id": entry.id, "kind": entry.kind, "severity": entry.severity,
            "points": entry.points, "description": entry.description,
            "evidence_ref": entry.evidence_ref, "occurred_at": finding.since,
            "recorded_at": entry.occurred_at, "status": finding.status,
            "disputed": disputed, "corrects": entry.refers_to,
            "hash": entry.content_digest}


def blacklist_page(session: Session, *, q: str | None, credit_code: str | None, at: datetime,
                   first: int, size: int, full: bool) -> tuple[list[dict[str, Any]], int]:
    """One page of the blacklist and the total; regulators (`full`) see the decision's
    details too."""
    stmt, values = blacklisting.blacklist_query(q=q, credit_code=credit_code, at=at)
    counting, paging = _page_statements(stmt)
    total = session.scalar(counting, values) or 0
    if first > MAX_OFFSET:
        return [], total
    rows = session.execute(paging, {**values, "limit": size, "offset": first}).all()
    return _blacklisted_rows(rows, full), total


def blacklist_total(session: Session, *, q: str | None, credit_code: str | None,
                    at: datetime) -> int:
    """How many rows a search of the blacklist holds."""
    stmt, values = blacklisting.blacklist_query(q=q, credit_code=credit_code, at=at)
    counting, _ = _page_statements(stmt)
    return session.scalar(counting, values) or 0


def blacklist_csv(session: Session, *, q: str | None, credit_code: str | None,
                  at: datetime) -> Iterator[str]:
    """The regulators' export: every row of the search (not one page), in full, as CSV
    lines produced while they are sent (the session must stay open until the last)."""
    stmt, values = blacklisting.blacklist_query(q=q, credit_code=credit_code, at=at)
    # Fetched in chunks: memory holds one chunk of rows, whatever the list's length.
    chunks = session.execute(_with_dispute_flag(stmt).execution_options(yield_per=_CSV_CHUNK),
                             values).partitions()
    rows = (row for chunk in chunks for row in _blacklisted_rows(chunk, full=True))
    yield from csv_export.lines(chain(
        [BLACKLIST_CSV_COLUMNS], ([row[column] for column in BLACKLIST_CSV_COLUMNS]
                                  for row in rows)))


@functools.cache
def _page_statements(stmt: Select) -> tuple[Select, Select]:
    """The COUNT and the page (limit and offset bound) of a blacklist query, built once each
    (the query itself is built once per kind of search)."""
    counting = select(func.count()).select_from(stmt.order_by(None).subquery())
    paging = _with_dispute_flag(stmt).limit(bindparam("limit")).offset(bindparam("offset"))
    return counting, paging


def _with_dispute_flag(stmt: Select) -> Select:
    """Each blacklisting with whether its finding is under a pending objection, in the same
    query (a page costs the same statements whatever its size)."""
    pending = exists().where(Objection.event_id == BlacklistEntry.event_id,
                             Objection.status == DecisionStatus.PENDING)
    return stmt.add_columns(pending.label("disputed"))


def _blacklisted_rows(rows: Sequence[Row[tuple[BlacklistEntry, Party, bool]]],
                      full: bool) -> list[dict[str, Any]]:
    return [_blacklisted(entry, party, disputed, full) for entry, party, disputed in rows]


def _blacklisted(entry: BlacklistEntry, party: Party, disputed: bool,
                 full: bool) -> dict[str, Any]:
    public = {"party_id": party.id, "name": party.name, "credit_code": party.credit_code,
              "reason": entry.reason, "listed_at": entry.listed_at,
              "publicity_until": entry.publicity_until, "disputed": disputed}
    if not full:
        return public
    return {**public, "blacklist_id": entry.id, "event_id": entry.event_id,
            "party_kind": party.kind.value, "publicity_min_until": entry.publicity_min_until}
