"""Listed products and orders for the orders tests."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any, Self

from flask import Flask
from flask.testing import FlaskClient

from app import clock
from app.db import unit_of_work
from app.parties.models import Role
from listings.models import Listing
from orders.models import Order, OrderStatus
from tests.factories import Member, make_member
from tests.listings.factories import accept_consents, listing_body


def listed_product(client: FlaskClient, merchant: Member, **overrides: Any) -> dict[str, Any]:
    """A listing taken through review to `listed` (the parties it names consenting)."""
    created = client.post("/api/v1/listings", json=listing_body(merchant, **overrides),
                          headers=merchant.headers)
    assert created.status_code == 201, created.json
    listing_id = created.get_json()["id"]
    submitted = client.post(f"/api/v1/listings/{listing_id}/submit", headers=merchant.headers)
    if submitted.status_code == 409 and submitted.get_json()["code"] == "consent_pending":
        # The parties the listing names agree, and the merchant submits again.
        accept_consents(client, listing_id)
        submitted = client.post(f"/api/v1/listings/{listing_id}/submit",
                                headers=merchant.headers)
    assert submitted.status_code == 200, submitted.json
    if submitted.get_json()["status"] != "listed":
        operator = make_member(Role.OPERATOR)
        reviewed = client.post(f"/api/v1/listings/{listing_id}/review", headers=operator.headers,
                               json={"decision": "approve", "reason": "Checked"})
        assert reviewed.get_json()["status"] == "listed", reviewed.json
        return reviewed.get_json()
    return submitted.get_json()


def order_body(listing: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    return {"listing_id": listing["id"], "quantity": 1, "purpose": "research", **overrides}


def give_completed_order(client: FlaskClient, buyer_id: str, listing_id: str) -> None:
    """Record a completed order of the listing for the buyer, straight in the database: the
    precondition of a quality report, for tests about something else (safe in threads)."""
    with client.application.app_context(), unit_of_work() as session:
        listing = session.get(Listing, uuid.UUID(listing_id))
        if listing is None:
            return  # the report itself answers 404
        now = clock.now()
        session.add(Order(
            buyer_id=uuid.UUID(buyer_id), merchant_id=listing.merchant_id, listing_id=listing.id,
            category=listing.category, quantity=1, purpose="research", beneficiaries=[],
            unit_price=listing.unit_price,
            total_amount=listing.unit_price, currency=listing.currency, license={},
            status=OrderStatus.COMPLETED, payment_provider="offline",
            paid_amount=listing.unit_price, expires_at=now, paid_at=now, delivered_at=now,
            completed_at=now))


@dataclass
class Market:
    """A merchant, a buyer and the overseers; listings and the rest are made per test."""

    app: Flask
    client: FlaskClient
    merchant: Member
    buyer: Member
    operator: Member
    regulator: Member

    @classmethod
    def open(cls, app: Flask, client: FlaskClient) -> Market:
        return cls(app, client, make_member(Role.MERCHANT), make_member(Role.BUYER),
                   make_member(Role.OPERATOR), make_member(Role.REGULATOR))


@dataclass
class ProductMarket:
    """A merchant with one listed product of ten licenses, a buyer and an operator."""

    client: FlaskClient
    merchant: Member
    buyer: Member
    operator: Member
    listing: dict[str, Any]

    @classmethod
    def open(cls, client: FlaskClient) -> Self:
        merchant = make_member(Role.MERCHANT)
        return cls(client, merchant, make_member(Role.BUYER), make_member(Role.OPERATOR),
                   listed_product(client, merchant, licenses_available=10))
