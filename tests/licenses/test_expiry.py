"""The scheduler expires licences past their end: lease-guarded, idempotent, on the clock."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa

from app import clock
from app.audit import AuditEntry
from app.db import unit_of_work
from app.extensions import db
from app.scheduler import acquire_lease, run_job
from tests.licenses.helpers import API, Licensing
from tests.orders.factories import Market
from tests.support import ok

JOB = "expire_licenses"
THIRTY_DAYS = {"usage_scope": {"purposes": ["research"], "term_days": 30,
                               "territory": "domestic", "resale": False, "derivatives": True}}


@pytest.fixture
def trade(market: Market) -> Licensing:
    return Licensing(market)


def expiries() -> list[str]:
    with db.engine.connect() as connection:
        return list(connection.scalars(sa.select(AuditEntry.subject_id).where(
            AuditEntry.action == "license.expired").order_by(AuditEntry.id)))


def test_the_job_expires_a_licence_once_its_term_is_over_and_only_once(app, trade):
    listing = trade.listing(**THIRTY_DAYS)
    _, licence = trade.delivered(listing)
    _, lasting = trade.delivered(trade.listing())  # 365 days
    pending = trade.order(listing)

    clock.advance(timedelta(days=29, hours=23))
    assert run_job(app, JOB)
    assert trade.license(licence["id"])["status"] == "active"

    clock.advance(timedelta(hours=2))
    assert run_job(app, JOB)
    expired = trade.license(licence["id"])
    assert (expired["status"], expired["status_reason"]) == ("expired", "term ended")
    assert expired["valid_until"] == licence["valid_until"]
    assert trade.license(lasting["id"])["status"] == "active"
    assert trade.license(pending["license_id"])["status"] == "pending"

    assert run_job(app, JOB)  # again: nothing more to do
    assert expiries() == [licence["id"]]
    trace = ok(trade.client.get(f"{API}/listings/{listing['id']}/trace",
                                headers=trade.market.merchant.headers))
    [entry] = [entry for entry in trace if entry["action"] == "license.expired"]
    assert (entry["subject_id"], entry["actor_id"]) == (licence["id"], None)
    assert entry["details"]["valid_until"] == licence["valid_until"]


def test_a_licence_without_a_term_never_expires(app, trade):
    _, licence = trade.delivered(trade.listing(usage_scope={
        "purposes": ["research"], "term_days": None, "territory": "domestic",
        "resale": False, "derivatives": False}))
    clock.advance(timedelta(days=3650))
    assert run_job(app, JOB)
    assert trade.license(licence["id"])["status"] == "active"


def test_the_job_leaves_licences_alone_while_another_process_holds_its_lease(app, trade):
    _, licence = trade.delivered(trade.listing(**THIRTY_DAYS))
    clock.advance(timedelta(days=31))
    with unit_of_work() as session:
        assert acquire_lease(session, JOB, timedelta(minutes=10), holder="another-host:1")
    assert run_job(app, JOB) is False
    assert trade.license(licence["id"])["status"] == "active"
    clock.advance(timedelta(minutes=11))  # the other holder's lease lapsed
    assert run_job(app, JOB)
    assert trade.license(licence["id"])["status"] == "expired"

