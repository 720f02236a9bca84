"""Settlement runs racing each other on PostgreSQL: every order is settled exactly once,
whichever run takes it, and the ledger stays balanced."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select

from app import clock
from app.extensions import db
from app.scheduler import run_job
from settlement.models import RefundReversal, SettlementRun
from tests.factories import run_together
from tests.settlement.helpers import (
    EXPECTED_SPLIT,
    UNIT_PRICE,
    Market,
    account_balance,
    completed_order,
    count,
    ledger_transactions,
    lines_per_order,
    make_market,
    partially_refunded_order,
    run_settlement,
    settled_order_ids,
    trial,
    verify_report,
)
from tests.support import ok

pytestmark = pytest.mark.postgres_only

ORDERS = 60
REFUNDED = 4  # of them, partially refunded before completion (10 000 fen each)


@pytest.fixture
def many_completed(app, client: FlaskClient, monkeypatch) -> tuple[Market, list[str]]:
    monkeypatch.setitem(app.config, "SETTLEMENT_BATCH_SIZE", 4)
    m = make_market(client)
    ids = [completed_order(m)["id"] for _ in range(ORDERS - REFUNDED)]
    ids += [partially_refunded_order(m, 10_000)["id"] for _ in range(REFUNDED)]
    return m, ids


def assert_each_settled_once(ids: list[str]) -> None:
    assert sorted(map(str, settled_order_ids())) == sorted(ids)
    assert lines_per_order() == {uuid.UUID(i): len(EXPECTED_SPLIT) for i in ids}
    assert sorted(ledger_transactions("order:%:settled")) == sorted(
        f"order:{i}:settled" for i in ids)
    assert count(RefundReversal) == REFUNDED
    with db.engine.connect() as connection:
        settled, gross, fee, reversed_ = connection.execute(select(
            func.sum(SettlementRun.orders_settled), func.sum(SettlementRun.gross_amount),
            func.sum(SettlementRun.platform_fee_amount),
            func.sum(SettlementRun.refunds_reversed))).one()
    assert (settled, gross, fee, reversed_) == (ORDERS, ORDERS * UNIT_PRICE, ORDERS * 6_000,
                                                REFUNDED)
    assert account_balance("buyer_clearing") == 0
    assert trial().balanced
    report = verify_report()
    assert report.ok, report.violations
    assert report.orders_settled == ORDERS


def test_two_runs_with_different_cut_offs_at_once_settle_every_order_once(app, many_completed):
    m, ids = many_completed
    now = clock.now()

    responses = run_together(app, [
        lambda c, up_to=now + timedelta(minutes=n): run_settlement(c, m.operator, up_to)
        for n in (1, 2)])

    runs = [ok(response, 201) for response in responses]
    assert all(run["status"] == "completed" for run in runs)
    assert sum(run["orders_settled"] for run in runs) == ORDERS
    assert_each_settled_once(ids)


def test_the_same_cut_off_posted_three_times_at_once_is_one_run(app, many_completed):
    m, ids = many_completed
    up_to = clock.now() + timedelta(minutes=1)

    responses = run_together(app, [lambda c: run_settlement(c, m.operator, up_to)] * 3)

    runs = [ok(response, 201) for response in responses]
    assert len({run["id"] for run in runs}) == 1
    assert count(SettlementRun) == 1
    assert_each_settled_once(ids)


def test_a_run_through_the_api_and_the_daily_job_at_once_settle_every_order_once(
        app, many_completed):
    m, ids = many_completed
    clock.advance(timedelta(days=1))  # the job settles what completed before today

    results = run_together(app, [
        lambda c: run_settlement(c, m.operator, clock.now()),
        lambda c: run_job(app, "settle_completed_orders"),
    ])

    assert ok(results[0], 201)["status"] == "completed"
    assert results[1] is True
    assert count(SettlementRun) == 2
    assert_each_settled_once(ids)
