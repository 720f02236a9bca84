"""What one buyer may hold unpaid: a cap on the licenses of a listing held by its unpaid
orders, and abandoning unpaid orders again and again (cancelled, or left to expire) as a
credit finding, once per window."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from app import clock
from app.parties.models import Role
from app.scheduler import run_job
from orders.models import Order
from tests.factories import Member, make_member, run_together
from tests.orders.factories import Market, listed_product, order_body
from tests.settlement.helpers import count
from tests.support import ok

ORDERS = "/api/v1/orders"
CAP = "UNPAID_LICENSES_PER_BUYER_PER_LISTING"
FINDING = "order_abandonment"


@pytest.fixture
def m(app: Flask, client: FlaskClient) -> Market:
    return Market.open(app, client)


def listed(m: Market, **overrides: Any) -> dict[str, Any]:
    return listed_product(m.client, m.merchant, **overrides)


def place(client: FlaskClient, buyer: Member, listing: dict[str, Any],
          quantity: int = 1) -> TestResponse:
    return client.post(ORDERS, json=order_body(listing, quantity=quantity),
                       headers=buyer.headers)


def placed(m: Market, listing: dict[str, Any], quantity: int = 1) -> dict[str, Any]:
    return ok(place(m.client, m.buyer, listing, quantity), 201)


def cancel(client: FlaskClient, buyer: Member, order_id: str) -> TestResponse:
    return client.post(f"{ORDERS}/{order_id}/cancel", headers=buyer.headers)


def pay(m: Market, order_id: str) -> dict[str, Any]:
    return ok(m.client.post(f"{ORDERS}/{order_id}/payments/confirm", headers=m.operator.headers,
                            json={"reference": "BANK-001"}))


def licenses_left(m: Market, listing: dict[str, Any]) -> int | None:
    return ok(m.client.get(f"/api/v1/listings/{listing['id']}", headers=m.buyer.headers))[
        "licenses_available"]


def over_the_cap(response: TestResponse) -> dict[str, Any]:
    assert response.status_code == 409, response.get_json()
    assert response.mimetype == "application/problem+json"
    body = response.get_json()
    assert body["code"] == "unpaid_limit_reached", body
    return body


def findings(m: Market, member: Member) -> list[dict[str, Any]]:
    file = ok(m.client.get(f"/api/v1/credit/parties/{member.id}", headers=m.regulator.headers))
    return [event for event in file["events"] if event["kind"] == FINDING]


def at_the_start_of_a_window(app: Flask) -> datetime:
    """Move the clock just past the start of the next abandonment window (windows are
    counted from the epoch, in UTC); returns that start."""
    size = timedelta(hours=app.config["ABANDONED_ORDERS_WINDOW_HOURS"])
    now = clock.now()
    start = datetime(1970, 1, 1, tzinfo=UTC) + size * ((now - datetime(
        1970, 1, 1, tzinfo=UTC)) // size + 1)
    clock.advance(start - now + timedelta(minutes=1))
    return start


# --- the cap ---------------------------------------------------------------------------------

def test_a_buyer_holding_the_cap_unpaid_is_refused_more_and_nothing_is_reserved(
        m, monkeypatch):
    monkeypatch.setitem(m.app.config, CAP, 3)
    listing = listed(m, licenses_available=10)
    first = placed(m, listing, 2)
    placed(m, listing, 1)

    body = over_the_cap(place(m.client, m.buyer, listing, 1))

    assert (body["limit"], body["held"]) == (3, 3)
    assert "3" in body["detail"]
    assert count(Order) == 2
    assert licenses_left(m, listing) == 7
    # Another buyer is not held back by this one's orders.
    ok(place(m.client, make_member(Role.BUYER), listing, 3), 201)
    # Paying (or cancelling) makes room again.
    pay(m, first["id"])
    placed(m, listing, 2)
    over_the_cap(place(m.client, m.buyer, listing, 1))
    assert licenses_left(m, listing) == 2


def test_one_order_above_the_default_cap_is_refused(m):
    cap = m.app.config[CAP]
    listing = listed(m, licenses_available=cap + 5)

    body = over_the_cap(place(m.client, m.buyer, listing, cap + 1))

    assert (body["limit"], body["held"]) == (cap, 0)
    assert licenses_left(m, listing) == cap + 5
    assert placed(m, listing, cap)["quantity"] == cap


def test_a_cancelled_order_no_longer_counts_against_the_cap(m, monkeypatch):
    monkeypatch.setitem(m.app.config, CAP, 2)
    listing = listed(m, licenses_available=10)
    held = placed(m, listing, 2)
    over_the_cap(place(m.client, m.buyer, listing, 1))

    ok(cancel(m.client, m.buyer, held["id"]))

    assert placed(m, listing, 2)["status"] == "pending_payment"


def test_an_unlimited_listing_holds_nothing_and_is_not_capped(m, monkeypatch):
    monkeypatch.setitem(m.app.config, CAP, 1)
    listing = listed(m, licenses_available=None)

    assert placed(m, listing, 3)["quantity"] == 3
    assert placed(m, listing, 3)["quantity"] == 3


def test_an_auto_order_over_the_cap_leaves_the_demand_open(m, monkeypatch):
    monkeypatch.setitem(m.app.config, CAP, 1)
    listing = listed(m, licenses_available=10)
    placed(m, listing, 1)

    demand = ok(m.client.post("/api/v1/demands", headers=m.buyer.headers, json={
        "category": "transport", "purpose": "research", "max_unit_price": 200_000,
        "auto_order": True}), 201)

    assert (demand["status"], demand["order"]) == ("open", None)
    assert run_job(m.app, "match_open_demands")
    assert count(Order) == 1
    assert licenses_left(m, listing) == 9


@pytest.mark.postgres_only
def test_concurrent_orders_of_one_buyer_never_pass_the_cap_together(app, m, monkeypatch):
    monkeypatch.setitem(app.config, CAP, 2)
    listing = listed(m, licenses_available=20)

    responses = run_together(app, [lambda c: place(c, m.buyer, listing, 1)] * 8)

    statuses = sorted(r.status_code for r in responses)
    assert statuses == [201] * 2 + [409] * 6, [r.get_json() for r in responses]
    assert {r.get_json()["code"] for r in responses if r.status_code == 409} == {
        "unpaid_limit_reached"}
    assert count(Order) == 2
    assert licenses_left(m, listing) == 18


# --- abandonment -------------------------------------------------------------------------------

def test_the_nth_abandoned_order_in_a_window_is_one_finding_against_the_buyer(
        m, monkeypatch):
    monkeypatch.setitem(m.app.config, "ABANDONED_ORDERS_FINDING_COUNT", 3)
    listing = listed(m, licenses_available=10)
    at_the_start_of_a_window(m.app)
    orders = [placed(m, listing) for _ in range(5)]

    for order in orders[:2]:
        ok(cancel(m.client, m.buyer, order["id"]))
    assert findings(m, m.buyer) == []
    ok(cancel(m.client, m.buyer, orders[2]["id"]))
    assert len(findings(m, m.buyer)) == 1
    for order in orders[3:]:
        ok(cancel(m.client, m.buyer, order["id"]))

    [finding] = findings(m, m.buyer)
    assert finding["severity"] == "minor"
    assert "3 unpaid orders" in finding["description"]
    assert findings(m, m.merchant) == []
    assert licenses_left(m, listing) == 10


def test_expiries_count_as_abandonments_and_the_job_makes_the_finding_once(m, monkeypatch):
    monkeypatch.setitem(m.app.config, "ABANDONED_ORDERS_FINDING_COUNT", 3)
    listing = listed(m, licenses_available=10)
    at_the_start_of_a_window(m.app)
    cancelled = placed(m, listing)
    unpaid = [placed(m, listing), placed(m, listing)]
    ok(cancel(m.client, m.buyer, cancelled["id"]))

    clock.advance(timedelta(minutes=m.app.config["ORDER_PAYMENT_TTL_MINUTES"] + 1))
    assert run_job(m.app, "expire_unpaid_orders")
    assert run_job(m.app, "expire_unpaid_orders")

    assert len(findings(m, m.buyer)) == 1
    file = ok(m.client.get(f"/api/v1/credit/parties/{m.buyer.id}", headers=m.buyer.headers))
    assert [e["kind"] for e in file["events"]].count("payment_default") == len(unpaid)


def test_each_window_counts_afresh(m, monkeypatch):
    monkeypatch.setitem(m.app.config, "ABANDONED_ORDERS_FINDING_COUNT", 2)
    listing = listed(m, licenses_available=10)
    at_the_start_of_a_window(m.app)
    ok(cancel(m.client, m.buyer, placed(m, listing)["id"]))

    at_the_start_of_a_window(m.app)
    ok(cancel(m.client, m.buyer, placed(m, listing)["id"]))
    assert findings(m, m.buyer) == []
    ok(cancel(m.client, m.buyer, placed(m, listing)["id"]))
    assert len(findings(m, m.buyer)) == 1

    at_the_start_of_a_window(m.app)
    for _ in range(2):
        ok(cancel(m.client, m.buyer, placed(m, listing)["id"]))
    assert len(findings(m, m.buyer)) == 2


@pytest.mark.postgres_only
def test_concurrent_cancellations_crossing_the_count_make_exactly_one_finding(
        app, m, monkeypatch):
    monkeypatch.setitem(app.config, "ABANDONED_ORDERS_FINDING_COUNT", 3)
    at_the_start_of_a_window(app)
    # Each of another listing: the cancellations do not queue on one listing's row.
    orders = [placed(m, listed(m, licenses_available=10)) for _ in range(6)]

    responses = run_together(app, [lambda c, o=o: cancel(c, m.buyer, o["id"]) for o in orders])

    assert [r.status_code for r in responses] == [200] * 6, [r.get_json() for r in responses]
    assert len(findings(m, m.buyer)) == 1

