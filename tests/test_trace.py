"""A listing's trace (流通过程可追溯) through the API: every event of the product's life in
order — the listing, its orders, their disputes and refunds, their settlement and the payouts
of it —, each with its actor and time, and nothing of another listing's orders."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from flask_migrate import downgrade, upgrade

from app import clock
from app.extensions import db
from app.parties.models import Role
from app.scheduler import run_job
from benchmarks.listings_search import recorded_statements
from benchmarks.statement_counts import _work
from tests.factories import Member, make_member
from tests.orders.factories import listed_product, order_body
from tests.support import ok, seal_log

ORDERS = "/api/v1/orders"


class Trading:
    """A merchant's listed product, a buyer, an operator, and the steps of an order."""

    def __init__(self, client: FlaskClient) -> None:
        self.client = client
        self.merchant = make_member(Role.MERCHANT)
        self.buyer = make_member(Role.BUYER)
        self.operator = make_member(Role.OPERATOR)
        self.listing = listed_product(client, self.merchant, licenses_available=None)

    def operator_post(self, path: str, body: dict[str, Any] | None = None) -> Any:
        return ok(self.client.post(path, json=body or {}, headers={
            **self.operator.headers, "Idempotency-Key": uuid.uuid4().hex}),
            201 if path.endswith("/settlement/runs") else 200)

    def paid_order(self, listing: dict[str, Any] | None = None) -> str:
        order = ok(self.client.post(ORDERS, json=order_body(listing or self.listing),
                                    headers=self.buyer.headers), 201)
        self.operator_post(f"{ORDERS}/{order['id']}/payments/confirm", {"reference": "BANK-7"})
        return str(order["id"])

    def deliver(self, order_id: str) -> None:
        ok(self.client.post(f"{ORDERS}/{order_id}/deliver", headers=self.merchant.headers,
                            json={"delivery_ref": "s3://deliveries/7.parquet",
                                  "checksum": "sha256:07"}))

    def completed_order(self, listing: dict[str, Any] | None = None) -> str:
        order_id = self.paid_order(listing)
        self.deliver(order_id)
        ok(self.client.post(f"{ORDERS}/{order_id}/accept", headers=self.buyer.headers))
        return order_id

    def refunded_in_part(self, amount: int) -> str:
        order_id = self.paid_order()
        self.deliver(order_id)
        dispute = ok(self.client.post(f"{ORDERS}/{order_id}/disputes", headers=self.buyer.headers,
                                      json={"reason": "Half of the rows are empty."}), 201)
        self.operator_post(f"/api/v1/disputes/{dispute['id']}/resolve",
                           {"outcome": "refund_partial", "refund_amount": amount})
        return order_id

    def settle_and_pay_out(self, refused: str | None = None) -> None:
        """Settle, and confirm the bank file; the bank refused the payouts, with `refused`."""
        ok(self.client.put(f"/api/v1/parties/{self.merchant.id}/payout-account",
                           headers=self.merchant.headers,
                           json={"method": "bank_file", "bank_name": "Bank of Shanghai",
                                 "account_name": "Merchant", "account_number": "6222 0001"}))
        self.operator_post("/api/v1/settlement/runs")
        payouts = ok(self.client.get("/api/v1/payouts", headers=self.operator.headers,
                                     query_string={"status": "in_transit"}))
        for batch_id in {payout["batch_id"] for payout in payouts}:
            failed = [{"payout_id": payout["id"], "reason": refused} for payout in payouts
                      if refused and payout["batch_id"] == batch_id]
            self.operator_post(f"/api/v1/payout-batches/{batch_id}/confirm", {"failed": failed})

    def trace(self, listing: dict[str, Any] | None = None,
              viewer: Member | None = None) -> list[dict[str, Any]]:
        listing_id = (listing or self.listing)["id"]
        return ok(self.client.get(f"/api/v1/listings/{listing_id}/trace",
                                  headers=(viewer or self.operator).headers))


@pytest.fixture
def trading(client: FlaskClient, app: Flask, tmp_path: Any,
            monkeypatch: pytest.MonkeyPatch) -> Trading:
    monkeypatch.setitem(app.config, "PAYOUT_FILE_DIR", str(tmp_path))
    return Trading(client)


def _steps(trace: list[dict[str, Any]]) -> list[tuple[str, str | None]]:
    return [(entry["action"], entry["actor_id"]) for entry in trace]


def test_a_settled_and_paid_out_order_shows_every_step_in_order_with_its_actors(trading):
    order_id = trading.completed_order()
    trading.settle_and_pay_out()

    trace = trading.trace()
    merchant, buyer, operator = trading.merchant.id, trading.buyer.id, trading.operator.id
    listing_steps = [step for step in _steps(trace) if step[0].startswith("listing.")]
    assert listing_steps[:2] == [("listing.created", merchant), ("listing.submitted", merchant)]
    assert _steps(trace)[len(listing_steps):] == [
        ("order.placed", buyer),
        ("license.issued", buyer),
        ("order.paid", operator),
        ("order.delivered", merchant),
        ("license.activated", merchant),
        ("order.completed", buyer),
        ("order.settled", operator),
        ("payout.initiated", None),
        ("payout.paid", operator),
    ]
    orders = [entry for entry in trace if entry["action"].startswith("order.")]
    assert {(entry["subject_type"], entry["subject_id"]) for entry in orders} == {
        ("orders", order_id)}
    settled = next(entry for entry in trace if entry["action"] == "order.settled")
    # The allocation: the platform's fee and the merchant's share, the whole of the order.
    assert [(line["role"], line["amount"]) for line in settled["details"]["lines"]] == [
        ("platform", 6_000), ("holder", 114_000)]
    paid = next(entry for entry in trace if entry["action"] == "payout.paid")
    assert paid["details"]["orders"] == [order_id]
    assert paid["details"]["listing_amount"] == 114_000
    times = [entry["occurred_at"] for entry in trace]
    assert times == sorted(times)
    # Not sealed into the evidence log yet: the fields are there, empty.
    assert all(entry["log_index"] is None and entry["leaf_hash"] is None for entry in trace)


def test_a_disputed_and_refunded_order_shows_its_dispute_its_refund_and_the_reversal(trading):
    order_id = trading.refunded_in_part(20_000)
    trading.settle_and_pay_out()

    order_steps = [step for step in _steps(trading.trace())
                   if not step[0].startswith(("listing.", "payout."))]
    operator, buyer = trading.operator.id, trading.buyer.id
    assert order_steps == [
        ("order.placed", buyer),
        ("license.issued", buyer),
        ("order.paid", operator),
        ("order.delivered", trading.merchant.id),
        ("license.activated", trading.merchant.id),
        ("order.disputed", buyer),
        ("order.refunded", operator),
        ("order.dispute_resolved", operator),
        ("order.settled", operator),
        ("refund.reversed", operator),
    ]
    refunded = next(entry for entry in trading.trace() if entry["action"] == "order.refunded")
    assert (refunded["subject_id"], refunded["details"]["amount"]) == (order_id, 20_000)


def test_a_payout_that_failed_is_traced_again_with_the_payout_that_pays_its_orders(trading):
    first = trading.completed_order()
    trading.settle_and_pay_out(refused="account closed")
    second = trading.completed_order()
    trading.settle_and_pay_out()

    payouts = [(entry["action"], entry["details"]["orders"], entry["details"]["listing_amount"])
               for entry in trading.trace() if entry["action"].startswith("payout.")]
    assert payouts == [
        ("payout.initiated", [first], 114_000),
        ("payout.failed", [first], 114_000),
        ("payout.initiated", [first, second], 228_000),
        ("payout.paid", [first, second], 228_000),
    ]


def test_a_cancelled_and_an_expired_order_show_how_they_ended(trading, app):
    placed = [ok(trading.client.post(ORDERS, json=order_body(trading.listing),
                                     headers=trading.buyer.headers), 201)["id"]
              for _ in range(2)]
    ok(trading.client.post(f"{ORDERS}/{placed[0]}/cancel", headers=trading.buyer.headers))
    clock.advance(timedelta(minutes=app.config["ORDER_PAYMENT_TTL_MINUTES"] + 1))
    assert run_job(app, "expire_unpaid_orders")

    ended = [(entry["subject_id"], entry["action"], entry["actor_id"])
             for entry in trading.trace() if entry["action"] in ("order.cancelled",
                                                                 "order.expired")]
    assert ended == [(placed[0], "order.cancelled", trading.buyer.id),
                     (placed[1], "order.expired", None)]


def test_another_listings_orders_never_appear_in_the_trace(trading):
    other = listed_product(trading.client, trading.merchant, licenses_available=None,
                           title="Hangzhou bus ridership 杭州公交客流")
    trading.completed_order(other)
    own = trading.completed_order()
    trading.settle_and_pay_out()

    subjects = {entry["subject_id"] for entry in trading.trace()
                if not entry["action"].startswith("listing.")}
    other_subjects = {entry["subject_id"] for entry in trading.trace(other)
                      if entry["action"].startswith("order.")}
    assert own in subjects
    assert not other_subjects & {own}
    assert [entry["action"] for entry in trading.trace(other)].count("order.placed") == 1
    assert [entry["action"] for entry in trading.trace()].count("order.placed") == 1
    # The merchant, owner of both, sees each listing's own orders the same way.
    assert trading.trace(viewer=trading.merchant) == trading.trace()


def test_the_trace_costs_the_same_statements_whatever_the_number_of_orders(trading, app):
    def statements() -> int:
        with recorded_statements(app) as recorded:
            trading.trace()
        return _work(recorded)

    trading.completed_order()
    trading.settle_and_pay_out()
    with_one = statements()
    for _ in range(3):
        trading.completed_order()
    trading.refunded_in_part(10_000)
    trading.settle_and_pay_out()
    assert len([e for e in trading.trace() if e["action"] == "order.placed"]) == 5
    assert statements() == with_one


def test_entries_written_before_the_listing_was_recorded_on_them_are_backfilled(trading):
    trading.completed_order()
    trading.refunded_in_part(10_000)
    before = trading.trace()
    assert len([entry for entry in before if entry["action"].startswith("order.")]) == 10
    downgrade(revision="0015")  # the entries lose their listing, as written before 0016
    db.session.remove()

    upgrade()
    db.session.remove()

    assert trading.trace() == before
    verified = ok(trading.client.get("/api/v1/audit/verify", headers=trading.operator.headers))
    assert verified["valid"] is True


def test_each_step_shows_its_place_in_the_evidence_log_once_sealed(trading):
    trading.completed_order()
    unsealed = trading.trace()
    assert {(entry["log_index"], entry["leaf_hash"]) for entry in unsealed} == {(None, None)}

    seal_log()

    trace = trading.trace()
    assert [entry["id"] for entry in trace] == [entry["id"] for entry in unsealed]
    for entry in trace:
        logged = ok(trading.client.get(f"/api/v1/log/entries/{entry['log_index']}",
                                       headers=trading.operator.headers))
        assert logged["leaf_hash"] == entry["leaf_hash"]
        assert json.loads(logged["leaf"])["payload_digest"] == entry["payload_digest"]
