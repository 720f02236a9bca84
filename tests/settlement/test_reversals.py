"""Refunds recorded after an order was settled, taken back from its payees by the next run:
several partial refunds of one order (the [9, 37, 55] trap on the database), a full refund
netting every payee to zero, and a clawback when the payee's money has already left.

The API refunds only disputed orders, before they complete; these refunds are recorded the
way any later refund path would (helpers.record_refund)."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select

from app import clock, ledger
from app.db import unit_of_work
from app.parties.models import Role
from settlement.models import AllocationLine
from tests.factories import make_member
from tests.orders.factories import listed_product
from tests.settlement.helpers import (
    Market,
    account_balance,
    allocations,
    balance,
    completed_order,
    make_market,
    record_refund,
    settled,
    share,
    trial,
    verify_report,
)
from tests.support import ok


def reversed_by_line(order_id: str) -> list[int]:
    with unit_of_work() as session:
        return list(session.scalars(select(AllocationLine.reversed_amount).where(
            AllocationLine.order_id == uuid.UUID(order_id))
            .order_by(AllocationLine.position)))


def next_run(m: Market) -> dict[str, Any]:
    clock.advance(timedelta(seconds=1))  # a new cut-off: a new run
    return settled(m.client, m.operator)


@pytest.fixture
def trap(client: FlaskClient, app, monkeypatch) -> tuple[Market, dict[str, Any]]:
    """A settled order of 101 fen, no platform fee, split 9 / 37 / 55 among three payees."""
    monkeypatch.setitem(app.config, "PLATFORM_FEE_BPS", 0)
    merchant, a, b = (make_member(Role.MERCHANT) for _ in range(3))
    listing = listed_product(client, merchant, unit_price=101, licenses_available=None,
                             revenue_shares=[share(a, "collector", "contribution", 9),
                                             share(b, "processor", "contribution", 37),
                                             share(merchant, "holder", "contribution", 55)])
    m = Market(client, merchant, make_member(Role.BUYER), make_member(Role.OPERATOR), listing,
               {"a": a, "b": b, "merchant": merchant})
    order = completed_order(m)
    assert order["total_amount"] == 101
    settled(m.client, m.operator)
    lines = ok(allocations(m.client, m.operator, order["id"]))
    assert [line["amount"] for line in lines] == [0, 9, 37, 55]
    return m, order


def test_refunds_of_28_then_1_after_settlement_never_reverse_a_negative_amount(trap):
    m, order = trap

    record_refund(order["id"], 28)
    first = next_run(m)
    after_28 = reversed_by_line(order["id"])
    record_refund(order["id"], 1)
    second = next_run(m)

    assert (first["refunds_reversed"], second["refunds_reversed"]) == (1, 1)
    assert after_28 == [0, 3, 10, 15]
    assert reversed_by_line(order["id"]) == [0, 3, 10, 16]
    assert verify_report().ok
    assert trial().balanced


def test_refunds_adding_up_to_the_total_net_every_payee_to_zero(trap):
    m, order = trap

    for amount in (28, 1, 50, 22):
        record_refund(order["id"], amount)
        next_run(m)
        assert verify_report().ok

    lines = ok(allocations(m.client, m.operator, order["id"]))
    assert [line["net_amount"] for line in lines] == [0, 0, 0, 0]
    assert [line["reversed_amount"] for line in lines] == [0, 9, 37, 55]
    for payee in m.payees.values():
        assert ok(balance(m.client, m.operator, payee))["available_amount"] == 0
    assert account_balance("buyer_clearing") == 0
    assert account_balance("refunds") == 101
    assert trial().balanced


def test_several_refunds_recorded_before_one_run_are_each_taken_back_once(trap):
    m, order = trap
    for amount in (28, 1, 1):
        record_refund(order["id"], amount)

    run = next_run(m)
    again = next_run(m)

    assert (run["refunds_reversed"], again["refunds_reversed"]) == (3, 0)
    assert sum(reversed_by_line(order["id"])) == 30
    assert all(0 <= r <= a for r, a in zip(reversed_by_line(order["id"]), [0, 9, 37, 55],
                                           strict=True))
    assert verify_report().ok


def test_a_refund_after_the_money_left_becomes_a_clawback_from_the_payee(client):
    m = make_market(client)
    order = completed_order(m)
    settled(m.client, m.operator)
    collector = m.payees["collector"]
    payable = ledger.AccountRef("payable", uuid.UUID(collector.id))
    in_transit = ledger.AccountRef("in_transit", uuid.UUID(collector.id))
    with unit_of_work() as session:  # the collector's money goes out (a payout under way)
        ledger.post_transaction(session, key="test:payout", kind="payout",
                                description="test payout",
                                lines=[(payable, -41_850), (in_transit, 41_850)])

    record_refund(order["id"], 60_000)  # half of the order
    run = next_run(m)

    assert run["refunds_reversed"] == 1
    owed = ok(balance(m.client, collector, collector))
    assert owed == {"party_id": collector.id, "currency": "CNY",
                    "available_amount": -20_925, "pending_amount": 41_850,
                    "clawback_amount": 20_925}
    assert account_balance(f"clawback:{collector.id}") == -20_925
    assert account_balance(f"payable:{collector.id}") == 0
    # The others still had their money payable: it is taken from there.
    broker = m.payees["broker"]
    assert ok(balance(m.client, broker, broker))["available_amount"] == 1_200
    assert account_balance("buyer_clearing") == 0
    assert trial().balanced
    assert verify_report().ok


def test_verify_finds_a_refund_that_was_never_taken_back_in_the_lines(trap):
    m, order = trap
    record_refund(order["id"], 28)
    next_run(m)
    with unit_of_work() as session:  # tamper: the lines forget the reversal
        for line in session.scalars(select(AllocationLine).where(
                AllocationLine.order_id == uuid.UUID(order["id"]))):
            line.reversed_amount = 0

    report = verify_report()

    assert not report.ok
    assert any("reversed" in violation for violation in report.violations)


def test_a_payee_named_in_two_lines_is_taken_below_zero_payable_only_as_a_clawback(client):
    merchant, payee = make_member(Role.MERCHANT), make_member(Role.MERCHANT)
    listing = listed_product(client, merchant, licenses_available=None, revenue_shares=[
        share(payee, "collector", "contribution", 3),
        share(payee, "processor", "contribution", 1)])
    m = Market(client, merchant, make_member(Role.BUYER), make_member(Role.OPERATOR), listing,
               {"payee": payee})
    order = completed_order(m)
    settled(m.client, m.operator)
    assert account_balance(f"payable:{payee.id}") == 85_500 + 28_500
    payable = ledger.AccountRef("payable", uuid.UUID(payee.id))
    in_transit = ledger.AccountRef("in_transit", uuid.UUID(payee.id))
    with unit_of_work() as session:  # 100 000 of it goes out (a payout under way)
        ledger.post_transaction(session, key="test:payout", kind="payout",
                                description="test payout",
                                lines=[(payable, -100_000), (in_transit, 100_000)])

    record_refund(order["id"], 60_000)  # half: 42 750 + 14 250 from the payee's two lines
    next_run(m)

    assert account_balance(f"payable:{payee.id}") == 0
    assert account_balance(f"clawback:{payee.id}") == -(57_000 - 14_000)
    owed = ok(balance(m.client, payee, payee))
    assert (owed["available_amount"], owed["clawback_amount"]) == (-43_000, 43_000)
    assert trial().balanced
    assert verify_report().ok
