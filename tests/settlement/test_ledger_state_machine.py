"""A stateful property test of orders, refunds and settlement runs against the ledger: any
sequence of payments, completions, partial and full refunds (by dispute, and after
settlement), settlement runs (repeated too) and replayed payment confirmations keeps the
ledger balanced, every settled order's lines summing to its total, no line reversed beyond
its amount, and `settlement verify` clean. Runs on both databases (a fresh market per
example; few examples, the steps go through the HTTP API)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta

from flask import Flask
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app import clock, ledger
from app.extensions import db
from settlement.models import AllocationLine, OrderSettlement, SettlementRun
from tests.conftest import empty_tables
from tests.settlement.helpers import (
    accept,
    confirm_payment,
    count,
    deliver,
    ledger_transactions,
    make_market,
    paid_order,
    record_refund,
    refund_by_dispute,
    run_settlement,
    trial,
    verify_report,
)
from tests.support import ok


@dataclass
class Modelled:
    """What the test expects of one order."""

    total: int
    pay_key: str
    status: str = "paid"
    refunds: int = 0  # how many refunds
    refunded: int = 0
    reversed_refunds: int = 0  # how many of its refunds a run has taken back
    reversed: int = 0
    settled: bool = False
    replayed: bool = False


class SettlementMachine(RuleBasedStateMachine):
    app: Flask
    orders_settled = 0  # over every example: the runs did settle something

    paid = Bundle("paid")

    def __init__(self) -> None:
        super().__init__()

        db.session.remove()
        empty_tables(self.app)
        self.client = self.app.test_client()
        self.m = make_market(self.client)
        self.orders: dict[str, Modelled] = {}
        self.runs: set[str] = set()

    # --- orders --------------------------------------------------------------------------

    @initialize(target=paid, quantity=st.integers(min_value=1, max_value=3))
    def a_first_paid_order(self, quantity: int) -> str:
        return self.place_and_pay(quantity)

    @rule(target=paid, quantity=st.integers(min_value=1, max_value=3))
    def place_and_pay(self, quantity: int) -> str:
        key = self.m.key("pay")
        order = paid_order(self.m, quantity, key=key)
        self.orders[order["id"]] = Modelled(order["total_amount"], key)
        return order["id"]

    @rule(order_id=consumes(paid))
    def deliver_and_accept(self, order_id: str) -> None:
        deliver(self.m, order_id)
        accept(self.m, order_id)
        self.orders[order_id].status = "completed"

    @rule(order_id=consumes(paid), percent=st.integers(min_value=1, max_value=99))
    def refund_part_by_dispute(self, order_id: str, percent: int) -> None:
        order = self.orders[order_id]
        amount = max(1, order.total * percent // 100)
        after = refund_by_dispute(self.m, order_id, "refund_partial", amount)
        assert (after["status"], after["refunded_amount"]) == ("completed", amount)
        order.status, order.refunds, order.refunded = "completed", 1, amount

    @rule(order_id=consumes(paid))
    def refund_in_full_by_dispute(self, order_id: str) -> None:
        order = self.orders[order_id]
        after = refund_by_dispute(self.m, order_id, "refund_full")
        assert after["status"] == "refunded"
        order.status, order.refunds, order.refunded = "refunded", 1, order.total

    @precondition(lambda self: any(o.settled and o.refunded < o.total
                                   for o in self.orders.values()))
    @rule(data=st.data())
    def refund_after_settlement(self, data: st.DataObject) -> None:
        order_id = data.draw(st.sampled_from(  # in the order placed: ids are random
            [i for i, o in self.orders.items() if o.settled and o.refunded < o.total]))
        order = self.orders[order_id]
        amount = data.draw(st.integers(min_value=1, max_value=order.total - order.refunded))
        record_refund(order_id, amount)
        order.refunds += 1
        order.refunded += amount

    @precondition(lambda self: any(not o.replayed for o in self.orders.values()))
    @rule(data=st.data())
    def replay_a_payment_confirmation(self, data: st.DataObject) -> None:
        order_id = data.draw(st.sampled_from(
            [i for i, o in self.orders.items() if not o.replayed]))
        self.orders[order_id].replayed = True
        replay = confirm_payment(self.m, order_id, key=self.orders[order_id].pay_key)
        assert replay.status_code == 200, replay.get_json()
        assert replay.headers.get("Idempotent-Replayed") == "true"

    # --- settlement ----------------------------------------------------------------------

    def _expect_settled(self) -> tuple[int, int]:
        """Mark what a run now settles and takes back; how many of each."""
        settled = reversals = 0
        for order in self.orders.values():
            if order.status == "completed" and not order.settled:
                order.settled, settled = True, settled + 1
                SettlementMachine.orders_settled += 1
            if order.settled and order.reversed_refunds < order.refunds:
                reversals += order.refunds - order.reversed_refunds
                order.reversed_refunds, order.reversed = order.refunds, order.refunded
        return settled, reversals

    def _something_to_settle(self) -> bool:
        return any((o.status == "completed" and not o.settled)
                   or (o.settled and o.reversed_refunds < o.refunds)
                   for o in self.orders.values())

    @precondition(_something_to_settle)
    @rule(twice=st.booleans())
    def settle(self, twice: bool) -> None:
        """A run with a new cut-off; `twice`: the same cut-off posted again (another key)."""
        clock.advance(timedelta(seconds=1))
        up_to = clock.now()
        run = ok(run_settlement(self.client, self.m.operator, up_to), 201)
        assert run["id"] not in self.runs and run["status"] == "completed"
        self.runs.add(run["id"])
        assert (run["orders_settled"], run["refunds_reversed"]) == self._expect_settled()
        if twice:
            settled_before = count(OrderSettlement)
            again = ok(run_settlement(self.client, self.m.operator, up_to), 201)
            assert again["id"] == run["id"]
            assert (again["orders_settled"], again["gross_amount"],
                    again["refunds_reversed"]) == (run["orders_settled"], run["gross_amount"],
                                                   run["refunds_reversed"])
            assert count(OrderSettlement) == settled_before

    # --- invariants ----------------------------------------------------------------------

    @invariant()
    def the_trial_balance_is_balanced(self) -> None:
        assert trial().balanced

    @invariant()
    def settlement_verify_reports_no_violation(self) -> None:
        report = verify_report()
        assert report.ok, report.violations
        assert report.orders_settled == sum(o.settled for o in self.orders.values())

    @invariant()
    def every_settled_order_is_split_exactly_once_and_reversed_within_its_lines(self) -> None:
        with Session(db.engine) as session:
            lines = session.execute(select(
                AllocationLine.order_id, func.sum(AllocationLine.amount),
                func.sum(AllocationLine.reversed_amount), func.min(AllocationLine.amount),
                func.min(AllocationLine.amount - AllocationLine.reversed_amount),
                func.min(AllocationLine.reversed_amount))
                .group_by(AllocationLine.order_id)).all()
            runs = session.scalars(select(SettlementRun)).all()
        expected = {uuid.UUID(i): o for i, o in self.orders.items() if o.settled}
        assert {order_id for order_id, *_ in lines} == set(expected)
        for order_id, amount, reversed_, least, least_net, least_reversed in lines:
            assert amount == expected[order_id].total
            assert reversed_ == expected[order_id].reversed
            assert least >= 0 and least_net >= 0 and least_reversed >= 0
        assert sum(run.orders_settled for run in runs) == len(expected)
        assert sum(run.gross_amount for run in runs) == sum(o.total for o in expected.values())

    @invariant()
    def each_payment_is_posted_once_and_clearing_holds_what_is_not_allocated(self) -> None:
        assert len(ledger_transactions("order:%:paid")) == len(self.orders)
        orders = self.orders.values()
        with Session(db.engine) as session:
            cached = ledger.balances(session, [ledger.AccountRef(code) for code in (
                "buyer_clearing", "refunds", "platform_revenue")])
            payable = session.scalar(select(func.coalesce(func.sum(ledger.Account.balance), 0))
                                     .where(ledger.Account.kind == "payable"))
        received = sum(o.total for o in orders)
        refunded = sum(o.refunded for o in orders)
        allocated = sum(o.total for o in orders if o.settled)
        taken_back = sum(o.reversed for o in orders)
        assert cached["refunds"] == refunded
        assert cached["buyer_clearing"] == received - refunded - allocated + taken_back
        assert cached["platform_revenue"] + payable == allocated - taken_back


def test_any_sequence_of_payments_refunds_and_runs_keeps_the_ledger_and_settlement_sound(app):
    SettlementMachine.app, SettlementMachine.orders_settled = app, 0

    run_state_machine_as_test(SettlementMachine, settings=settings(
        max_examples=10, stateful_step_count=15, deadline=None, derandomize=True,
        suppress_health_check=[HealthCheck.too_slow]))

    assert SettlementMachine.orders_settled > 0
