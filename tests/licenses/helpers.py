"""Trades that end in a licence, made through the API, for the licences tests."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from app.parties.models import PartyKind, Role
from tests.factories import Member, make_member
from tests.orders.factories import Market, listed_product
from tests.support import ok

API = "/api/v1"
PER_CALL = {"price_model": "per_call", "unit_price": 100}
DOWNLOAD = {"delivery_mode": "download", "price_model": "one_time"}


def keyed(member: Member, key: str | None = None) -> dict[str, str]:
    """The member's headers with an Idempotency-Key (a fresh one unless given)."""
    return {**member.headers, "Idempotency-Key": key or uuid.uuid4().hex}


def agency() -> Member:
    """A public agency that buys (one of a joint purchase's beneficiaries)."""
    return make_member(Role.BUYER, kind=PartyKind.PUBLIC_AGENCY)


@dataclass
class Licensing:
    """The market's merchant sells, its buyer buys, its operator confirms payments."""

    market: Market

    @property
    def client(self) -> FlaskClient:
        return self.market.client

    def listing(self, **overrides: Any) -> dict[str, Any]:
        """A listed product (an API subscription for 365 days unless overridden)."""
        overrides.setdefault("licenses_available", None)
        return listed_product(self.client, self.market.merchant, **overrides)

    def order(self, listing: dict[str, Any], buyer: Member | None = None,
              **body: Any) -> dict[str, Any]:
        buyer = buyer or self.market.buyer
        return ok(self.client.post(f"{API}/orders", headers=keyed(buyer), json={
            "listing_id": listing["id"], "quantity": 1, "purpose": "research", **body}), 201)

    def pay(self, order: dict[str, Any]) -> dict[str, Any]:
        return ok(self.client.post(f"{API}/orders/{order['id']}/payments/confirm",
                                   headers=keyed(self.market.operator),
                                   json={"reference": f"BANK-{order['id'][:8]}"}))

    def deliver(self, order: dict[str, Any]) -> dict[str, Any]:
        return ok(self.client.post(f"{API}/orders/{order['id']}/deliver",
                                   headers=self.market.merchant.headers,
                                   json={"delivery_ref": "api-credential:flows/1",
                                         "checksum": "sha256:00"}))

    def accept(self, order: dict[str, Any], buyer: Member | None = None) -> dict[str, Any]:
        buyer = buyer or self.market.buyer
        return ok(self.client.post(f"{API}/orders/{order['id']}/accept", headers=buyer.headers))

    def cancel(self, order: dict[str, Any]) -> dict[str, Any]:
        return ok(self.client.post(f"{API}/orders/{order['id']}/cancel",
                                   headers=self.market.buyer.headers))

    def resolve_dispute(self, order: dict[str, Any], outcome: str,
                        refund_amount: int | None = None) -> dict[str, Any]:
        """The buyer disputes the delivered order, an operator decides `outcome`."""
        dispute = ok(self.client.post(f"{API}/orders/{order['id']}/disputes",
                                      headers=self.market.buyer.headers,
                                      json={"reason": "Rows are missing"}), 201)
        return ok(self.client.post(f"{API}/disputes/{dispute['id']}/resolve",
                                   headers=keyed(self.market.operator),
                                   json={"outcome": outcome, "refund_amount": refund_amount,
                                         "note": None}))

    def delivered(self, listing: dict[str, Any] | None = None, buyer: Member | None = None,
                  **body: Any) -> tuple[dict[str, Any], dict[str, Any]]:
        """An order paid and delivered, and its (active) licence."""
        order = self.order(listing or self.listing(), buyer, **body)
        self.pay(order)
        delivered = self.deliver(order)
        return delivered, self.license(order["license_id"])

    def license(self, license_id: str, member: Member | None = None) -> dict[str, Any]:
        return ok(self.get(license_id, member))

    def get(self, license_id: str, member: Member | None = None) -> TestResponse:
        member = member or self.market.operator
        return self.client.get(f"{API}/licenses/{license_id}", headers=member.headers)

    def post(self, license_id: str, action: str, member: Member,
             json: Any = None, **headers: str) -> TestResponse:
        return self.client.post(f"{API}/licenses/{license_id}/{action}", json=json,
                                headers={**member.headers, **headers})
