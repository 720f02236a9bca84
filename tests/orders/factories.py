"""Listed products and orders for the orders tests."""

from __future__ import annotations

from typing import Any

from flask.testing import FlaskClient

from app.parties.models import Role
from tests.factories import Member, make_member
from tests.listings.factories import listing_body


def listed_product(client: FlaskClient, merchant: Member, **overrides: Any) -> dict[str, Any]:
    """A listing taken through review to `listed`."""
    created = client.post("/api/v1/listings", json=listing_body(merchant, **overrides),
                          headers=merchant.headers)
    assert created.status_code == 201, created.json
    listing_id = created.json["id"]
    submitted = client.post(f"/api/v1/listings/{listing_id}/submit", headers=merchant.headers)
    assert submitted.status_code == 200, submitted.json
    if submitted.json["status"] != "listed":
        operator = make_member(Role.OPERATOR)
        reviewed = client.post(f"/api/v1/listings/{listing_id}/review", headers=operator.headers,
                               json={"decision": "approve", "reason": "Checked"})
        assert reviewed.json["status"] == "listed", reviewed.json
        return reviewed.json
    return submitted.json


def order_body(listing: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    return {"listing_id": listing["id"], "quantity": 1, "purpose": "research", **overrides}
