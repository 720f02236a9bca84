"""Every order carries a licence: pending when placed, active from delivery for its term, revoked
when the order ends unpaid, cancelled or refunded in full; who may read it."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import pytest

from app import clock
from app.parties.models import Role
from app.scheduler import run_job
from tests.factories import make_member
from tests.licenses.helpers import API, PER_CALL, Licensing, agency
from tests.orders.factories import Market
from tests.support import ok, problem

CONTRACT_FIELDS = {"id", "order_id", "listing_id", "buyer_id", "merchant_id", "beneficiaries",
                   "purposes", "territory", "resale", "derivatives", "delivery_mode",
                   "valid_from", "valid_until", "status", "calls_remaining"}


@pytest.fixture
def trade(market: Market) -> Licensing:
    return Licensing(market)


def test_a_placed_order_carries_a_pending_licence_that_delivery_starts_for_its_term(trade):
    listing = trade.listing()
    order = trade.order(listing)
    assert order["license_id"]
    pending = trade.license(order["license_id"], trade.market.buyer)
    assert set(pending) >= CONTRACT_FIELDS
    assert pending["status"] == "pending"
    assert (pending["order_id"], pending["listing_id"]) == (order["id"], listing["id"])
    assert pending["buyer_id"] == trade.market.buyer.id
    assert pending["merchant_id"] == trade.market.merchant.id
    assert pending["purposes"] == listing["usage_scope"]["purposes"]
    assert pending["purpose"] == "research"
    assert (pending["territory"], pending["resale"], pending["derivatives"]) == (
        "domestic", False, True)
    assert (pending["delivery_mode"], pending["price_model"]) == ("api", "subscription")
    assert pending["valid_from"] is None and pending["valid_until"] is None
    assert pending["verified_delivery"] is None and pending["calls_remaining"] is None
    assert trade.license(order["license_id"], trade.market.buyer)["status"] == "pending"

    trade.pay(order)
    assert trade.license(order["license_id"])["status"] == "pending"
    clock.advance(timedelta(days=2))  # the term runs from delivery, not from the purchase
    delivered = trade.deliver(order)
    assert delivered["license_id"] == order["license_id"]
    active = trade.license(order["license_id"], trade.market.buyer)
    assert active["status"] == "active"
    assert active["valid_from"] == delivered["delivered_at"]
    assert datetime.fromisoformat(active["valid_until"]) == (
        datetime.fromisoformat(delivered["delivered_at"]) + timedelta(days=365))
    # Delivered by a reference given as text: nothing the exchange could check.
    assert active["verified_delivery"] is False


def test_a_per_call_licence_holds_the_calls_bought(trade):
    order = trade.order(trade.listing(**PER_CALL), quantity=500)
    assert trade.license(order["license_id"])["calls_remaining"] == 500
    trade.pay(order)
    trade.deliver(order)
    licence = trade.license(order["license_id"])
    assert (licence["status"], licence["price_model"], licence["calls_remaining"]) == (
        "active", "per_call", 500)


def test_a_licence_without_a_term_has_no_end(trade):
    _, licence = trade.delivered(trade.listing(usage_scope={
        "purposes": ["research"], "term_days": None, "territory": "domestic", "resale": False,
        "derivatives": False}))
    assert licence["status"] == "active" and licence["valid_until"] is None


def test_an_order_cancelled_expired_unpaid_or_refunded_in_full_revokes_its_licence(app, trade):
    listing = trade.listing()
    cancelled = trade.order(listing)
    trade.cancel(cancelled)
    refunded, _ = trade.delivered(listing)
    trade.resolve_dispute(refunded, "refund_full")
    lapsing = trade.order(listing)
    clock.advance(timedelta(minutes=app.config["ORDER_PAYMENT_TTL_MINUTES"] + 1))
    assert run_job(app, "expire_unpaid_orders")

    reasons = {order["id"]: trade.license(order["license_id"]) for order in
               (cancelled, refunded, lapsing)}
    assert {order_id: (licence["status"], licence["status_reason"])
            for order_id, licence in reasons.items()} == {
        cancelled["id"]: ("revoked", "order cancelled"),
        refunded["id"]: ("revoked", "order refunded in full"),
        lapsing["id"]: ("revoked", "order expired unpaid")}


def test_a_partial_refund_or_a_rejected_dispute_keeps_the_licence(trade):
    for outcome, amount in (("refund_partial", 100), ("rejected", None)):
        order, _ = trade.delivered()
        trade.resolve_dispute(order, outcome, amount)
        assert trade.license(order["license_id"])["status"] == "active", outcome


def test_licence_events_are_audited_in_the_listing_trace(trade):
    listing = trade.listing()
    order, _ = trade.delivered(listing)
    trace = ok(trade.client.get(f"{API}/listings/{listing['id']}/trace",
                                headers=trade.market.merchant.headers))
    licence_entries = [(entry["action"], entry["subject_id"]) for entry in trace
                       if entry["action"].startswith("license.")]
    assert licence_entries == [("license.issued", order["license_id"]),
                               ("license.activated", order["license_id"])]


def test_a_licence_is_read_by_its_holders_its_merchant_and_overseers_only(trade):
    m = trade.market
    agencies = [agency(), agency()]
    order = trade.order(trade.listing(), beneficiaries=[a.id for a in agencies])
    for reader in (m.buyer, *agencies, m.merchant, m.operator, m.regulator):
        assert trade.license(order["license_id"], reader)["beneficiaries"] == [
            a.id for a in agencies]
    for stranger in (make_member(Role.BUYER), make_member(Role.MERCHANT), agency()):
        problem(trade.get(order["license_id"], stranger), 404, "license_not_found")
    problem(trade.get(order["id"], m.operator), 404, "license_not_found")


def test_licences_are_listed_for_each_party_with_filters_and_pages(trade):
    m = trade.market
    listing, other_listing = trade.listing(), trade.listing()
    beneficiary = agency()
    joint = trade.order(listing, beneficiaries=[beneficiary.id])
    active, _ = trade.delivered(listing)
    elsewhere = trade.order(other_listing)
    someone_else = trade.order(listing, make_member(Role.BUYER))

    def listed(member, **query):
        response = trade.client.get(f"{API}/licenses", headers=member.headers,
                                    query_string=query)
        return [licence["order_id"] for licence in ok(response)], response

    mine, response = listed(m.buyer)
    assert mine == [elsewhere["id"], active["id"], joint["id"]]  # newest first
    assert json.loads(response.headers["X-Pagination"])["total"] == 3
    assert listed(beneficiary)[0] == [joint["id"]]
    assert listed(m.merchant)[0] == [someone_else["id"], elsewhere["id"], active["id"],
                                     joint["id"]]
    assert listed(m.regulator, listing_id=other_listing["id"])[0] == [elsewhere["id"]]
    assert listed(m.buyer, status="active")[0] == [active["id"]]
    assert listed(m.buyer, status="pending", listing_id=listing["id"])[0] == [joint["id"]]
    assert listed(make_member(Role.BUYER))[0] == []
    page, response = listed(m.buyer, page=2, page_size=2)
    assert page == [joint["id"]]
    pagination = json.loads(response.headers["X-Pagination"])
    assert {key: pagination[key] for key in ("total", "total_pages", "page", "page_size")} == {
        "total": 3, "total_pages": 2, "page": 2, "page_size": 2}
    problem(trade.client.get(f"{API}/licenses", headers=m.buyer.headers,
                             query_string={"status": "lapsed"}), 422)


def test_the_voucher_attests_the_term_the_licence_runs_from_delivery(trade):
    order = trade.order(trade.listing())
    trade.pay(order)
    clock.advance(timedelta(days=3))
    trade.deliver(order)
    trade.accept(order)
    licence = trade.license(order["license_id"])
    voucher = ok(trade.client.get(f"{API}/orders/{order['id']}/voucher",
                                  headers=trade.market.buyer.headers))
    assert {key: voucher["facts"]["license"][key] for key in ("valid_from", "valid_until")} == {
        "valid_from": licence["valid_from"], "valid_until": licence["valid_until"]}
