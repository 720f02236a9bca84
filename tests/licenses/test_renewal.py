"""Renewal of a subscription: a new order at the price in force; once it completes, the licence
runs one more term from its current end."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

import pytest

from app import clock
from app.parties.models import Role
from app.scheduler import run_job
from tests.factories import make_member
from tests.licenses.helpers import API, DOWNLOAD, PER_CALL, Licensing, agency
from tests.orders.factories import Market
from tests.support import ok, problem

THIRTY_DAYS = {"usage_scope": {"purposes": ["research", "insurance"], "term_days": 30,
                               "territory": "domestic", "resale": False, "derivatives": True}}


@pytest.fixture
def trade(market: Market) -> Licensing:
    return Licensing(market)


def renew(trade: Licensing, license_id: str, member=None, key: str | None = None):
    return trade.post(license_id, "renew", member or trade.market.buyer,
                      **{"Idempotency-Key": key or uuid.uuid4().hex})


def end_of(licence: dict) -> datetime:
    return datetime.fromisoformat(licence["valid_until"])


def test_a_completed_renewal_moves_the_end_on_by_one_term_from_the_current_end(trade):
    listing = trade.listing(**THIRTY_DAYS)
    order, licence = trade.delivered(listing, quantity=2, purpose="insurance")
    first_end = end_of(licence)
    clock.advance(timedelta(days=10))

    renewal = ok(renew(trade, licence["id"]), 201)
    assert renewal["id"] != order["id"]
    assert (renewal["status"], renewal["license_id"], renewal["listing_id"]) == (
        "pending_payment", licence["id"], listing["id"])
    assert (renewal["quantity"], renewal["purpose"]) == (2, "insurance")
    assert (renewal["unit_price"], renewal["total_amount"]) == (
        listing["unit_price"], 2 * listing["unit_price"])
    trade.pay(renewal)
    trade.deliver(renewal)
    assert end_of(trade.license(licence["id"])) == first_end  # not before it completes
    trade.accept(renewal)

    renewed = trade.license(licence["id"])
    assert renewed["status"] == "active"
    assert end_of(renewed) == first_end + timedelta(days=30)  # from the end, not from now
    assert renewed["valid_from"] == licence["valid_from"]
    trace = ok(trade.client.get(f"{API}/listings/{listing['id']}/trace",
                                headers=trade.market.merchant.headers))
    [entry] = [entry for entry in trace if entry["action"] == "license.renewed"]
    assert entry["subject_id"] == licence["id"]
    assert entry["details"]["renewal_order_id"] == renewal["id"]
    assert entry["details"]["extended_from"] == licence["valid_until"]
    # A second renewal runs on from the new end.
    again = ok(renew(trade, licence["id"]), 201)
    trade.pay(again)
    trade.deliver(again)
    trade.accept(again)
    assert end_of(trade.license(licence["id"])) == first_end + timedelta(days=60)


def test_a_lapsed_subscription_renewed_is_active_again_from_its_old_end(app, trade):
    _, licence = trade.delivered(trade.listing(**THIRTY_DAYS))
    clock.advance(timedelta(days=31))
    assert run_job(app, "expire_licenses")
    assert trade.license(licence["id"])["status"] == "expired"
    renewal = ok(renew(trade, licence["id"]), 201)
    trade.pay(renewal)
    trade.deliver(renewal)
    trade.accept(renewal)
    renewed = trade.license(licence["id"])
    assert renewed["status"] == "active"
    assert end_of(renewed) == end_of(licence) + timedelta(days=30)


def test_a_renewal_is_one_at_a_time_and_void_when_its_order_ends_unpaid(app, trade):
    _, licence = trade.delivered(trade.listing(**THIRTY_DAYS))
    renewal = ok(renew(trade, licence["id"]), 201)
    problem(renew(trade, licence["id"]), 409, "renewal_in_progress")
    trade.cancel(renewal)
    assert trade.license(licence["id"]) == licence  # a renewal's end is not the licence's

    lapsing = ok(renew(trade, licence["id"]), 201)
    clock.advance(timedelta(minutes=app.config["ORDER_PAYMENT_TTL_MINUTES"] + 1))
    assert run_job(app, "expire_unpaid_orders")
    assert trade.license(licence["id"])["status"] == "active"
    assert ok(trade.client.get(f"{API}/orders/{lapsing['id']}",
                               headers=trade.market.buyer.headers))["status"] == "expired"
    ok(renew(trade, licence["id"]), 201)


def test_a_renewal_takes_no_stock_and_gives_none_back(trade):
    listing = trade.listing(**THIRTY_DAYS, licenses_available=1)
    _, licence = trade.delivered(listing)

    def left() -> int:
        return ok(trade.client.get(f"{API}/listings/{listing['id']}",
                                   headers=trade.market.merchant.headers))["licenses_available"]

    assert left() == 0
    renewal = ok(renew(trade, licence["id"]), 201)
    assert left() == 0
    trade.cancel(renewal)
    assert left() == 0


def test_a_renewal_refunded_in_full_leaves_the_licence_as_it_was(trade):
    _, licence = trade.delivered(trade.listing(**THIRTY_DAYS))
    renewal = ok(renew(trade, licence["id"]), 201)
    trade.pay(renewal)
    trade.deliver(renewal)
    trade.resolve_dispute(renewal, "refund_full")
    assert trade.license(licence["id"]) == licence


def test_a_repeated_renewal_request_places_one_order(trade):
    _, licence = trade.delivered(trade.listing(**THIRTY_DAYS))
    first = renew(trade, licence["id"], key="renew-june")
    again = renew(trade, licence["id"], key="renew-june")
    assert ok(again, 201) == ok(first, 201)
    assert again.headers["Idempotent-Replayed"] == "true"
    orders = ok(trade.client.get(f"{API}/orders", headers=trade.market.buyer.headers))
    assert len(orders) == 2


def test_only_subscriptions_with_a_term_are_renewed(trade):
    for listing in (trade.listing(**PER_CALL), trade.listing(**DOWNLOAD), trade.listing(
            usage_scope={"purposes": ["research"], "term_days": None, "territory": "domestic",
                         "resale": False, "derivatives": False})):
        _, licence = trade.delivered(listing)
        problem(renew(trade, licence["id"]), 409, "not_renewable")


def test_only_an_active_or_lapsed_licence_is_renewed_and_only_by_its_buyer(trade):
    m = trade.market
    served = agency()
    order = trade.order(trade.listing(**THIRTY_DAYS), beneficiaries=[served.id])
    problem(renew(trade, order["license_id"]), 409, "invalid_transition")  # pending
    trade.pay(order)
    trade.deliver(order)
    problem(renew(trade, order["license_id"], make_member(Role.BUYER)), 404,
            "license_not_found")
    problem(renew(trade, order["license_id"], served), 403)
    for member in (m.merchant, m.operator):
        problem(renew(trade, order["license_id"], member), 403)
    ok(trade.post(order["license_id"], "suspend", m.operator, {"reason": "Investigated"}))
    problem(renew(trade, order["license_id"]), 409, "invalid_transition")
    ok(trade.post(order["license_id"], "revoke", m.operator,
                  {"reason": "Resold", "fault_party": "none"}))
    problem(renew(trade, order["license_id"]), 409, "invalid_transition")


def test_a_product_off_the_market_is_not_renewed(trade):
    listing = trade.listing(**THIRTY_DAYS)
    _, licence = trade.delivered(listing)
    ok(trade.client.post(f"{API}/listings/{listing['id']}/suspend",
                         headers=trade.market.operator.headers, json={"reason": "Review"}))
    problem(renew(trade, licence["id"]), 409, "listing_not_available")
    assert trade.license(licence["id"]) == licence
