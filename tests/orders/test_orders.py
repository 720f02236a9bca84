"""Orders through the HTTP API: placement, idempotency, concurrency, the state machine,
offline payment, expiry and auto-accept, credit events, disputes and visibility."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select, update
from werkzeug.test import TestResponse

from app import clock
from app.extensions import db
from app.parties.models import PartyKind, Role
from app.scheduler import run_job
from listings.models import Listing
from orders.models import Order, Payment, Refund
from tests.factories import Member, make_member, run_together
from tests.orders.factories import ProductMarket as Market
from tests.orders.factories import listed_product, order_body
from tests.support import problem_code

ORDERS = "/api/v1/orders"


# --- helpers ---------------------------------------------------------------------------------

@pytest.fixture
def market(client: FlaskClient) -> Market:
    return Market.open(client)


def with_key(member: Member, key: str | None) -> dict[str, str]:
    return {**member.headers, **({"Idempotency-Key": key} if key else {})}


def place(client: FlaskClient, buyer: Member, listing: dict[str, Any], *, key: str | None = None,
          **overrides: Any) -> TestResponse:
    return client.post(ORDERS, json=order_body(listing, **overrides), headers=with_key(buyer, key))


def confirm_payment(client: FlaskClient, operator: Member, order_id: str, *,
                    key: str | None = None, reference: str = "BANK-001") -> TestResponse:
    return client.post(f"{ORDERS}/{order_id}/payments/confirm", json={"reference": reference},
                       headers=with_key(operator, key))


def deliver(client: FlaskClient, merchant: Member, order_id: str) -> TestResponse:
    return client.post(f"{ORDERS}/{order_id}/deliver", headers=merchant.headers,
                       json={"delivery_ref": "s3://exchange/deliveries/1.parquet",
                             "checksum": "sha256:0f1e2d"})


def accept(client: FlaskClient, buyer: Member, order_id: str) -> TestResponse:
    return client.post(f"{ORDERS}/{order_id}/accept", headers=buyer.headers)


def cancel(client: FlaskClient, buyer: Member, order_id: str) -> TestResponse:
    return client.post(f"{ORDERS}/{order_id}/cancel", headers=buyer.headers)


def dispute(client: FlaskClient, buyer: Member, order_id: str) -> TestResponse:
    return client.post(f"{ORDERS}/{order_id}/disputes", headers=buyer.headers,
                       json={"reason": "Half of the rows are empty."})


def resolve(client: FlaskClient, operator: Member, dispute_id: str, *, key: str,
            **body: Any) -> TestResponse:
    return client.post(f"/api/v1/disputes/{dispute_id}/resolve", json=body,
                       headers=with_key(operator, key))


def created(response: TestResponse, status: int = 201) -> dict[str, Any]:
    assert response.status_code == status, response.get_json()
    return response.get_json()


def placed(m: Market, **overrides: Any) -> dict[str, Any]:
    return created(place(m.client, m.buyer, m.listing, **overrides))


def paid(m: Market, **overrides: Any) -> dict[str, Any]:
    order = placed(m, **overrides)
    return created(confirm_payment(m.client, m.operator, order["id"]), 200)


def delivered(m: Market, **overrides: Any) -> dict[str, Any]:
    order = paid(m, **overrides)
    return created(deliver(m.client, m.merchant, order["id"]), 200)


def disputed(m: Market) -> tuple[dict[str, Any], dict[str, Any]]:
    order = delivered(m)
    return order, created(dispute(m.client, m.buyer, order["id"]))


def order_seen_by(client: FlaskClient, member: Member, order_id: str) -> dict[str, Any]:
    return created(client.get(f"{ORDERS}/{order_id}", headers=member.headers), 200)


def licenses_left(client: FlaskClient, member: Member, listing_id: str) -> int | None:
    return created(client.get(f"/api/v1/listings/{listing_id}", headers=member.headers),
                   200)["licenses_available"]


def credit_event_kinds(client: FlaskClient, member: Member) -> list[str]:
    file = created(client.get(f"/api/v1/credit/parties/{member.id}", headers=member.headers), 200)
    return [event["kind"] for event in file["events"]]


def count(model: type, *where: Any) -> int:
    with db.engine.connect() as connection:
        return connection.scalar(select(func.count()).select_from(model).where(*where))


def restrict(client: FlaskClient, operator: Member, party: Member) -> None:
    created(client.post("/api/v1/credit/penalties", headers=operator.headers,
                        json={"party_id": party.id, "kind": "trade_restriction", "days": 30}))


# --- placement -------------------------------------------------------------------------------

def test_buyer_places_an_order_priced_from_the_listing_and_pending_payment(market):
    order = placed(market, quantity=3)

    assert order["status"] == "pending_payment"
    assert order["unit_price"] == market.listing["unit_price"] == 120_000
    assert order["total_amount"] == 3 * 120_000
    assert order["currency"] == "CNY"
    assert order["buyer_id"] == market.buyer.id
    assert order["merchant_id"] == market.merchant.id
    assert order["payment"]["provider"] == "offline"
    assert order["payment"]["status"] == "pending"
    assert order["license"]["purpose"] == "research"
    assert licenses_left(market.client, market.buyer, market.listing["id"]) == 7


def test_merchant_without_the_buyer_role_cannot_place_an_order(market):
    other_merchant = make_member(Role.MERCHANT)

    response = place(market.client, other_merchant, market.listing)

    assert response.status_code == 403
    assert count(Order) == 0


def test_anonymous_request_cannot_place_an_order(market):
    response = market.client.post(ORDERS, json=order_body(market.listing))

    assert response.status_code == 401
    assert response.mimetype == "application/problem+json"
    assert count(Order) == 0


def test_license_keeps_the_usage_scope_frozen_at_purchase(app, market):
    order = placed(market)
    frozen = order["license"]
    assert frozen["purposes"] == ["research", "logistics_planning"]
    assert frozen["term_days"] == 365
    assert frozen["territory"] == "domestic"

    # Later the product is withdrawn and its scope rewritten: the sold license is not.
    created(market.client.post(f"/api/v1/listings/{market.listing['id']}/delist",
                               headers=market.merchant.headers, json={"reason": "Retired"}), 200)
    listings = Listing.__table__
    with db.engine.begin() as connection:
        connection.execute(update(listings)
                           .where(listings.c.id == uuid.UUID(order["listing_id"]))
                           .values(usage_purposes=["marketing"], usage_term_days=30,
                                   usage_resale=True))
    listing_now = created(market.client.get(f"/api/v1/listings/{market.listing['id']}",
                                            headers=market.merchant.headers), 200)
    assert listing_now["status"] == "delisted"
    assert listing_now["usage_scope"]["purposes"] == ["marketing"]

    assert order_seen_by(market.client, market.buyer, order["id"])["license"] == frozen


def test_purpose_outside_the_usage_scope_is_refused(market):
    response = place(market.client, market.buyer, market.listing, purpose="marketing")

    assert response.status_code == 422
    assert problem_code(response) == "purpose_out_of_scope"
    assert "purpose" in response.get_json()["errors"]
    assert licenses_left(market.client, market.buyer, market.listing["id"]) == 10


@pytest.mark.parametrize("step, actor", [("delist", "merchant"), ("suspend", "operator")])
def test_listing_that_is_not_listed_cannot_be_ordered(market, step, actor):
    created(market.client.post(f"/api/v1/listings/{market.listing['id']}/{step}",
                               headers=getattr(market, actor).headers,
                               json={"reason": "Off the market"}), 200)

    response = place(market.client, market.buyer, market.listing)

    assert response.status_code == 409
    assert problem_code(response) == "listing_not_available"
    assert count(Order) == 0


def test_unknown_listing_cannot_be_ordered(market):
    response = place(market.client, market.buyer,
                     {"id": "00000000-0000-4000-8000-000000000000"})

    assert response.status_code == 404
    assert count(Order) == 0


def test_merchant_cannot_buy_its_own_listing(client):
    trader = make_member(Role.MERCHANT, Role.BUYER)
    listing = listed_product(client, trader, licenses_available=5)

    response = place(client, trader, listing)

    assert response.status_code == 409
    assert problem_code(response) == "listing_not_available"
    assert licenses_left(client, trader, listing["id"]) == 5


def test_quantity_above_the_licenses_left_is_out_of_stock_and_takes_nothing(client):
    merchant, buyer = make_member(Role.MERCHANT), make_member(Role.BUYER)
    listing = listed_product(client, merchant, licenses_available=2)

    response = place(client, buyer, listing, quantity=3)

    assert response.status_code == 409
    assert problem_code(response) == "out_of_stock"
    assert licenses_left(client, buyer, listing["id"]) == 2
    assert count(Order) == 0
    # What is left can still be bought.
    assert created(place(client, buyer, listing, quantity=2))["quantity"] == 2
    assert licenses_left(client, buyer, listing["id"]) == 0


def test_public_agencies_buy_jointly_and_the_license_names_each_beneficiary(market):
    agencies = [make_member(Role.BUYER, kind=PartyKind.PUBLIC_AGENCY) for _ in range(2)]

    order = placed(market, beneficiaries=[agency.id for agency in agencies])

    assert sorted(order["beneficiaries"]) == sorted(agency.id for agency in agencies)
    assert sorted(order["license"]["licensees"]) == sorted(agency.id for agency in agencies)


@pytest.mark.parametrize("beneficiary", ["enterprise", "unknown"])
def test_beneficiary_that_is_not_a_public_agency_is_refused(market, beneficiary):
    agency = make_member(Role.BUYER, kind=PartyKind.PUBLIC_AGENCY)
    wrong = (make_member(Role.BUYER).id if beneficiary == "enterprise"
             else "00000000-0000-4000-8000-000000000001")

    response = place(market.client, market.buyer, market.listing,
                     beneficiaries=[agency.id, wrong])

    assert response.status_code == 422
    assert "beneficiaries" in response.get_json()["errors"]
    assert count(Order) == 0
    assert licenses_left(market.client, market.buyer, market.listing["id"]) == 10


@pytest.mark.parametrize("field, value", [("status", "paid"), ("total_amount", 1),
                                          ("unit_price", 1), ("discount", 50)])
def test_unknown_or_server_owned_fields_are_refused(market, field, value):
    response = place(market.client, market.buyer, market.listing, **{field: value})

    assert response.status_code == 422
    assert field in response.get_json()["errors"]
    assert count(Order) == 0


# --- idempotency -----------------------------------------------------------------------------

def test_same_key_and_body_replays_the_first_order_and_takes_licenses_once(market):
    first = place(market.client, market.buyer, market.listing, key="order-1", quantity=2)
    again = place(market.client, market.buyer, market.listing, key="order-1", quantity=2)

    assert first.status_code == again.status_code == 201
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert again.get_json()["id"] == first.get_json()["id"]
    assert again.get_json() == first.get_json()
    assert count(Order) == 1
    assert licenses_left(market.client, market.buyer, market.listing["id"]) == 8


def test_same_key_with_another_body_is_refused_as_reused(market):
    created(place(market.client, market.buyer, market.listing, key="order-1"))

    response = place(market.client, market.buyer, market.listing, key="order-1", quantity=2)

    assert response.status_code == 409
    assert problem_code(response) == "idempotency_key_reused"
    assert count(Order) == 1
    assert licenses_left(market.client, market.buyer, market.listing["id"]) == 9


@pytest.mark.postgres_only
def test_concurrent_duplicates_with_one_key_place_one_order(app, market):
    calls = [lambda c: place(c, market.buyer, market.listing, key="dup-1", quantity=2)] * 8

    responses = run_together(app, calls)

    assert {r.status_code for r in responses} <= {201, 409}, [r.get_json() for r in responses]
    successes = [r for r in responses if r.status_code == 201]
    assert len({r.get_json()["id"] for r in successes}) == 1
    assert all(problem_code(r) == "idempotency_key_in_progress"
               for r in responses if r.status_code == 409)
    assert count(Order) == 1
    assert licenses_left(market.client, market.buyer, market.listing["id"]) == 8


# --- concurrency (PostgreSQL) ----------------------------------------------------------------

@pytest.mark.postgres_only
def test_last_license_is_sold_once_to_fifty_concurrent_buyers(app, client):
    merchant = make_member(Role.MERCHANT)
    listing = listed_product(client, merchant, licenses_available=1)
    buyers = [make_member(Role.BUYER) for _ in range(50)]

    responses = run_together(app, [lambda c, b=b: place(c, b, listing) for b in buyers])

    statuses = sorted(r.status_code for r in responses)
    assert statuses == [201] + [409] * 49, [r.get_json() for r in responses if r.status_code
                                           not in (201, 409)]
    assert {problem_code(r) for r in responses if r.status_code == 409} == {"out_of_stock"}
    assert count(Order) == 1
    assert licenses_left(client, merchant, listing["id"]) == 0


@pytest.mark.postgres_only
def test_two_hundred_concurrent_orders_on_fifty_licenses_sell_exactly_fifty(app, client):
    merchant = make_member(Role.MERCHANT)
    listing = listed_product(client, merchant, licenses_available=50)
    buyers = [make_member(Role.BUYER) for _ in range(40)]

    responses = run_together(app, [lambda c, b=b: place(c, b, listing)
                              for b in buyers for _ in range(5)])

    assert len(responses) == 200
    assert [r.status_code for r in responses].count(201) == 50
    assert {problem_code(r) for r in responses if r.status_code != 201} == {"out_of_stock"}
    assert count(Order) == 50
    assert licenses_left(client, merchant, listing["id"]) == 0


# --- state machine ---------------------------------------------------------------------------

@pytest.mark.parametrize("stage, action", [
    ("placed", "deliver"), ("paid", "accept"), ("paid", "pay"),
    ("paid", "dispute"), ("placed", "dispute"), ("placed", "accept"), ("delivered", "cancel"),
])
def test_each_transition_out_of_order_is_an_invalid_transition(market, stage, action):
    order = placed(market) if stage == "placed" else paid(market)
    if stage == "delivered":
        order = created(deliver(market.client, market.merchant, order["id"]), 200)
    m, order_id = market, order["id"]
    act = {"deliver": lambda: deliver(m.client, m.merchant, order_id),
           "accept": lambda: accept(m.client, m.buyer, order_id),
           "cancel": lambda: cancel(m.client, m.buyer, order_id),
           "pay": lambda: confirm_payment(m.client, m.operator, order_id, reference="BANK-2"),
           "dispute": lambda: dispute(m.client, m.buyer, order_id)}[action]

    response = act()

    assert response.status_code == 409, response.get_json()
    assert problem_code(response) == "invalid_transition"
    assert order_seen_by(m.client, m.buyer, order_id)["status"] == order["status"]
    assert count(Payment) == (0 if stage == "placed" else 1)


def test_buyer_cancels_an_unpaid_order_and_its_licenses_go_back(market):
    order = placed(market, quantity=4)
    assert licenses_left(market.client, market.buyer, market.listing["id"]) == 6

    cancelled = created(cancel(market.client, market.buyer, order["id"]), 200)

    assert cancelled["status"] == "cancelled"
    assert licenses_left(market.client, market.buyer, market.listing["id"]) == 10
    again = cancel(market.client, market.buyer, order["id"])
    assert again.status_code == 409
    assert licenses_left(market.client, market.buyer, market.listing["id"]) == 10


def test_only_the_orders_merchant_delivers(market):
    order = paid(market)
    other_merchant = make_member(Role.MERCHANT)

    assert deliver(market.client, other_merchant, order["id"]).status_code == 404
    assert deliver(market.client, market.buyer, order["id"]).status_code == 403
    assert order_seen_by(market.client, market.buyer, order["id"])["status"] == "paid"
    assert created(deliver(market.client, market.merchant, order["id"]), 200)["status"] == \
        "delivered"


@pytest.mark.parametrize("action, stage", [(cancel, "placed"), (accept, "delivered"),
                                           (dispute, "delivered")])
def test_only_the_orders_buyer_cancels_accepts_or_disputes(market, action, stage):
    order = placed(market) if stage == "placed" else delivered(market)
    other_buyer = make_member(Role.BUYER)
    # A regulator who also buys sees the order but is not its buyer.
    overseeing_buyer = make_member(Role.REGULATOR, Role.BUYER)

    assert action(market.client, other_buyer, order["id"]).status_code == 404
    assert action(market.client, market.merchant, order["id"]).status_code == 403
    assert action(market.client, overseeing_buyer, order["id"]).status_code == 403
    assert order_seen_by(market.client, market.buyer, order["id"])["status"] == order["status"]
    assert action(market.client, market.buyer, order["id"]).status_code in (200, 201)


# --- payment confirmation --------------------------------------------------------------------

@pytest.mark.parametrize("who", ["buyer", "merchant", "regulator"])
def test_only_an_operator_confirms_a_payment(market, who):
    order = placed(market)
    member = make_member(Role.REGULATOR) if who == "regulator" else getattr(market, who)

    response = confirm_payment(market.client, member, order["id"])

    assert response.status_code == 403
    assert order_seen_by(market.client, market.buyer, order["id"])["status"] == "pending_payment"
    assert count(Payment) == 0


def test_payment_confirmation_replayed_with_its_key_records_one_payment(market):
    order = placed(market, quantity=2)

    first = confirm_payment(market.client, market.operator, order["id"], key="pay-1")
    again = confirm_payment(market.client, market.operator, order["id"], key="pay-1")

    assert first.status_code == again.status_code == 200
    assert first.get_json()["status"] == "paid"
    assert first.get_json()["paid_amount"] == order["total_amount"] == 240_000
    assert again.get_data() == first.get_data()
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert count(Payment, Payment.order_id == uuid.UUID(order["id"])) == 1
    other_key = confirm_payment(market.client, market.operator, order["id"], key="pay-2")
    assert problem_code(other_key) == "invalid_transition"
    assert count(Payment) == 1


# --- expiry and auto-accept ------------------------------------------------------------------

def test_unpaid_order_expires_releases_licenses_and_records_a_payment_default(app, market):
    unpaid = placed(market, quantity=3)
    settled = paid(market, quantity=2)
    assert licenses_left(market.client, market.buyer, market.listing["id"]) == 5
    assert run_job(app, "expire_unpaid_orders")
    assert order_seen_by(market.client, market.buyer, unpaid["id"])["status"] == \
        "pending_payment"  # not yet due

    clock.advance(timedelta(minutes=app.config["ORDER_PAYMENT_TTL_MINUTES"] + 1))
    assert run_job(app, "expire_unpaid_orders")

    assert order_seen_by(market.client, market.buyer, unpaid["id"])["status"] == "expired"
    assert order_seen_by(market.client, market.buyer, settled["id"])["status"] == "paid"
    assert licenses_left(market.client, market.buyer, market.listing["id"]) == 8
    assert credit_event_kinds(market.client, market.buyer).count("payment_default") == 1
    assert "payment_default" not in credit_event_kinds(market.client, market.merchant)

    assert run_job(app, "expire_unpaid_orders")
    assert order_seen_by(market.client, market.buyer, unpaid["id"])["status"] == "expired"
    assert licenses_left(market.client, market.buyer, market.listing["id"]) == 8
    assert credit_event_kinds(market.client, market.buyer).count("payment_default") == 1
    assert problem_code(confirm_payment(market.client, market.operator, unpaid["id"])) == \
        "invalid_transition"


def test_delivered_order_is_accepted_automatically_after_the_acceptance_period(app, market):
    order = delivered(market)
    assert run_job(app, "auto_accept_orders")
    assert order_seen_by(market.client, market.buyer, order["id"])["status"] == "delivered"

    clock.advance(timedelta(days=app.config["ORDER_AUTO_ACCEPT_DAYS"], minutes=1))
    assert run_job(app, "auto_accept_orders")

    completed = order_seen_by(market.client, market.buyer, order["id"])
    assert completed["status"] == "completed"
    assert completed["completed_at"] is not None
    assert run_job(app, "auto_accept_orders")
    assert credit_event_kinds(market.client, market.buyer).count("on_time_trade") == 1


# --- credit ----------------------------------------------------------------------------------

def test_late_delivery_is_a_finding_against_the_merchant_and_earns_no_on_time_credit(app, market):
    order = paid(market)
    clock.advance(timedelta(days=app.config["ORDER_LATE_DELIVERY_DAYS"], hours=1))

    created(deliver(market.client, market.merchant, order["id"]), 200)

    assert credit_event_kinds(market.client, market.merchant) == ["late_delivery"]
    created(accept(market.client, market.buyer, order["id"]), 200)
    assert "on_time_trade" not in credit_event_kinds(market.client, market.merchant)
    assert "on_time_trade" not in credit_event_kinds(market.client, market.buyer)


def test_on_time_completion_earns_both_sides_an_on_time_trade(market):
    order = delivered(market)

    completed = created(accept(market.client, market.buyer, order["id"]), 200)

    assert completed["status"] == "completed"
    assert credit_event_kinds(market.client, market.merchant) == ["on_time_trade"]
    assert credit_event_kinds(market.client, market.buyer) == ["on_time_trade"]


def test_trade_restricted_buyer_cannot_place_an_order(market):
    restrict(market.client, market.operator, market.buyer)

    response = place(market.client, market.buyer, market.listing)

    assert response.status_code == 403
    assert problem_code(response) == "party_restricted"
    assert count(Order) == 0
    assert licenses_left(market.client, market.buyer, market.listing["id"]) == 10


def test_restricted_merchants_listing_is_not_available(market):
    restrict(market.client, market.operator, market.merchant)

    response = place(market.client, market.buyer, market.listing)

    assert response.status_code == 409
    assert problem_code(response) == "listing_not_available"
    assert count(Order) == 0


# --- disputes --------------------------------------------------------------------------------

def test_buyer_disputes_a_delivered_order(market):
    order, opened = disputed(market)

    assert opened["status"] == "open"
    assert opened["order_id"] == order["id"]
    assert opened["outcome"] is None
    assert order_seen_by(market.client, market.buyer, order["id"])["status"] == "disputed"


@pytest.mark.parametrize("outcome, refund_amount, status, refunded, lost", [
    ("refund_full", None, "refunded", 120_000, True),
    ("refund_full", 120_000, "refunded", 120_000, True),
    ("refund_partial", 30_000, "completed", 30_000, True),
    ("rejected", None, "completed", 0, False),
])
def test_operator_resolves_a_dispute(market, outcome, refund_amount, status, refunded, lost):
    order, opened = disputed(market)

    resolved = created(resolve(market.client, market.operator, opened["id"], key="resolve-1",
                               outcome=outcome, refund_amount=refund_amount), 200)

    assert resolved["status"] == "resolved"
    assert resolved["outcome"] == outcome
    assert resolved["refund_amount"] == refunded
    after = order_seen_by(market.client, market.buyer, order["id"])
    assert after["status"] == status
    assert after["paid_amount"] == 120_000
    assert after["refunded_amount"] == refunded
    assert count(Refund, Refund.order_id == uuid.UUID(order["id"])) == (1 if refunded else 0)
    assert ("lost_dispute" in credit_event_kinds(market.client, market.merchant)) is lost
    replayed = resolve(market.client, market.operator, opened["id"], key="resolve-1",
                       outcome=outcome, refund_amount=refund_amount)
    assert replayed.headers.get("Idempotent-Replayed") == "true"
    assert replayed.get_json() == resolved


@pytest.mark.parametrize("outcome, refund_amount", [
    ("refund_partial", 120_000), ("refund_partial", 120_001), ("refund_full", 50_000),
    ("refund_full", 500_000),
])
def test_refund_beyond_what_was_paid_is_refused_and_changes_nothing(market, outcome,
                                                                    refund_amount):
    order, opened = disputed(market)

    response = resolve(market.client, market.operator, opened["id"], key="resolve-1",
                       outcome=outcome, refund_amount=refund_amount)

    assert response.status_code == 409
    assert problem_code(response) == "refund_exceeds_payment"
    after = order_seen_by(market.client, market.buyer, order["id"])
    assert after["status"] == "disputed"
    assert after["refunded_amount"] == 0
    assert count(Refund) == 0
    assert "lost_dispute" not in credit_event_kinds(market.client, market.merchant)
    # The refusal did not use up the key: a valid resolution with it goes through.
    fixed = resolve(market.client, market.operator, opened["id"], key="resolve-1",
                    outcome="rejected")
    assert created(fixed, 200)["outcome"] == "rejected"


@pytest.mark.parametrize("first, second", [
    ({"outcome": "refund_full"}, {"outcome": "refund_full"}),
    ({"outcome": "refund_partial", "refund_amount": 10_000},
     {"outcome": "refund_partial", "refund_amount": 10_000}),
    ({"outcome": "rejected"}, {"outcome": "refund_partial", "refund_amount": 10_000}),
])
def test_dispute_is_resolved_only_once(market, first, second):
    order, opened = disputed(market)
    done = created(resolve(market.client, market.operator, opened["id"], key="r-1", **first), 200)

    response = resolve(market.client, market.operator, opened["id"], key="r-2", **second)

    assert response.status_code == 409
    after = order_seen_by(market.client, market.buyer, order["id"])
    assert after["refunded_amount"] == done["refund_amount"]
    assert count(Refund) == (1 if done["refund_amount"] else 0)


@pytest.mark.postgres_only
def test_two_concurrent_resolutions_of_one_dispute_let_exactly_one_succeed(app, market):
    order, opened = disputed(market)
    other_operator = make_member(Role.OPERATOR)
    bodies = [(market.operator, {"outcome": "refund_full"}),
              (other_operator, {"outcome": "refund_partial", "refund_amount": 60_000})]

    responses = run_together(app, [
        lambda c, who=who, body=body: resolve(c, who, opened["id"], key="r-1", **body)
        for who, body in bodies])

    assert sorted(r.status_code for r in responses) == [200, 409], \
        [r.get_json() for r in responses]
    winner = next(r.get_json() for r in responses if r.status_code == 200)
    after = order_seen_by(market.client, market.buyer, order["id"])
    assert after["refunded_amount"] == winner["refund_amount"]
    assert count(Refund) == 1
    assert credit_event_kinds(market.client, market.merchant).count("lost_dispute") == 1


# --- visibility ------------------------------------------------------------------------------

def test_order_is_visible_to_its_parties_operators_and_regulators_only(market):
    order = placed(market)
    regulator = make_member(Role.REGULATOR)

    for member in (market.buyer, market.merchant, market.operator, regulator):
        assert order_seen_by(market.client, member, order["id"])["id"] == order["id"]
    for stranger in (make_member(Role.BUYER), make_member(Role.MERCHANT)):
        response = market.client.get(f"{ORDERS}/{order['id']}", headers=stranger.headers)
        assert response.status_code == 404
        assert problem_code(response) == "order_not_found"


def listed_ids(client: FlaskClient, member: Member, **query: Any) -> tuple[set[str], dict]:
    response = client.get(ORDERS, headers=member.headers, query_string=query)
    assert response.status_code == 200, response.get_json()
    return {order["id"] for order in response.get_json()}, json.loads(
        response.headers["X-Pagination"])


def test_order_list_shows_only_ones_own_orders_and_all_to_overseers(market):
    other_merchant = make_member(Role.MERCHANT)
    other_listing = listed_product(market.client, other_merchant, licenses_available=5)
    other_buyer = make_member(Role.BUYER)
    mine = {placed(market)["id"], placed(market)["id"]}
    theirs = created(place(market.client, other_buyer, other_listing))["id"]

    ids, pagination = listed_ids(market.client, market.buyer)
    assert ids == mine
    assert pagination["total"] == 2
    assert listed_ids(market.client, market.merchant)[0] == mine
    assert listed_ids(market.client, other_buyer)[0] == {theirs}
    assert listed_ids(market.client, other_merchant)[0] == {theirs}
    nothing, pagination = listed_ids(market.client, make_member(Role.BUYER))
    assert nothing == set()
    assert pagination["total"] == 0
    for overseer in (market.operator, make_member(Role.REGULATOR)):
        assert listed_ids(market.client, overseer)[0] == mine | {theirs}

    first_page, pagination = listed_ids(market.client, market.operator, page=1, page_size=2)
    assert len(first_page) == 2
    assert (pagination["total"], pagination["total_pages"], pagination["page"]) == (3, 2, 1)
    second_page, _ = listed_ids(market.client, market.operator, page=2, page_size=2)
    assert first_page | second_page == mine | {theirs}
