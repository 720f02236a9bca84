"""Abuse limits: 429 problem+json with Retry-After for authentication failures,
registration, order and demand creation and disputes; memory storage here (Redis when
REDIS_URL is set: one test runs against the Redis on 127.0.0.1 when it answers)."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient

from app import clock
from app.extensions import db
from app.limits import limiter
from app.parties.models import Role
from tests.conftest import empty_tables, make_app
from tests.factories import PartyBodyFactory, make_member
from tests.orders.factories import listed_product, order_body

LIMITS = {"RATE_LIMITS_ENABLED": True, "RATE_LIMIT_AUTH_FAILURES": "3 per minute",
          "RATE_LIMIT_REGISTRATION": "2 per hour", "RATE_LIMIT_TRADING": "3 per minute",
          "RATE_LIMIT_DISPUTES": "1 per hour"}


@pytest.fixture
def limited_app(migrated_app: Flask, backend: str) -> Iterator[Flask]:
    app = make_app(backend, RATELIMIT_STORAGE_URI=f"memory://{uuid.uuid4().hex}", **LIMITS)
    with app.app_context():
        limiter.reset()
        yield app
        db.session.remove()
        db.engine.dispose()
    empty_tables(migrated_app)
    clock.reset()


@pytest.fixture
def client(limited_app: Flask) -> FlaskClient:
    return limited_app.test_client()


def assert_rate_limited(response) -> None:  # type: ignore[no-untyped-def]
    assert response.status_code == 429, response.json
    assert response.mimetype == "application/problem+json"
    assert response.json["code"] == "rate_limited"
    assert int(response.headers["Retry-After"]) >= 1


def test_repeated_bad_keys_from_one_address_are_slowed_down(client):
    member = make_member(Role.BUYER)
    for _ in range(3):
        assert client.get("/api/v1/parties/me",
                          headers={"Authorization": "Bearer dx_wrong"}).status_code == 401
    assert_rate_limited(client.get("/api/v1/parties/me",
                                   headers={"Authorization": "Bearer dx_wrong"}))
    # Even a right key from that address waits: the guessing is what is limited.
    assert_rate_limited(client.get("/api/v1/parties/me", headers=member.headers))


def test_good_keys_are_never_counted_as_failures(client):
    member = make_member(Role.BUYER)
    for _ in range(10):
        assert client.get("/api/v1/parties/me", headers=member.headers).status_code == 200


def test_registration_is_limited_per_address(client):
    def register():  # type: ignore[no-untyped-def]
        body = PartyBodyFactory()
        return client.post("/api/v1/parties", json={**body, "roles": ["buyer"]})

    assert register().status_code == 201
    assert register().status_code == 201
    assert_rate_limited(register())


def test_order_creation_is_limited_per_key(client):
    merchant, buyer, other = (make_member(Role.MERCHANT), make_member(Role.BUYER),
                              make_member(Role.BUYER))
    listing = listed_product(client, merchant, licenses_available=None)
    for _ in range(3):
        assert client.post("/api/v1/orders", json=order_body(listing),
                           headers=buyer.headers).status_code == 201
    assert_rate_limited(client.post("/api/v1/orders", json=order_body(listing),
                                    headers=buyer.headers))
    # Another buyer has its own allowance.
    assert client.post("/api/v1/orders", json=order_body(listing),
                       headers=other.headers).status_code == 201


def test_demand_creation_is_limited_per_key(client):
    buyer = make_member(Role.BUYER)
    body = {"category": "transport", "purpose": "research", "max_unit_price": 1}
    for _ in range(3):
        assert client.post("/api/v1/demands", json=body, headers=buyer.headers).status_code == 201
    assert_rate_limited(client.post("/api/v1/demands", json=body, headers=buyer.headers))


def test_disputes_are_limited_per_key(client):
    buyer = make_member(Role.BUYER)
    unknown = f"/api/v1/orders/{uuid.uuid4()}/disputes"
    assert client.post(unknown, json={"reason": "x"}, headers=buyer.headers).status_code == 404
    assert_rate_limited(client.post(unknown, json={"reason": "x"}, headers=buyer.headers))


def test_limits_are_off_where_configured_off(app, client):
    del client
    plain = app.test_client()
    for _ in range(5):
        assert plain.get("/api/v1/parties/me",
                         headers={"Authorization": "Bearer dx_wrong"}).status_code == 401


def _redis_answers() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=0.5):
            return True
    except OSError:
        return False


# CI (REQUIRE_POSTGRES=1) requires every service, Redis included: there it fails, never skips.
@pytest.mark.skipif(not _redis_answers() and os.environ.get("REQUIRE_POSTGRES") != "1",
                    reason="no Redis on 127.0.0.1:6379")
def test_counters_are_shared_through_redis_when_configured(migrated_app, backend):
    """Two applications (two web hosts) on one Redis count one address's failures together."""
    prefix = uuid.uuid4().hex
    hosts = [make_app(backend, REDIS_URL="redis://127.0.0.1:6379/15", **LIMITS,
                      RATELIMIT_KEY_PREFIX=prefix) for _ in range(2)]
    answers = []
    for n in range(4):
        with hosts[n % 2].app_context():
            answers.append(hosts[n % 2].test_client().get(
                "/api/v1/parties/me", headers={"Authorization": "Bearer dx_wrong"}).status_code)
    assert answers == [401, 401, 401, 429]
    for host in hosts:
        with host.app_context():
            db.engine.dispose()
