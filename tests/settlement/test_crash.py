"""`flask settlement run` killed (SIGKILL) part-way, then run again: whole batches or
nothing were left behind, and the rerun settles the rest without settling anything twice.

The orders are made through the API in the test database; the runs are real processes
against the same database (PostgreSQL: the test's SQLite file would work too, but a killed
process is what PostgreSQL's crash semantics are about)."""

from __future__ import annotations

import signal
import uuid
from datetime import timedelta
from functools import partial

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from app import clock
from app.extensions import db
from settlement.models import OrderSettlement, RefundReversal, RunStatus, SettlementRun
from tests import support
from tests.settlement.helpers import (
    EXPECTED_SPLIT,
    UNIT_PRICE,
    account_balance,
    completed_order,
    count,
    ledger_transactions,
    lines_per_order,
    make_market,
    partially_refunded_order,
    settled_order_ids,
    trial,
    verify_report,
)

pytestmark = pytest.mark.postgres_only

ORDERS = 12
BATCH = 5


# `flask` commands in processes of their own, five orders per batch.
flask = partial(support.flask, SETTLEMENT_BATCH_SIZE=str(BATCH))


def the_run() -> SettlementRun:
    with Session(db.engine) as session:
        return session.scalars(select(SettlementRun)).one()


@pytest.mark.parametrize("crash_at, settled_at_crash", [
    ("settlement.batch_written:2", BATCH),  # inside the second batch: the first one stays
    ("settlement.batch_committed:2", 2 * BATCH),  # right after the second batch
    ("settlement.before_finish:1", ORDERS),  # every order settled, the run not closed
])
def test_a_run_killed_part_way_is_finished_by_the_next_without_settling_twice(
        app, client, crash_at, settled_at_crash):
    m = make_market(client)
    ids = [completed_order(m)["id"] for _ in range(2)]
    ids.append(partially_refunded_order(m, 30_000)["id"])  # in the first batch
    ids += [completed_order(m)["id"] for _ in range(ORDERS - 3)]
    db.session.remove()  # no open transaction of the test's own while the processes run
    up_to = (clock.now() + timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%S%z")

    crashed = flask(app, "settlement", "run", "--up-to", up_to, CRASH_AT=crash_at)

    assert crashed.returncode == -signal.SIGKILL, (crashed.stdout, crashed.stderr)
    assert count(OrderSettlement) == settled_at_crash
    run = the_run()
    assert run.status is RunStatus.RUNNING
    assert run.orders_settled == settled_at_crash
    assert run.gross_amount == settled_at_crash * UNIT_PRICE
    # What the killed process left is consistent: whole batches, balanced.
    assert lines_per_order() == {order_id: len(EXPECTED_SPLIT)
                                 for order_id in settled_order_ids()}
    assert trial().balanced
    report = verify_report()
    assert report.ok, report.violations

    rerun = flask(app, "settlement", "run", "--up-to", up_to)

    assert rerun.returncode == 0, rerun.stderr
    assert f"run={run.id} status=completed orders_settled={ORDERS} " \
           f"gross_amount={ORDERS * UNIT_PRICE} platform_fee_amount={ORDERS * 6_000}" \
           in rerun.stdout
    assert sorted(map(str, settled_order_ids())) == sorted(ids)
    assert lines_per_order() == {uuid.UUID(i): len(EXPECTED_SPLIT) for i in ids}
    assert sorted(ledger_transactions("order:%:settled")) == sorted(
        f"order:{i}:settled" for i in ids)
    assert count(RefundReversal) == 1
    assert the_run().refunds_reversed == 1
    assert account_balance("buyer_clearing") == 0
    assert trial().balanced
    verified = app.test_cli_runner().invoke(args=["settlement", "verify"])
    assert verified.exit_code == 0, verified.output
    assert f"ok=True orders_settled={ORDERS} violations=0" in verified.stdout


def test_a_run_without_crash_at_finishes_and_verify_exits_zero_then_one_on_a_violation(
        app, client):
    m = make_market(client)
    completed_order(m)
    db.session.remove()
    ran = flask(app, "settlement", "run")
    assert ran.returncode == 0, ran.stderr
    assert "status=completed orders_settled=1 gross_amount=120000" in ran.stdout
    clean = flask(app, "settlement", "verify")
    assert clean.returncode == 0, clean.stderr
    assert "ok=True orders_settled=1 violations=0" in clean.stdout
    with db.engine.begin() as connection:  # tamper: a cached balance drifts from its entries
        connection.exec_driver_sql(
            "UPDATE ledger_accounts SET balance = balance + 1 WHERE code = 'platform_revenue'")

    verified = flask(app, "settlement", "verify")

    assert verified.returncode == 1
    assert "ok=False" in verified.stdout
    assert "VIOLATION cached balance of platform_revenue differs from its entries" in \
        verified.stderr
