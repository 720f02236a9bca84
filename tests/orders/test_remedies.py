"""The buyer's money back when nothing is delivered, through the HTTP API (offline provider;
Stripe's refunds are in test_stripe.py): a paid, undelivered order cancelled by its buyer,
and the scheduler's refund of an order still undelivered ORDER_DELIVERY_DAYS after payment,
with its `non_delivery` finding against the merchant. Each ends the order `refunded`, pays
back everything paid as one balanced ledger transaction, and puts its licenses back on sale.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from werkzeug.test import TestResponse

from app import clock, ledger
from app.extensions import db
from app.parties.models import Role
from app.scheduler import run_job
from orders.models import Order, Refund
from settlement import verification
from tests.factories import Member, make_member
from tests.orders.factories import ProductMarket, order_body
from tests.support import ok, problem, race

ORDERS = "/api/v1/orders"
JOB = "refund_undelivered_orders"


class Market(ProductMarket):
    """A merchant with one product of ten licenses, a buyer and an operator, and the steps
    these tests take."""

    def paid(self, quantity: int = 1) -> dict[str, Any]:
        order = ok(self.client.post(ORDERS, json=order_body(self.listing, quantity=quantity),
                                    headers=self.buyer.headers), 201)
        return ok(self.client.post(f"{ORDERS}/{order['id']}/payments/confirm",
                                   json={"reference": "BANK-77"},
                                   headers={**self.operator.headers,
                                            "Idempotency-Key": uuid.uuid4().hex}))

    def cancel(self, order_id: str, who: Member | None = None, *,
               key: str | None = None, client: FlaskClient | None = None) -> TestResponse:
        headers = (who or self.buyer).headers | ({"Idempotency-Key": key} if key else {})
        return (client or self.client).post(f"{ORDERS}/{order_id}/cancel", headers=headers)

    def deliver(self, order_id: str, client: FlaskClient | None = None) -> TestResponse:
        return (client or self.client).post(
            f"{ORDERS}/{order_id}/deliver", headers=self.merchant.headers,
            json={"delivery_ref": "s3://deliveries/9.parquet", "checksum": "sha256:09"})

    def order(self, order_id: str) -> dict[str, Any]:
        return ok(self.client.get(f"{ORDERS}/{order_id}", headers=self.buyer.headers))

    def licenses_left(self) -> int:
        listing = ok(self.client.get(f"/api/v1/listings/{self.listing['id']}",
                                     headers=self.merchant.headers))
        return int(listing["licenses_available"])

    def findings(self, member: Member) -> list[str]:
        file = ok(self.client.get(f"/api/v1/credit/parties/{member.id}",
                                  headers=self.operator.headers))
        return [event["kind"] for event in file["events"]]

    def trace(self, order_id: str) -> list[tuple[str, str | None]]:
        """The order's entries in its listing's trace: action and actor."""
        trace = ok(self.client.get(f"/api/v1/listings/{self.listing['id']}/trace",
                                   headers=self.operator.headers))
        return [(entry["action"], entry["actor_id"]) for entry in trace
                if entry["subject_id"] == order_id]

    def trial_balance(self) -> dict[str, Any]:
        return ok(self.client.get("/api/v1/ledger/trial-balance",
                                  headers=self.operator.headers))


@pytest.fixture
def market(client: FlaskClient) -> Market:
    return Market.open(client)


def refunds_of(order_id: str) -> list[Refund]:
    with Session(db.engine) as session:
        return list(session.scalars(select(Refund).where(
            Refund.order_id == uuid.UUID(order_id))))


def balance_of(code: str) -> int:
    with Session(db.engine) as session:
        return ledger.balances(session, [ledger.AccountRef(code)])[code]


def refund_postings(order_id: str) -> list[dict[str, int]]:
    """The entries, by account, of each ledger transaction paying back the order."""
    with Session(db.engine) as session:
        keys = [f"refund:{refund.id}" for refund in session.scalars(
            select(Refund).where(Refund.order_id == uuid.UUID(order_id)))]
        rows = session.execute(
            select(ledger.LedgerTransaction.key, ledger.Account.code, ledger.LedgerEntry.amount)
            .join(ledger.LedgerEntry,
                  ledger.LedgerEntry.transaction_id == ledger.LedgerTransaction.id)
            .join(ledger.Account, ledger.Account.id == ledger.LedgerEntry.account_id)
            .where(ledger.LedgerTransaction.key.in_(keys))).tuples().all()
    postings: dict[str, dict[str, int]] = {key: {} for key in keys}
    for key, code, amount in rows:
        postings[key][code] = amount
    return list(postings.values())


def settlement_violations() -> list[str]:
    """What `flask settlement verify` checks: the ledger and every settlement invariant."""
    with Session(db.engine) as session:
        return verification.verify(session).violations


def order_count(*where: Any) -> int:
    with Session(db.engine) as session:
        return int(session.scalar(select(func.count()).select_from(Order).where(*where)) or 0)


# --- the buyer cancels a paid order ----------------------------------------------------------

def test_buyer_cancels_a_paid_undelivered_order_and_gets_everything_back(market):
    order = market.paid(quantity=3)
    assert market.licenses_left() == 7
    assert balance_of("buyer_clearing") == order["total_amount"] == 360_000

    cancelled = ok(market.cancel(order["id"], key="cancel-1"))

    assert cancelled["status"] == "refunded"
    assert cancelled["refunded_amount"] == cancelled["paid_amount"] == order["total_amount"]
    [refund] = refunds_of(order["id"])
    assert (refund.provider, refund.amount, refund.dispute_id) == (
        "offline", order["total_amount"], None)
    assert refund.reference.startswith("offline-refund:")
    # Out of clearing into refunds, as one balanced transaction.
    assert refund_postings(order["id"]) == [{"buyer_clearing": -360_000, "refunds": 360_000}]
    assert balance_of("buyer_clearing") == 0
    assert balance_of("refunds") == 360_000
    trial = market.trial_balance()
    assert trial["balanced"] is True
    assert trial["total_debits"] == trial["total_credits"]
    assert settlement_violations() == []
    # The licenses are on sale again, and nobody is found at fault.
    assert market.licenses_left() == 10
    assert market.findings(market.buyer) == []
    assert market.findings(market.merchant) == []
    # In the listing's trace, by the buyer.
    assert market.trace(order["id"]) == [("order.placed", market.buyer.id),
                                         ("order.paid", market.operator.id),
                                         ("order.refunded", market.buyer.id)]


def test_a_cancellation_replayed_with_its_key_refunds_once_and_a_second_one_is_refused(market):
    order = market.paid()
    first = market.cancel(order["id"], key="cancel-1")
    again = market.cancel(order["id"], key="cancel-1")

    assert first.status_code == again.status_code == 200
    assert again.get_data() == first.get_data()
    assert again.headers.get("Idempotent-Replayed") == "true"
    problem(market.cancel(order["id"], key="cancel-2"), 409, "invalid_transition")
    problem(market.cancel(order["id"]), 409, "invalid_transition")
    assert len(refunds_of(order["id"])) == 1
    assert market.order(order["id"])["refunded_amount"] == order["total_amount"]
    assert balance_of("refunds") == order["total_amount"]
    assert market.licenses_left() == 10


def test_only_the_orders_buyer_cancels_a_paid_order(market):
    order = market.paid()
    regulator_buyer = make_member(Role.REGULATOR, Role.BUYER)  # sees the order, not its buyer

    problem(market.cancel(order["id"], make_member(Role.BUYER)), 404, "order_not_found")
    problem(market.cancel(order["id"], market.merchant), 403)
    problem(market.cancel(order["id"], market.operator), 403)
    problem(market.cancel(order["id"], regulator_buyer), 403)

    assert market.order(order["id"])["status"] == "paid"
    assert refunds_of(order["id"]) == []
    assert balance_of("buyer_clearing") == order["total_amount"]
    assert market.licenses_left() == 9


@pytest.mark.parametrize("step", ["delivered", "completed"])
def test_a_delivered_order_cannot_be_cancelled(market, step):
    order = market.paid()
    ok(market.deliver(order["id"]))
    if step == "completed":
        ok(market.client.post(f"{ORDERS}/{order['id']}/accept", headers=market.buyer.headers))

    problem(market.cancel(order["id"], key="too-late"), 409, "invalid_transition")

    assert market.order(order["id"])["status"] == step
    assert refunds_of(order["id"]) == []
    assert balance_of("buyer_clearing") == order["total_amount"]
    assert market.licenses_left() == 9


def test_a_refunded_order_can_be_neither_delivered_nor_disputed(market):
    order = market.paid()
    ok(market.cancel(order["id"]))

    problem(market.deliver(order["id"]), 409, "invalid_transition")
    problem(market.client.post(f"{ORDERS}/{order['id']}/disputes", headers=market.buyer.headers,
                               json={"reason": "Never came"}), 409, "invalid_transition")
    assert market.order(order["id"])["status"] == "refunded"


def test_a_settlement_run_after_a_cancellation_settles_nothing_of_it(market):
    order = market.paid()
    ok(market.cancel(order["id"]))

    run = ok(market.client.post("/api/v1/settlement/runs", json={},
                                headers={**market.operator.headers,
                                         "Idempotency-Key": uuid.uuid4().hex}), 201)

    assert run["orders_settled"] == 0
    assert settlement_violations() == []


@pytest.mark.postgres_only
def test_a_cancellation_racing_a_delivery_lets_exactly_one_win(app: Flask, market):
    for _ in range(5):
        order = market.paid()
        before = market.licenses_left()

        cancel, deliver = race(app, 2, lambda client, n, order_id=order["id"]: (
            market.cancel(order_id, client=client) if n == 0
            else market.deliver(order_id, client=client)))

        assert sorted([cancel.status_code, deliver.status_code]) == [200, 409], (
            cancel.get_json(), deliver.get_json())
        loser = deliver if cancel.status_code == 200 else cancel
        assert loser.get_json()["code"] == "invalid_transition"
        after = market.order(order["id"])
        if cancel.status_code == 200:
            assert after["status"] == "refunded"
            assert after["delivered_at"] is None
            assert len(refunds_of(order["id"])) == 1
            assert market.licenses_left() == before + 1
        else:
            assert after["status"] == "delivered"
            assert refunds_of(order["id"]) == []
            assert market.licenses_left() == before
    assert market.trial_balance()["balanced"] is True
    assert settlement_violations() == []


# --- the scheduler refunds an order never delivered ------------------------------------------

def test_an_order_undelivered_past_the_delivery_period_is_refunded_with_a_finding(app, market):
    days = app.config["ORDER_DELIVERY_DAYS"]
    forgotten = market.paid(quantity=2)
    delivered = market.paid()
    ok(market.deliver(delivered["id"]))
    clock.advance(timedelta(days=days) - timedelta(minutes=5))
    assert run_job(app, JOB)
    assert market.order(forgotten["id"])["status"] == "paid"  # not yet due

    clock.advance(timedelta(minutes=10))
    assert run_job(app, JOB)

    refunded = market.order(forgotten["id"])
    assert refunded["status"] == "refunded"
    assert refunded["refunded_amount"] == forgotten["total_amount"]
    assert market.order(delivered["id"])["status"] == "delivered"
    [refund] = refunds_of(forgotten["id"])
    assert (refund.provider, refund.amount) == ("offline", forgotten["total_amount"])
    assert refund_postings(forgotten["id"]) == [
        {"buyer_clearing": -forgotten["total_amount"], "refunds": forgotten["total_amount"]}]
    assert balance_of("buyer_clearing") == delivered["total_amount"]
    assert market.trial_balance()["balanced"] is True
    assert settlement_violations() == []
    assert market.licenses_left() == 9  # the two back, the delivered one still sold
    assert market.findings(market.merchant) == ["non_delivery"]
    assert market.findings(market.buyer) == []
    assert market.trace(forgotten["id"])[-1] == ("order.refunded", None)

    # Again, and later: nothing is refunded or found twice.
    clock.advance(timedelta(days=days))
    assert run_job(app, JOB)
    assert len(refunds_of(forgotten["id"])) == 1
    assert balance_of("refunds") == forgotten["total_amount"]
    assert market.findings(market.merchant) == ["non_delivery"]
    assert market.licenses_left() == 9
    problem(market.deliver(forgotten["id"]), 409, "invalid_transition")


def test_the_non_delivery_finding_is_serious_and_costs_the_merchant_its_score(app, market):
    order = market.paid()
    clock.advance(timedelta(days=app.config["ORDER_DELIVERY_DAYS"], minutes=1))
    assert run_job(app, JOB)

    file = ok(market.client.get(f"/api/v1/credit/parties/{market.merchant.id}",
                                headers=market.merchant.headers))
    [event] = file["events"]
    assert (event["kind"], event["severity"], event["points"]) == ("non_delivery", "serious",
                                                                   -80)
    assert event["evidence_ref"] == f"order:{order['id']}"
    assert file["score"] == 720


def test_the_job_refunds_every_due_order_across_batches(app, market, monkeypatch):
    monkeypatch.setattr("orders.remedies.REFUND_BATCH_SIZE", 2)
    orders = [market.paid() for _ in range(5)]
    clock.advance(timedelta(days=app.config["ORDER_DELIVERY_DAYS"], minutes=1))

    assert run_job(app, JOB)

    assert {market.order(order["id"])["status"] for order in orders} == {"refunded"}
    assert market.findings(market.merchant) == ["non_delivery"] * 5
    assert market.licenses_left() == 10
    assert balance_of("buyer_clearing") == 0
    assert settlement_violations() == []


def test_an_order_the_buyer_cancelled_is_not_refunded_again_by_the_job(app, market):
    order = market.paid()
    ok(market.cancel(order["id"]))
    clock.advance(timedelta(days=app.config["ORDER_DELIVERY_DAYS"], minutes=1))

    assert run_job(app, JOB)

    assert len(refunds_of(order["id"])) == 1
    assert market.findings(market.merchant) == []
    assert market.licenses_left() == 10


def test_a_late_delivery_before_the_refund_is_still_only_late(app, market):
    order = market.paid()
    clock.advance(timedelta(days=app.config["ORDER_LATE_DELIVERY_DAYS"], hours=1))
    assert app.config["ORDER_LATE_DELIVERY_DAYS"] < app.config["ORDER_DELIVERY_DAYS"]
    assert run_job(app, JOB)

    ok(market.deliver(order["id"]))

    assert market.findings(market.merchant) == ["late_delivery"]
    assert order_count(Order.status == "refunded") == 0
