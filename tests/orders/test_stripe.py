"""The Stripe provider end to end: the real stripe SDK against localstripe on 127.0.0.1.

localstripe runs in a subprocess for the whole session (its aiohttp app bound to loopback, its
store cleared at start and between tests). Webhooks are signed here with the app's secret
exactly as Stripe signs them (HMAC-SHA256 over "{t}.{raw body}"), around the PaymentIntent
as localstripe really returns it, and posted to the application.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import stripe
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select, update
from werkzeug.test import TestResponse

from app import clock
from app.errors import Conflict
from app.extensions import db
from app.parties.models import Role
from app.scheduler import run_job
from listings.models import Listing
from orders.models import Order, Payment, Refund, StripeEvent
from tests.conftest import empty_tables, make_app
from tests.factories import Member, make_member
from tests.orders.factories import listed_product, order_body
from tests.support import free_port, server_process

ORDERS = "/api/v1/orders"
WEBHOOK = "/api/v1/webhooks/stripe"
SECRET_KEY = "sk_test_localstripe"
WEBHOOK_SECRET = "whsec_test_secret"

LOCALSTRIPE = """
import aiohttp.web
from localstripe.resources import store
from localstripe.server import app
store.clear()
aiohttp.web.run_app(app, host="127.0.0.1", port={port}, print=None)
"""


def _answers(url: str) -> bool:
    try:
        urllib.request.urlopen(f"{url}/v1/payment_intents", timeout=1)
    except urllib.error.HTTPError:
        return True  # it answers (401 without a key)
    except OSError:
        return False
    return True


@pytest.fixture(scope="session")
def localstripe_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """localstripe on a free loopback port, started for the session and stopped after it."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log_path = Path(tmp_path_factory.mktemp("localstripe")) / "localstripe.log"
    try:
        with server_process([sys.executable, "-c", LOCALSTRIPE.format(port=port)], log_path,
                            lambda: _answers(url), "localstripe"):
            yield url
    except RuntimeError as error:
        pytest.fail(str(error))


@pytest.fixture(scope="session")
def stripe_app(migrated_app: Flask, backend: str, localstripe_url: str) -> Iterator[Flask]:
    """The application configured for Stripe, on the backend's migrated database."""
    app = make_app(backend, PAYMENT_PROVIDER="stripe", STRIPE_SECRET_KEY=SECRET_KEY,
                   STRIPE_WEBHOOK_SECRET=WEBHOOK_SECRET, STRIPE_API_BASE=localstripe_url,
                   STRIPE_MAX_NETWORK_RETRIES=0)
    yield app
    with app.app_context():
        db.engine.dispose()


@pytest.fixture
def sdk(localstripe_url: str) -> stripe.StripeClient:
    return stripe.StripeClient(SECRET_KEY, base_addresses={"api": localstripe_url},
                               max_network_retries=0)


@dataclass
class StripeMarket:
    client: FlaskClient
    sdk: stripe.StripeClient
    merchant: Member
    buyer: Member
    operator: Member
    listing: dict[str, Any]

    def place(self) -> dict[str, Any]:
        placed = self.client.post(ORDERS, json=order_body(self.listing),
                                  headers={**self.buyer.headers,
                                           "Idempotency-Key": str(uuid.uuid4())})
        assert placed.status_code == 201, placed.json
        return placed.json

    def intent_of(self, order_id: str) -> Any:
        order = db.session.get(Order, uuid.UUID(order_id))
        assert order is not None and order.payment_intent_id
        db.session.rollback()
        return self.sdk.v1.payment_intents.retrieve(order.payment_intent_id)

    def pay_with(self, order_id: str, payment_method: str) -> Any:
        """The buyer's client: a card on the intent, then confirm (localstripe rejects a
        payment_method passed to confirm itself)."""
        intent = self.intent_of(order_id)
        self.sdk.v1.payment_intents.update(intent.id, params={"payment_method": payment_method})
        return self.sdk.v1.payment_intents.confirm(intent.id)

    def order_steps(self, order_id: str) -> list[tuple[str, str | None]]:
        """The order's entries in its listing's trace: action and actor."""
        trace = self.client.get(f"/api/v1/listings/{self.listing['id']}/trace",
                                headers=self.operator.headers)
        assert trace.status_code == 200, trace.json
        return [(entry["action"], entry["actor_id"]) for entry in trace.json
                if entry["subject_id"] == order_id]


@pytest.fixture
def market(stripe_app: Flask, sdk: stripe.StripeClient,
           localstripe_url: str) -> Iterator[StripeMarket]:
    with stripe_app.app_context():
        client = stripe_app.test_client()
        merchant = make_member(Role.MERCHANT)
        yield StripeMarket(client, sdk, merchant, make_member(Role.BUYER),
                           make_member(Role.OPERATOR),
                           listed_product(client, merchant, licenses_available=10))
        db.session.remove()
    empty_tables(stripe_app)
    clock.reset()
    urllib.request.urlopen(urllib.request.Request(f"{localstripe_url}/_config/data",
                                                  method="DELETE"))


def event_for(intent: Any, kind: str, event_id: str | None = None) -> dict[str, Any]:
    return {"id": event_id or f"evt_{uuid.uuid4().hex[:24]}", "object": "event", "type": kind,
            "api_version": "2020-08-27", "created": int(time.time()), "livemode": False,
            "data": {"object": intent.to_dict()}}


def signature(payload: bytes, secret: str = WEBHOOK_SECRET, at: int | None = None) -> str:
    """Stripe's scheme: v1 = HMAC-SHA256(secret, "{t}.{payload}")."""
    at = int(time.time()) if at is None else at
    mac = hmac.new(secret.encode(), f"{at}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={at},v1={mac}"


def deliver_event(client: FlaskClient, event: dict[str, Any], *,
                  header: str | None = None) -> TestResponse:
    payload = json.dumps(event).encode()
    headers = {"Content-Type": "application/json",
               "Stripe-Signature": header if header is not None else signature(payload)}
    return client.post(WEBHOOK, data=payload, headers=headers)


def count(model: type) -> int:
    db.session.rollback()
    return db.session.scalar(select(func.count()).select_from(model))


# --- tests -----------------------------------------------------------------------------------

def test_an_order_opens_a_payment_intent_and_returns_its_client_secret(market):
    order = market.place()
    assert order["payment"]["provider"] == "stripe"
    assert order["payment"]["status"] == "pending"
    intent = market.intent_of(order["id"])
    assert order["payment"]["client_secret"] == intent.client_secret
    assert intent.amount == order["total_amount"]
    assert intent.currency == "cny"
    assert intent.metadata.to_dict() == {"order_id": order["id"],
                                         "buyer_id": market.buyer.id}
    assert intent.status == "requires_payment_method"


def test_the_buyer_reads_the_client_secret_of_an_unpaid_order_again(market):
    """An auto-order is placed without the buyer's client: it fetches the secret later."""
    order = market.place()
    again = market.client.get(f"{ORDERS}/{order['id']}/payment", headers=market.buyer.headers)
    assert again.status_code == 200, again.json
    assert again.json["payment"]["client_secret"] == order["payment"]["client_secret"]
    assert again.json["payment"]["provider"] == "stripe"

    merchant = market.client.get(f"{ORDERS}/{order['id']}/payment",
                                 headers=market.merchant.headers)
    assert merchant.status_code == 403


def test_the_payment_of_a_paid_order_is_not_offered_again(market):
    order = market.place()
    intent = market.pay_with(order["id"], "pm_card_visa")
    deliver_event(market.client, event_for(intent, "payment_intent.succeeded"))
    again = market.client.get(f"{ORDERS}/{order['id']}/payment", headers=market.buyer.headers)
    assert again.status_code == 409
    assert again.json["code"] == "invalid_transition"


def test_a_confirmed_card_payment_and_its_signed_webhook_pay_the_order(market):
    order = market.place()
    intent = market.pay_with(order["id"], "pm_card_visa")
    assert intent.status == "succeeded"

    answer = deliver_event(market.client, event_for(intent, "payment_intent.succeeded"))
    assert answer.status_code == 200, answer.json
    assert answer.json["outcome"] == "paid"
    paid = market.client.get(f"{ORDERS}/{order['id']}", headers=market.buyer.headers).json
    assert paid["status"] == "paid"
    assert paid["paid_amount"] == order["total_amount"]
    payment = db.session.scalars(select(Payment)).one()
    assert (payment.provider, payment.reference, payment.amount) == (
        "stripe", intent.id, order["total_amount"])
    # Paid by the webhook, with no actor, in the listing's trace.
    assert market.order_steps(order["id"]) == [("order.placed", market.buyer.id),
                                               ("order.paid", None)]


def test_a_declined_card_leaves_the_order_unpaid_and_payable(market):
    order = market.place()
    with pytest.raises(stripe.CardError):
        market.pay_with(order["id"], "pm_card_chargeCustomerFail")
    intent = market.intent_of(order["id"])
    assert intent.status == "requires_payment_method"

    failed = deliver_event(market.client, event_for(intent, "payment_intent.payment_failed"))
    assert failed.json["outcome"] == "payment_failed"
    # A forged or stale "succeeded" is checked against Stripe's own state: nothing is paid.
    forged = deliver_event(market.client, event_for(intent, "payment_intent.succeeded"))
    assert forged.status_code == 200
    assert forged.json["outcome"] == "not_succeeded"
    unpaid = market.client.get(f"{ORDERS}/{order['id']}", headers=market.buyer.headers).json
    assert unpaid["status"] == "pending_payment"
    assert unpaid["payment"]["status"] == "failed"
    assert count(Payment) == 0
    assert market.order_steps(order["id"]) == [("order.placed", market.buyer.id),
                                               ("order.payment_failed", None)]


@pytest.mark.parametrize("header", ["", "t=1,v1=00", "wrong-secret", "stale"])
def test_a_bad_signature_is_refused_and_changes_nothing(market, header):
    order = market.place()
    intent = market.pay_with(order["id"], "pm_card_visa")
    event = event_for(intent, "payment_intent.succeeded")
    payload = json.dumps(event).encode()
    if header == "wrong-secret":
        header = signature(payload, secret="whsec_someone_else")
    elif header == "stale":
        header = signature(payload, at=int(time.time()) - 3600)
    answer = deliver_event(market.client, event, header=header)
    assert answer.status_code == 400
    assert answer.mimetype == "application/problem+json"
    assert answer.json["code"] == "invalid_signature"
    assert count(StripeEvent) == 0
    assert count(Payment) == 0


def test_a_signature_over_another_body_is_refused(market):
    order = market.place()
    intent = market.pay_with(order["id"], "pm_card_visa")
    event = event_for(intent, "payment_intent.succeeded")
    header = signature(json.dumps({**event, "id": "evt_other"}).encode())
    answer = deliver_event(market.client, event, header=header)
    assert answer.status_code == 400
    assert answer.json["code"] == "invalid_signature"


def test_the_same_event_delivered_twice_has_one_effect(market):
    order = market.place()
    intent = market.pay_with(order["id"], "pm_card_visa")
    event = event_for(intent, "payment_intent.succeeded")
    first = deliver_event(market.client, event)
    second = deliver_event(market.client, event)
    assert (first.status_code, second.status_code) == (200, 200)
    assert (first.json["outcome"], second.json["outcome"]) == ("paid", "duplicate")
    assert count(Payment) == 1
    assert count(StripeEvent) == 1
    # Another event about the same payment (Stripe retries with new ids too) pays nothing more.
    again = deliver_event(market.client, event_for(intent, "payment_intent.succeeded"))
    assert again.json["outcome"] == "order_not_payable"
    assert count(Payment) == 1


@pytest.mark.postgres_only
def test_concurrent_deliveries_of_one_event_have_one_effect(market, stripe_app):
    order = market.place()
    intent = market.pay_with(order["id"], "pm_card_visa")
    event = event_for(intent, "payment_intent.succeeded")

    def deliver(_: int) -> tuple[int, str]:
        with stripe_app.app_context():
            answer = deliver_event(stripe_app.test_client(), event)
            db.session.remove()
            return answer.status_code, answer.json.get("outcome")

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(deliver, range(8)))
    assert all(status == 200 for status, _ in results), results
    assert sorted(outcome for _, outcome in results) == ["duplicate"] * 7 + ["paid"]
    assert count(Payment) == 1


def test_unknown_events_are_acknowledged_and_ignored(market):
    order = market.place()
    intent = market.intent_of(order["id"])
    answer = deliver_event(market.client, event_for(intent, "payment_intent.created"))
    assert answer.status_code == 200
    assert answer.json["outcome"] == "ignored"
    assert market.client.get(f"{ORDERS}/{order['id']}",
                             headers=market.buyer.headers).json["status"] == "pending_payment"


def deliver_signed(client: FlaskClient, payload: bytes) -> TestResponse:
    """A body signed with the app's secret, whatever it holds."""
    return client.post(WEBHOOK, data=payload, headers={"Content-Type": "application/json",
                                                       "Stripe-Signature": signature(payload)})


def test_a_signed_event_for_an_unknown_payment_intent_is_acknowledged_and_ignored(market):
    order = market.place()
    intent = market.intent_of(order["id"]).to_dict()
    unknown = {**intent, "id": "pi_nobody_knows_this_one", "metadata": {}}
    event = {**event_for(market.intent_of(order["id"]), "payment_intent.succeeded"),
             "data": {"object": unknown}}

    answer = deliver_event(market.client, event)

    assert answer.status_code == 200, answer.get_data(as_text=True)
    assert answer.json["outcome"] == "unknown_payment_intent"
    assert count(Payment) == 0
    assert market.client.get(f"{ORDERS}/{order['id']}",
                             headers=market.buyer.headers).json["status"] == "pending_payment"
    # Acknowledged once: a redelivery is a duplicate, not another look-up at Stripe.
    assert deliver_event(market.client, event).json["outcome"] == "duplicate"


@pytest.mark.parametrize("payload", [
    b"",
    b"not json",
    b"[]",
    b"{}",
    b'{"id": 5, "type": "payment_intent.succeeded"}',
    b'{"id": "evt_1", "type": "payment_intent.succeeded", "data": {"object": {"id": 7}}}',
    b'{"id": "evt_2", "type": "payment_intent.succeeded", "data": {"object": '
    b'{"object": "charge", "id": "ch_1"}}}',
    b'{"id": "evt_4", "type": "payment_intent.payment_failed", "data": {"object": '
    b'{"object": "payment_intent", "id": "pi_1", "metadata": "order"}}}',
    b'{"id": "evt_\\udc80", "type": "payment_intent.created", "data": {"object": {}}}',
    b'{"id": "evt_3", "type": "payment_intent.created", "amount": ' + b"1" * 5000 + b"}",
], ids=["empty", "not-json", "array", "empty-object", "numeric-id", "object-without-type",
        "a-charge", "metadata-not-an-object", "lone-surrogate", "long-integer"])
def test_a_signed_body_that_is_no_usable_event_is_acknowledged_and_ignored(market, payload):
    # Stripe retries anything but a 2xx for days; retrying a body it signed cannot mend it.
    answer = deliver_signed(market.client, payload)

    assert answer.status_code == 200, answer.get_data(as_text=True)
    assert answer.json["received"] is True
    assert answer.json["outcome"] == "ignored"
    assert count(Payment) == 0


@pytest.mark.parametrize("payload", [b"", b"not json", "caf\u00e9".encode("latin-1")],
                         ids=["empty", "not-json", "not-utf8"])
def test_an_unusable_body_with_a_bad_signature_is_still_refused(market, payload):
    answer = market.client.post(WEBHOOK, data=payload, headers={
        "Content-Type": "application/json", "Stripe-Signature": "t=1,v1=00"})

    assert answer.status_code == 400
    assert answer.json["code"] == "invalid_signature"
    assert count(StripeEvent) == 0


def test_a_full_refund_through_a_dispute_creates_a_stripe_refund(market):
    order = market.place()
    intent = market.pay_with(order["id"], "pm_card_visa")
    assert deliver_event(market.client, event_for(
        intent, "payment_intent.succeeded")).json["outcome"] == "paid"
    delivered = market.client.post(f"{ORDERS}/{order['id']}/deliver",
                                   headers=market.merchant.headers,
                                   json={"delivery_ref": "s3://exchange/d/1.parquet",
                                         "checksum": "sha256:0f1e"})
    assert delivered.json["status"] == "delivered", delivered.json
    dispute = market.client.post(f"{ORDERS}/{order['id']}/disputes",
                                 headers=market.buyer.headers, json={"reason": "Wrong data"})
    assert dispute.status_code == 201, dispute.json
    resolved = market.client.post(f"/api/v1/disputes/{dispute.json['id']}/resolve",
                                  json={"outcome": "refund_full"},
                                  headers={**market.operator.headers,
                                           "Idempotency-Key": "resolve-1"})
    assert resolved.status_code == 200, resolved.json

    refund = db.session.scalars(select(Refund)).one()
    assert refund.provider == "stripe"
    assert refund.amount == order["total_amount"]
    remote = market.sdk.v1.refunds.retrieve(refund.reference)
    assert remote.amount == order["total_amount"]
    assert remote.payment_intent == intent.id
    refunded = market.client.get(f"{ORDERS}/{order['id']}", headers=market.buyer.headers).json
    assert (refunded["status"], refunded["refunded_amount"]) == (
        "refunded", order["total_amount"])


def test_a_dispute_resolution_retried_after_a_rollback_asks_stripe_for_the_same_refund(
        market, monkeypatch):
    """localstripe does not replay idempotent requests, so the test reads the keys sent: Stripe
    answers a repeated key with the refund it already made instead of a second one."""
    order, _ = paid_by_card(market)
    market.client.post(f"{ORDERS}/{order['id']}/deliver", headers=market.merchant.headers,
                       json={"delivery_ref": "s3://exchange/d/1.parquet", "checksum": "sha256:0f"})
    dispute = market.client.post(f"{ORDERS}/{order['id']}/disputes",
                                 headers=market.buyer.headers, json={"reason": "Wrong data"})
    resolve = f"/api/v1/disputes/{dispute.json['id']}/resolve"
    keys_sent: list[str] = []
    create = stripe.RefundService.create

    def recording_create(service: Any, params: Any = None, options: Any = None) -> Any:
        keys_sent.append((options or {})["idempotency_key"])
        return create(service, params, options)

    def fail_after_the_provider_refunded(*_: Any) -> None:
        raise Conflict("the ledger write failed")

    monkeypatch.setattr(stripe.RefundService, "create", recording_create)
    with monkeypatch.context() as failing:
        failing.setattr("orders.money.refund_paid", fail_after_the_provider_refunded)
        failed = market.client.post(resolve, json={"outcome": "refund_full"},
                                    headers={**market.operator.headers, "Idempotency-Key": "r-1"})
    assert failed.status_code == 409
    retried = market.client.post(resolve, json={"outcome": "refund_full"},
                                 headers={**market.operator.headers, "Idempotency-Key": "r-2"})

    assert retried.status_code == 200, retried.json
    assert len(keys_sent) == 2 and keys_sent[0] == keys_sent[1]


def paid_by_card(market: StripeMarket) -> tuple[dict[str, Any], Any]:
    order = market.place()
    intent = market.pay_with(order["id"], "pm_card_visa")
    assert deliver_event(market.client, event_for(
        intent, "payment_intent.succeeded")).json["outcome"] == "paid"
    return order, intent


def licenses_left(market: StripeMarket) -> int:
    listing = market.client.get(f"/api/v1/listings/{market.listing['id']}",
                                headers=market.merchant.headers)
    return int(listing.json["licenses_available"])


def test_a_buyer_cancelling_a_card_paid_undelivered_order_is_refunded_by_stripe(market):
    order, intent = paid_by_card(market)
    assert licenses_left(market) == 9

    cancelled = market.client.post(f"{ORDERS}/{order['id']}/cancel",
                                   headers={**market.buyer.headers,
                                            "Idempotency-Key": "cancel-1"})

    assert cancelled.status_code == 200, cancelled.json
    assert (cancelled.json["status"], cancelled.json["refunded_amount"]) == (
        "refunded", order["total_amount"])
    refund = db.session.scalars(select(Refund)).one()
    db.session.rollback()
    assert (refund.provider, refund.amount, refund.dispute_id) == (
        "stripe", order["total_amount"], None)
    remote = market.sdk.v1.refunds.retrieve(refund.reference)
    assert (remote.amount, remote.payment_intent, remote.status) == (
        order["total_amount"], intent.id, "succeeded")
    trial = market.client.get("/api/v1/ledger/trial-balance", headers=market.operator.headers)
    assert trial.json["balanced"] is True
    balances = {account["code"]: account["balance"] for account in trial.json["accounts"]}
    assert (balances["buyer_clearing"], balances["refunds"]) == (0, order["total_amount"])
    assert licenses_left(market) == 10
    assert market.order_steps(order["id"])[-1] == ("order.refunded", market.buyer.id)

    again = market.client.post(f"{ORDERS}/{order['id']}/cancel", headers=market.buyer.headers)
    assert (again.status_code, again.json["code"]) == (409, "invalid_transition")
    assert count(Refund) == 1


def test_the_scheduler_refunds_a_card_paid_order_never_delivered_through_stripe(
        market, stripe_app):
    order, intent = paid_by_card(market)
    clock.advance(timedelta(days=stripe_app.config["ORDER_DELIVERY_DAYS"], minutes=1))

    assert run_job(stripe_app, "refund_undelivered_orders")
    assert run_job(stripe_app, "refund_undelivered_orders")  # again: nothing more

    refund = db.session.scalars(select(Refund)).one()
    db.session.rollback()
    remote = market.sdk.v1.refunds.retrieve(refund.reference)
    assert (remote.amount, remote.payment_intent) == (order["total_amount"], intent.id)
    refunded = market.client.get(f"{ORDERS}/{order['id']}", headers=market.buyer.headers).json
    assert (refunded["status"], refunded["refunded_amount"]) == (
        "refunded", order["total_amount"])
    credit = market.client.get(f"/api/v1/credit/parties/{market.merchant.id}",
                               headers=market.merchant.headers).json
    assert [event["kind"] for event in credit["events"]] == ["non_delivery"]
    trial = market.client.get("/api/v1/ledger/trial-balance", headers=market.operator.headers)
    assert trial.json["balanced"] is True
    assert licenses_left(market) == 10


# --- prices ----------------------------------------------------------------------------------

def test_a_listing_priced_at_zero_opens_no_payment_intent_and_answers_409(market):
    with db.engine.begin() as connection:  # listed at 0 while the API still took that price
        connection.execute(update(Listing).where(Listing.id == uuid.UUID(market.listing["id"]))
                           .values(unit_price=0))

    response = market.client.post(ORDERS, json=order_body(market.listing),
                                  headers=market.buyer.headers)

    assert response.status_code == 409, response.json
    assert response.json["code"] == "listing_not_available"
    assert count(Order) == 0
    assert market.sdk.v1.payment_intents.list().data == []
    trial = market.client.get("/api/v1/ledger/trial-balance", headers=market.operator.headers)
    assert trial.json["balanced"] is True


def test_an_order_at_the_lowest_price_is_paid_through_stripe_and_balances_the_ledger(market):
    market.listing = listed_product(market.client, market.merchant, unit_price=1)
    order = market.place()
    assert market.intent_of(order["id"]).amount == 1

    intent = market.pay_with(order["id"], "pm_card_visa")
    answer = deliver_event(market.client, event_for(intent, "payment_intent.succeeded"))

    assert answer.json["outcome"] == "paid"
    paid = market.client.get(f"{ORDERS}/{order['id']}", headers=market.buyer.headers).json
    assert (paid["status"], paid["paid_amount"]) == ("paid", 1)
    trial = market.client.get("/api/v1/ledger/trial-balance", headers=market.operator.headers)
    assert trial.json["balanced"] is True
    assert trial.json["total_debits"] == 1


def test_an_order_over_the_unpaid_cap_opens_no_payment_intent(market, stripe_app, monkeypatch):
    monkeypatch.setitem(stripe_app.config, "UNPAID_LICENSES_PER_BUYER_PER_LISTING", 1)
    market.place()

    response = market.client.post(ORDERS, json=order_body(market.listing),
                                  headers=market.buyer.headers)

    assert response.status_code == 409, response.json
    assert response.json["code"] == "unpaid_limit_reached"
    assert count(Order) == 1
    assert len(market.sdk.v1.payment_intents.list().data) == 1
