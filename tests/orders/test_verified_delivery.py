"""Delivery with an artifact the exchange holds: its SHA-256 is the delivery checksum."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select

from app.audit import AuditEntry
from app.extensions import db
from app.parties.models import Role
from tests.factories import make_member
from tests.orders.factories import Market, listed_product, order_body
from tests.storage import Store, sha256, upload
from tests.support import ok, problem

API = "/api/v1"
DATA = b"segment_id,vehicles\nS00001,412\nS00002,97\n"


def paid_order(m: Market, listing: dict[str, Any]) -> dict[str, Any]:
    order = ok(m.client.post(f"{API}/orders", json=order_body(listing),
                             headers={**m.buyer.headers, "Idempotency-Key": uuid.uuid4().hex}),
               201)
    ok(m.client.post(f"{API}/orders/{order['id']}/payments/confirm",
                     json={"reference": "BANK-1"},
                     headers={**m.operator.headers, "Idempotency-Key": uuid.uuid4().hex}))
    return order


def deliver(m: Market, order_id: str, **body: Any) -> Any:
    return m.client.post(f"{API}/orders/{order_id}/deliver", json=body,
                         headers=m.merchant.headers)


@pytest.fixture
def sold(market: Market, client: FlaskClient,
         file_store: Store) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """A listing, a paid order of it, and an artifact of it."""
    listing = listed_product(client, market.merchant)
    artifact = ok(upload(client, market.merchant, listing["id"], DATA), 201)
    return listing, paid_order(market, listing), artifact


def test_delivery_with_an_artifact_is_verified_by_its_sha256(market: Market, sold: Any) -> None:
    _, order, artifact = sold

    delivered = ok(deliver(market, order["id"], artifact_id=artifact["id"]))

    assert delivered["status"] == "delivered"
    assert (delivered["artifact_id"], delivered["verified_delivery"]) == (artifact["id"], True)
    assert delivered["checksum"] == f"sha256:{sha256(DATA)}"
    assert delivered["delivery_ref"] == f"artifact:{artifact['id']}"
    seen = ok(market.client.get(f"{API}/orders/{order['id']}", headers=market.buyer.headers))
    assert (seen["artifact_id"], seen["verified_delivery"]) == (artifact["id"], True)


@pytest.mark.parametrize("stated", ["sha256:{}", "{}", "SHA256:{upper}", " {} "])
def test_a_checksum_stated_with_the_artifact_must_be_its_sha256(market: Market, sold: Any,
                                                                 stated: str) -> None:
    _, order, artifact = sold
    checksum = stated.format(artifact["sha256"], upper=artifact["sha256"].upper())

    delivered = ok(deliver(market, order["id"], artifact_id=artifact["id"],
                           checksum=checksum))

    assert delivered["verified_delivery"] is True
    assert delivered["checksum"] == f"sha256:{artifact['sha256']}"


def entries() -> int:
    return db.session.scalar(select(func.count()).select_from(AuditEntry)) or 0


def test_a_checksum_that_is_not_the_artifacts_is_refused_and_nothing_changes(
        market: Market, sold: Any) -> None:
    _, order, artifact = sold
    before = entries()

    refused = deliver(market, order["id"], artifact_id=artifact["id"],
                      checksum=f"sha256:{sha256(b'tampered')}")

    body = problem(refused, 422, "checksum_mismatch")
    assert body["expected"] == f"sha256:{artifact['sha256']}"
    assert "checksum" in body["errors"]
    seen = ok(market.client.get(f"{API}/orders/{order['id']}", headers=market.buyer.headers))
    assert (seen["status"], seen["artifact_id"], seen["checksum"]) == ("paid", None, None)
    assert entries() == before


def test_an_artifact_of_another_listing_or_none_at_all_is_refused(
        market: Market, client: FlaskClient, sold: Any) -> None:
    _, order, _ = sold
    other = listed_product(client, market.merchant)
    foreign = ok(upload(client, market.merchant, other["id"], DATA), 201)
    stranger = make_member(Role.MERCHANT)
    strangers_listing = listed_product(client, stranger)
    strangers = ok(upload(client, stranger, strangers_listing["id"], DATA), 201)

    for artifact_id in (foreign["id"], strangers["id"], str(uuid.uuid4())):
        refused = deliver(market, order["id"], artifact_id=artifact_id)
        assert "artifact_id" in problem(refused, 422, "unknown_artifact")["errors"]
    seen = ok(market.client.get(f"{API}/orders/{order['id']}", headers=market.buyer.headers))
    assert seen["status"] == "paid"


def test_data_delivered_elsewhere_is_recorded_as_unverified(market: Market,
                                                            sold: Any) -> None:
    _, order, _ = sold

    delivered = ok(deliver(market, order["id"], delivery_ref="sftp://merchant/flows.csv",
                           checksum="md5:0f343b0931126a20f133d67c2b018a3b"))

    assert (delivered["verified_delivery"], delivered["artifact_id"]) == (False, None)
    assert delivered["checksum"] == "md5:0f343b0931126a20f133d67c2b018a3b"


@pytest.mark.parametrize("body, field", [
    ({}, "_schema"),
    ({"checksum": "sha256:00"}, "_schema"),
    ({"delivery_ref": "sftp://merchant/flows.csv"}, "checksum"),
    ({"artifact_id": "ARTIFACT", "delivery_ref": "sftp://merchant/flows.csv",
      "checksum": "sha256:00"}, "_schema"),
    ({"artifact_id": "ARTIFACT", "verified_delivery": True}, "verified_delivery"),
])
def test_a_delivery_is_either_an_artifact_or_a_reference_with_its_checksum(
        market: Market, sold: Any, body: dict[str, Any], field: str) -> None:
    _, order, artifact = sold
    body = {name: artifact["id"] if value == "ARTIFACT" else value
            for name, value in body.items()}

    refused = deliver(market, order["id"], **body)

    assert field in problem(refused, 422)["errors"]


def test_an_order_not_yet_paid_is_not_delivered_even_with_an_artifact(
        market: Market, client: FlaskClient, file_store: Store) -> None:
    listing = listed_product(client, market.merchant)
    artifact = ok(upload(client, market.merchant, listing["id"], DATA), 201)
    order = ok(client.post(f"{API}/orders", json=order_body(listing),
                           headers={**market.buyer.headers, "Idempotency-Key": "k-1"}), 201)

    problem(deliver(market, order["id"], artifact_id=artifact["id"]), 409, "invalid_transition")
