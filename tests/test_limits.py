"""Abuse limits: 429 problem+json with Retry-After for failed authentications, registration,
key issuance, order and demand creation and disputes. Every test runs with the counters in
memory and in Redis (127.0.0.1:6379, as several web hosts share them)."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from flask.views import MethodView
from sqlalchemy.exc import OperationalError

from app import clock
from app.api import Blueprint
from app.extensions import db
from app.limits import limit, limiter
from app.parties.models import Role
from tests.conftest import empty_tables, make_app
from tests.factories import PartyBodyFactory, bearer, make_member
from tests.orders.factories import listed_product, order_body

LIMITS = {"RATE_LIMITS_ENABLED": True, "RATE_LIMIT_AUTH_FAILURES": "3 per minute",
          "RATE_LIMIT_REGISTRATION": "2 per hour", "RATE_LIMIT_TRADING": "3 per minute",
          "RATE_LIMIT_DISPUTES": "1 per hour", "RATE_LIMIT_KEY_ISSUANCE": "2 per hour"}
REDIS_URL = "redis://127.0.0.1:6379/15"
ME = "/api/v1/parties/me"
PARTIES = "/api/v1/parties"
BLACKLIST = "/api/v1/credit/blacklist"
WRONG = bearer("dx_wrong")


def _redis_answers() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=0.5):
            return True
    except OSError:
        return False


@pytest.fixture(params=["memory", "redis"])
def storage(request: pytest.FixtureRequest) -> dict[str, Any]:
    """Where the counters live: this process's memory, or Redis under a prefix of its own."""
    if request.param == "memory":
        return {"RATELIMIT_STORAGE_URI": f"memory://{uuid.uuid4().hex}"}
    if not _redis_answers():
        # CI (REQUIRE_POSTGRES=1) requires every service, Redis included: there it fails.
        if os.environ.get("REQUIRE_POSTGRES") == "1":
            pytest.fail("no Redis on 127.0.0.1:6379")
        pytest.skip("no Redis on 127.0.0.1:6379")
    return {"REDIS_URL": REDIS_URL, "RATE_LIMIT_KEY_PREFIX": uuid.uuid4().hex}


@pytest.fixture
def limit_overrides() -> dict[str, Any]:
    """Settings a test adds to LIMITS (parametrize it to change them)."""
    return {}


def limited(backend: str, storage: dict[str, Any], **overrides: Any) -> Flask:
    app = make_app(backend, **LIMITS, **storage, **overrides)
    if "RATELIMIT_STORAGE_URI" in storage:  # a Redis prefix of its own needs no reset
        with app.app_context():
            limiter.reset()
    return app


@pytest.fixture
def limited_app(migrated_app: Flask, backend: str, storage: dict[str, Any],
                limit_overrides: dict[str, Any]) -> Iterator[Flask]:
    app = limited(backend, storage, **limit_overrides)
    with app.app_context():
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


def guess_until_refused(client: FlaskClient, **request: Any) -> None:
    """Wrong keys from one address: 401 up to the limit, 429 beyond it."""
    for n in range(3):
        assert client.get(ME, headers=bearer(f"dx_guess{n}"), **request).status_code == 401
    assert_rate_limited(client.get(ME, headers=WRONG, **request))


# Failed authentications


def test_wrong_keys_are_refused_with_429_once_an_address_is_over_the_limit(client):
    make_member(Role.BUYER)
    guess_until_refused(client)
    for n in range(3):
        assert_rate_limited(client.get(ME, headers=bearer(f"dx_another{n}")))
    assert_rate_limited(client.get(ME, headers={"Authorization": "Basic dXNlcjpwYXNz"}))


def test_valid_keys_and_anonymous_reads_pass_at_an_address_over_the_limit(client):
    """Clients behind one address (a NAT, an office) are never locked out by a guesser."""
    member = make_member(Role.BUYER)
    guess_until_refused(client)

    assert client.get(ME, headers=member.headers).status_code == 200
    assert client.get(BLACKLIST).status_code == 200
    assert client.get(BLACKLIST, headers=member.headers).status_code == 200
    assert_rate_limited(client.get(ME, headers=WRONG))


def test_good_keys_are_never_counted_as_failures(client):
    member = make_member(Role.BUYER)
    for _ in range(10):
        assert client.get(ME, headers=member.headers).status_code == 200
    assert client.get(ME, headers=WRONG).status_code == 401


def test_failures_are_counted_per_address(client):
    guess_until_refused(client)
    assert client.get(ME, headers=WRONG,
                      environ_base={"REMOTE_ADDR": "198.51.100.2"}).status_code == 401


def test_x_forwarded_for_is_ignored_without_trusted_proxies(client):
    """By default (TRUSTED_PROXY_HOPS=0) a client cannot pick its address with a header."""
    for n in range(3):
        assert client.get(ME, headers={**WRONG, "X-Forwarded-For": f"198.51.100.{n}"}
                          ).status_code == 401
    assert_rate_limited(client.get(ME, headers={**WRONG, "X-Forwarded-For": "203.0.113.9"}))


@pytest.mark.parametrize("limit_overrides", [{"TRUSTED_PROXY_HOPS": 1}])
def test_behind_a_trusted_proxy_each_client_is_counted_by_its_forwarded_address(client):
    # The proxy appends the address it saw; what a client wrote before it changes nothing.
    guesser = [{"X-Forwarded-For": f"10.0.0.{n}, 198.51.100.7"} for n in range(4)]
    for headers in guesser[:3]:
        assert client.get(ME, headers={**WRONG, **headers}).status_code == 401
    assert_rate_limited(client.get(ME, headers={**WRONG, **guesser[3]}))

    neighbour = {"X-Forwarded-For": "203.0.113.5"}
    assert client.get(ME, headers={**WRONG, **neighbour}).status_code == 401


@pytest.mark.parametrize("limit_overrides", [{"METRICS_TOKEN": "metrics-" + "x" * 32}])
def test_wrong_metrics_tokens_count_as_failed_authentications(client, limit_overrides):
    for n in range(3):
        assert client.get("/metrics", headers=bearer(f"guess{n}")).status_code == 401
    assert_rate_limited(client.get("/metrics", headers=bearer("guess")))
    scrape = client.get("/metrics", headers=bearer(limit_overrides["METRICS_TOKEN"]))
    assert scrape.status_code == 200


# Registration, key issuance and trading: per address and per party


def register(client: FlaskClient, **request: Any):  # type: ignore[no-untyped-def]
    return client.post(PARTIES, json={**PartyBodyFactory(), "roles": ["buyer"]}, **request)


def test_registration_is_limited_per_address(client):
    assert register(client).status_code == 201
    assert register(client).status_code == 201
    assert_rate_limited(register(client))
    assert register(client, environ_base={"REMOTE_ADDR": "198.51.100.2"}).status_code == 201


def test_registering_with_the_previous_registrations_key_does_not_renew_the_allowance(client):
    first = register(client)
    assert first.status_code == 201
    second = register(client, headers=bearer(first.json["api_key"]))
    assert second.status_code == 201
    assert_rate_limited(register(client, headers=bearer(second.json["api_key"])))


def test_key_issuance_is_limited_per_party(client):
    member = make_member(Role.MERCHANT)
    issue = f"{PARTIES}/{member.id}/api-keys"
    first = client.post(issue, headers=member.headers)
    assert first.status_code == 201
    assert client.post(issue, headers=bearer(first.json["api_key"])).status_code == 201
    assert_rate_limited(client.post(issue, headers=member.headers))


def test_order_creation_is_limited_per_party(client):
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


def test_a_new_key_does_not_renew_a_partys_trading_budget(client):
    merchant, buyer = make_member(Role.MERCHANT), make_member(Role.BUYER)
    listing = listed_product(client, merchant, licenses_available=None)
    for _ in range(3):
        assert client.post("/api/v1/orders", json=order_body(listing),
                           headers=buyer.headers).status_code == 201
    fresh = client.post(f"{PARTIES}/{buyer.id}/api-keys", headers=buyer.headers)
    assert fresh.status_code == 201

    assert_rate_limited(client.post("/api/v1/orders", json=order_body(listing),
                                    headers=bearer(fresh.json["api_key"])))


def test_demand_creation_is_limited_per_party(client):
    buyer = make_member(Role.BUYER)
    body = {"category": "transport", "purpose": "research", "max_unit_price": 1}
    for _ in range(3):
        assert client.post("/api/v1/demands", json=body, headers=buyer.headers).status_code == 201
    assert_rate_limited(client.post("/api/v1/demands", json=body, headers=buyer.headers))


def test_disputes_are_limited_per_party(client):
    buyer = make_member(Role.BUYER)
    unknown = f"/api/v1/orders/{uuid.uuid4()}/disputes"
    assert client.post(unknown, json={"reason": "x"}, headers=buyer.headers).status_code == 404
    assert_rate_limited(client.post(unknown, json={"reason": "x"}, headers=buyer.headers))


def test_a_wrong_key_on_a_limited_route_is_401_and_spends_no_allowance(client):
    buyer = make_member(Role.BUYER)
    body = {"category": "transport", "purpose": "research", "max_unit_price": 1}
    for _ in range(3):
        assert client.post("/api/v1/demands", json=body, headers=WRONG).status_code == 401
    for _ in range(3):
        assert client.post("/api/v1/demands", json=body, headers=buyer.headers).status_code == 201


# Retry-After


def test_retry_after_comes_with_429_only_not_with_success_nor_409(client):
    merchant, buyer, late = (make_member(Role.MERCHANT), make_member(Role.BUYER),
                             make_member(Role.BUYER))
    listing = listed_product(client, merchant, licenses_available=1)

    placed = client.post("/api/v1/orders", json=order_body(listing), headers=buyer.headers)
    assert placed.status_code == 201, placed.json
    assert "Retry-After" not in placed.headers
    for _ in range(3):
        sold_out = client.post("/api/v1/orders", json=order_body(listing), headers=late.headers)
        assert (sold_out.status_code, sold_out.json["code"]) == (409, "out_of_stock")
        assert "Retry-After" not in sold_out.headers
    assert_rate_limited(client.post("/api/v1/orders", json=order_body(listing),
                                    headers=late.headers))


unavailable = Blueprint("unavailable", __name__, url_prefix="/test-only")


@unavailable.route("/limited")
class Limited(MethodView):
    @limit("RATE_LIMIT_TRADING")
    def post(self) -> Any:
        raise OperationalError("SELECT 1", {}, Exception("the database is gone"))


def test_a_503_on_a_limited_route_keeps_its_own_retry_after(migrated_app, backend, storage):
    app = limited(backend, storage)
    app.extensions["api"].register_blueprint(unavailable)
    with app.app_context():
        answer = app.test_client().post("/test-only/limited")
        db.engine.dispose()
    assert answer.status_code == 503
    assert answer.headers["Retry-After"] == "2"


def test_limits_are_off_where_configured_off(app):
    plain = app.test_client()
    for _ in range(5):
        assert plain.get(ME, headers=WRONG).status_code == 401


def test_counters_are_shared_through_redis_when_configured(migrated_app, backend, storage):
    """Two applications (two web hosts) on one store count one address's failures together."""
    hosts = [limited(backend, storage) for _ in range(2)]
    answers = []
    for n in range(4):
        with hosts[n % 2].app_context():
            answers.append(hosts[n % 2].test_client().get(ME, headers=WRONG).status_code)
    assert answers == [401, 401, 401, 429]
    for host in hosts:
        with host.app_context():
            db.engine.dispose()
