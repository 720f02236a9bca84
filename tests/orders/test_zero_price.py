"""Prices start at 1 fen: every order has a payment to take, a ledger posting to make and an
allocation to split. A listing priced at 0 before that rule never turns an order into a 500
(the Stripe provider's side is in test_stripe.py)."""

from __future__ import annotations

import uuid

from flask.testing import FlaskClient
from sqlalchemy import update

from app.db import unit_of_work
from listings.models import Listing
from orders.models import Order
from tests.factories import Member
from tests.orders.factories import order_body
from tests.settlement.helpers import (
    ORDERS,
    allocations,
    completed_order,
    count,
    make_market,
    ok,
    settled,
    trial_balance,
)


def priced_at_zero_before_the_rule(listing_id: str) -> None:
    """A listing listed at 0 fen while the API still took that price (straight in the
    database: the API refuses it now)."""
    with unit_of_work() as session:
        session.execute(update(Listing).where(Listing.id == uuid.UUID(listing_id))
                        .values(unit_price=0))


def licenses_left(client: FlaskClient, member: Member, listing_id: str) -> int | None:
    return ok(client.get(f"/api/v1/listings/{listing_id}", headers=member.headers))[
        "licenses_available"]


def test_an_order_of_a_listing_priced_at_zero_is_refused_and_reserves_nothing(client):
    m = make_market(client, plan=False, licenses=10)
    priced_at_zero_before_the_rule(m.listing["id"])

    response = client.post(ORDERS, json=order_body(m.listing, quantity=2),
                           headers=m.buyer.headers)

    assert response.status_code == 409, response.get_json()
    assert response.mimetype == "application/problem+json"
    assert response.get_json()["code"] == "listing_not_available"
    assert count(Order) == 0
    assert licenses_left(client, m.buyer, m.listing["id"]) == 10
    assert trial_balance(client, m.operator)["balanced"] is True


def test_an_order_at_the_lowest_price_is_paid_settled_and_keeps_the_ledger_balanced(client):
    m = make_market(client, licenses=10, unit_price=1)

    order = completed_order(m, quantity=2)
    run = settled(client, m.operator)

    assert (order["total_amount"], order["paid_amount"]) == (2, 2)
    assert (run["orders_settled"], run["gross_amount"]) == (1, 2)
    lines = ok(allocations(client, m.operator, order["id"]))
    assert sum(line["amount"] for line in lines) == 2
    trial = trial_balance(client, m.operator)
    assert trial["balanced"] is True
    assert trial["total_debits"] == trial["total_credits"]
