"""The whole trade with the offline provider: order, pay, deliver, accept."""

from __future__ import annotations

from app.parties.models import Role
from tests.factories import make_member
from tests.orders.factories import listed_product, order_body


def test_an_order_is_paid_by_transfer_delivered_and_accepted(client):
    merchant = make_member(Role.MERCHANT)
    buyer = make_member(Role.BUYER)
    operator = make_member(Role.OPERATOR)
    listing = listed_product(client, merchant, licenses_available=3)
    placed = client.post("/api/v1/orders", json=order_body(listing, quantity=2),
                         headers={**buyer.headers, "Idempotency-Key": "order-1"})
    assert placed.status_code == 201, placed.json
    order = placed.json
    assert order["status"] == "pending_payment"
    assert order["total_amount"] == 2 * listing["unit_price"]
    assert order["payment"]["provider"] == "offline"
    assert order["license"]["purposes"] == listing["usage_scope"]["purposes"]
    left = client.get(f"/api/v1/listings/{listing['id']}", headers=buyer.headers).json
    assert left["licenses_available"] == 1

    paid = client.post(f"/api/v1/orders/{order['id']}/payments/confirm",
                       json={"reference": "BANK-778"},
                       headers={**operator.headers, "Idempotency-Key": "pay-1"})
    assert paid.status_code == 200, paid.json
    assert paid.json["status"] == "paid"
    delivered = client.post(f"/api/v1/orders/{order['id']}/deliver", headers=merchant.headers,
                            json={"delivery_ref": "s3://bucket/file", "checksum": "sha256:ab"})
    assert delivered.json["status"] == "delivered", delivered.json
    accepted = client.post(f"/api/v1/orders/{order['id']}/accept", headers=buyer.headers)
    assert accepted.json["status"] == "completed", accepted.json
    other = make_member(Role.BUYER)
    assert client.get(f"/api/v1/orders/{order['id']}", headers=other.headers).status_code == 404


def test_only_a_buyer_with_a_completed_order_reports_on_quality(client):
    merchant = make_member(Role.MERCHANT)
    buyer = make_member(Role.BUYER)
    operator = make_member(Role.OPERATOR)
    listing = listed_product(client, merchant)
    report = {"score": 4, "issue": None}
    url = f"/api/v1/listings/{listing['id']}/quality-reports"

    early = client.post(url, json=report, headers=buyer.headers)
    assert early.status_code == 403
    assert early.json["code"] == "no_completed_order"

    order = client.post("/api/v1/orders", json=order_body(listing), headers=buyer.headers).json
    client.post(f"/api/v1/orders/{order['id']}/payments/confirm", json={"reference": "B-1"},
                headers=operator.headers)
    client.post(f"/api/v1/orders/{order['id']}/deliver", headers=merchant.headers,
                json={"delivery_ref": "grant-1", "checksum": "sha256:00"})
    still_delivered = client.post(url, json=report, headers=buyer.headers)
    assert still_delivered.status_code == 403
    client.post(f"/api/v1/orders/{order['id']}/accept", headers=buyer.headers)

    reported = client.post(url, json=report, headers=buyer.headers)
    assert reported.status_code == 201, reported.json
    quality = client.get(f"/api/v1/listings/{listing['id']}", headers=buyer.headers).json
    assert quality["quality"] == {"count": 1, "average": 4.0}
