"""The nightly recompute: it checks cached scores against the ledger, then refreshes them so
that levels, level-D blacklisting and fast-track eligibility follow decay."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import timedelta

import pytest
import sqlalchemy as sa
from flask import Flask

from app import clock
from app.db import unit_of_work
from app.extensions import db
from app.parties.models import Role
from app.scheduler import run_job
from credit import recompute, services
from credit.models import CreditEntry
from credit.scoring import Level
from tests.credit.api import at, blacklist, credit_file, listings_of, record
from tests.factories import make_member

JOB = "recompute_credit_scores"
YEAR_AND_A_DAY = timedelta(days=366)


@pytest.fixture
def job_log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO, logger="credit.jobs")
    return caplog


def _reported_differences(caplog: pytest.LogCaptureFixture) -> list[dict] | None:
    reports = [r for r in caplog.records if r.getMessage().startswith("cached credit scores")]
    assert len(reports) == 1
    return getattr(reports[0], "differences", None)


@pytest.fixture
def entry_queries(app: Flask) -> Iterator[list[str]]:
    """The SELECTs on credit_entries issued while the test runs."""
    seen: list[str] = []

    def listen(conn, cursor, statement, parameters, context, executemany) -> None:
        if statement.lstrip().upper().startswith("SELECT") and "credit_entries" in statement:
            seen.append(statement)

    sa.event.listen(db.engine, "before_cursor_execute", listen)
    yield seen
    sa.event.remove(db.engine, "before_cursor_execute", listen)


def test_the_nightly_recompute_lets_levels_follow_decay_without_a_new_event(
        app, client, regulator, merchant, job_log):
    record(client, regulator, merchant, "unfair_competition", "serious")
    clock.advance(YEAR_AND_A_DAY)
    stale = credit_file(client, merchant, merchant)
    assert (stale["score"], stale["level"]) == (720, "B")  # cached, a year old

    assert run_job(app, JOB) is True

    file = credit_file(client, merchant, merchant)
    assert (file["score"], file["level"]) == (760, "A")
    assert at(file["computed_at"]) > at(stale["computed_at"]) + timedelta(days=365)
    # Decay is not a difference between the cache and the ledger.
    assert _reported_differences(job_log) is None
    # Level A is what fast-track review and the ranking boost read.
    with unit_of_work() as session:
        assert services.credit_level(session, merchant.party.id) is Level.A


def test_the_nightly_recompute_reports_a_tampered_score_then_refreshes_it_from_the_ledger(
        app, client, regulator, merchant, job_log):
    record(client, regulator, merchant, "late_delivery", "minor")
    record(client, regulator, merchant, "unfair_competition", "serious")
    table = CreditEntry.__table__
    with db.engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(sa.text("SET LOCAL session_replication_role = replica"))
        second = connection.scalar(sa.select(table.c.seq).order_by(table.c.seq).offset(1))
        connection.execute(sa.update(table).where(table.c.seq == second).values(points=-10))

    assert run_job(app, JOB) is True

    assert _reported_differences(job_log) == [
        {"party_id": merchant.id, "cached": 710, "recomputed": 780}]
    assert credit_file(client, merchant, merchant)["score"] == 780
    job_log.clear()
    assert run_job(app, JOB) is True
    assert _reported_differences(job_log) is None


def test_the_nightly_recompute_ends_a_level_d_listing_once_decay_lifts_the_level(
        app, client, regulator, merchant):
    for _ in range(4):
        record(client, regulator, merchant, "non_delivery", "serious")
    assert credit_file(client, merchant, merchant)["blacklisted"] is True
    clock.advance(YEAR_AND_A_DAY)  # each finding now weighs half: 640

    assert run_job(app, JOB) is True

    file = credit_file(client, merchant, merchant)
    assert (file["score"], file["level"], file["blacklisted"]) == (640, "C", False)
    assert [listing.end_reason for listing in listings_of(merchant)] == ["level_restored"]
    assert blacklist(client) == []
    with unit_of_work() as session:
        services.ensure_may_list(session, merchant.party.id)
        services.ensure_may_trade(session, merchant.party.id)


def test_the_nightly_recompute_reads_the_ledger_by_batch_not_by_party(
        app, client, regulator, monkeypatch, entry_queries, job_log):
    parties = [make_member(Role.MERCHANT) for _ in range(7)]
    for party in parties:
        record(client, regulator, party, "late_delivery", "minor")
    clock.advance(YEAR_AND_A_DAY)
    monkeypatch.setattr(recompute, "BATCH_SIZE", 3)
    entry_queries.clear()

    assert run_job(app, JOB) is True

    assert len(entry_queries) == 3  # batches of 3, 3 and 1 parties
    for party in parties:
        assert credit_file(client, party, party)["score"] == 795
    with unit_of_work() as session:
        assert recompute.recompute_all(session, batch_size=2) == []
