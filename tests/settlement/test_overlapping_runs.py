"""Settlement runs take turns, whatever their cut-offs.

Two runs with different cut-offs started together (the daily job and a manual run, or a run
retried without Idempotency-Key, whose cut-off is "now") over a partly refunded order: the
second waits for the first, so the order's payee is paid what is left after the refund, once.
A run that waits too long answers 409; a run killed part-way is finished by the next run,
whatever its cut-off; and a payout never pays what a refund still to be taken back holds."""

from __future__ import annotations

import signal
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from app import clock
from app.db import unit_of_work
from app.extensions import db
from settlement import payouts, services
from settlement.models import RunStatus, SettlementRun
from settlement.run_lock import run_lock
from tests.factories import Member, run_together
from tests.settlement.helpers import (
    RUNS,
    Market,
    account_balance,
    balance,
    completed_order,
    count,
    make_market,
    ok,
    partially_refunded_order,
    trial,
    verify_report,
    with_key,
)
from tests.support import flask

PRICE, REFUND = 10_000, 6_000
# 5 % fee: 9 500 allocated to the merchant; the refund takes 5 700 of it back (and 300 of
# the fee), so 3 800 is paid out.
PAID_OUT, FEE_KEPT = 3_800, 200
ROUNDS = 4


@pytest.fixture
def market(app: Flask, client: FlaskClient, tmp_path: Any, monkeypatch) -> Market:
    monkeypatch.setitem(app.config, "PAYOUT_FILE_DIR", str(tmp_path))
    m = make_market(client, plan=False, unit_price=PRICE, licenses=None)
    ok(client.put(f"/api/v1/parties/{m.merchant.id}/payout-account", headers=m.merchant.headers,
                  json={"method": "bank_file", "bank_name": "Bank of Shanghai",
                        "account_name": "Merchant Co.", "account_number": "6222000011112222"}))
    db.session.remove()
    return m


def manual_run(client: FlaskClient, operator: Member, minutes: int) -> TestResponse:
    return client.post(RUNS, json={"up_to": (clock.now() + timedelta(minutes=minutes))
                                   .isoformat()}, headers=with_key(operator, None))


def retried_run(client: FlaskClient, operator: Member) -> TestResponse:
    """Without Idempotency-Key or body: the cut-off is now."""
    return client.post(RUNS, headers=with_key(operator, None))


def merchant_payouts(m: Market) -> list[int]:
    return sorted(payout["amount"] for payout in ok(m.client.get(
        "/api/v1/payouts", headers=m.merchant.headers)))


def test_two_runs_with_different_cut_offs_pay_a_partly_refunded_order_out_once(app, market):
    m = market
    for round_ in range(1, ROUNDS + 1):
        partially_refunded_order(m, REFUND)
        db.session.remove()

        responses = run_together(app, [lambda c, n=round_: manual_run(c, m.operator, n),
                                       lambda c: retried_run(c, m.operator)])

        assert [r.status_code for r in responses] == [201, 201], \
            [r.get_json() for r in responses]
        assert merchant_payouts(m) == [PAID_OUT] * round_
        assert ok(balance(m.client, m.merchant, m.merchant)) == {
            "party_id": m.merchant.id, "currency": "CNY", "available_amount": 0,
            "pending_amount": PAID_OUT * round_, "clawback_amount": 0}
    assert count(SettlementRun) == 2 * ROUNDS
    assert count(SettlementRun, SettlementRun.status != RunStatus.COMPLETED) == 0
    assert account_balance(f"clawback:{m.merchant.id}") == 0
    assert account_balance("platform_revenue") == FEE_KEPT * ROUNDS
    assert account_balance("buyer_clearing") == 0
    assert trial().balanced
    report = verify_report()
    assert report.ok, report.violations


def test_a_run_asked_for_while_another_runs_past_the_wait_answers_409_and_starts_nothing(
        app, market, monkeypatch):
    m = market
    partially_refunded_order(m, REFUND)
    db.session.remove()
    monkeypatch.setitem(app.config, "SETTLEMENT_RUN_WAIT_SECONDS", 0.2)

    with run_lock():  # a run in progress, as another process would hold it
        refused = m.client.post(RUNS, json={}, headers=with_key(m.operator, "run-1"))

    assert refused.status_code == 409
    assert refused.content_type == "application/problem+json"
    assert refused.get_json()["code"] == "settlement_run_in_progress"
    assert count(SettlementRun) == 0
    retried = m.client.post(RUNS, json={}, headers=with_key(m.operator, "run-1"))
    assert ok(retried, 201)["status"] == "completed"
    assert merchant_payouts(m) == [PAID_OUT]


def test_a_run_killed_part_way_is_finished_by_the_next_run_of_another_cut_off(app, market):
    m = market
    partially_refunded_order(m, REFUND)  # settled in the first batch, its refund not yet
    completed_order(m)                   # taken back when the process dies
    db.session.remove()
    up_to = (clock.now() + timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%S%z")
    killed = flask(app, "settlement", "run", "--up-to", up_to, SETTLEMENT_BATCH_SIZE="1",
                   CRASH_AT="settlement.batch_committed:1")
    assert killed.returncode == -signal.SIGKILL, (killed.stdout, killed.stderr)

    later = ok(retried_run(m.client, m.operator), 201)

    runs = {run["id"]: run for run in ok(m.client.get(RUNS, headers=m.operator.headers))}
    first = next(run for run in runs.values() if run["id"] != later["id"])
    assert (first["status"], first["orders_settled"], first["refunds_reversed"]) == \
        ("completed", 2, 1)
    assert (later["status"], later["orders_settled"]) == ("completed", 0)
    assert merchant_payouts(m) == [PAID_OUT + PRICE - PRICE // 20]
    assert account_balance(f"clawback:{m.merchant.id}") == 0
    assert trial().balanced
    report = verify_report()
    assert report.ok, report.violations


def test_a_payout_leaves_out_what_an_order_with_a_refund_still_to_take_back_holds(
        app, market):
    m = market
    partially_refunded_order(m, REFUND)
    completed_order(m)
    db.session.remove()
    with unit_of_work() as session:  # a run's batch, its refund not yet taken back
        run = services.open_run(session, up_to=clock.now(), actor=None)
        services.settle_batch(session, run.id, run.up_to, 10)

    with unit_of_work() as session:
        paid = [payout.amount for payout in payouts.create_payouts(session, run)]

    assert paid == [PRICE - PRICE // 20]  # the other order's 9 500
    ok(retried_run(m.client, m.operator), 201)  # finishes that run, then runs its own
    assert merchant_payouts(m) == [PAID_OUT, PRICE - PRICE // 20]
    assert account_balance(f"clawback:{m.merchant.id}") == 0
    assert trial().balanced
