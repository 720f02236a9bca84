"""SQL statements per list request: the same at page size 10 and 100 for every paginated
endpoint (an N+1 fails the build), within a budget per endpoint. Every paginated GET in the
OpenAPI document must be listed here, so a new list endpoint is measured too."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from app import clock
from app.extensions import db
from app.parties.models import Role
from tests.credit.api import record
from tests.factories import Member, make_member
from tests.orders.factories import listed_product, order_body

ITEMS = 12  # more than the small page, so a per-item query shows as a different count
RUNS = "/api/v1/settlement/runs"

# Statements per request: authentication, then COUNT and the page; more where the endpoint
# reads more, once per page: the blacklist which of the page's findings are under objection;
# matching the demand, both parties' restrictions, the binding bands, the candidates, the
# merchants' levels and the certifications.
BUDGET = {
    "/api/v1/parties": 3, "/api/v1/listings": 3, "/api/v1/admission-rules": 3,
    "/api/v1/credit/blacklist": 4, "/api/v1/guide-prices": 3, "/api/v1/orders": 3,
    "/api/v1/demands": 3, "/api/v1/settlement/runs": 3, "/api/v1/payouts": 3,
    "/api/v1/parties/{party_id}/statement": 3,
    "/api/v1/demands/{demand_id}/matches": 7,
    "/api/v1/listings/{listing_id}/matches": 7,
}


@contextmanager
def counted(app: Flask) -> Iterator[list[str]]:
    statements: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if not statement.lstrip().upper().startswith(("SAVEPOINT", "RELEASE")):
            statements.append(statement)

    sa.event.listen(db.engine, "before_cursor_execute", count)
    try:
        yield statements
    finally:
        sa.event.remove(db.engine, "before_cursor_execute", count)


def ok(response: Any) -> Any:
    assert response.status_code in (200, 201), response.json
    return response.json


def paginated_gets(client: FlaskClient) -> set[str]:
    document = client.get("/openapi.json").json
    return {path for path, operations in document["paths"].items()
            if any(p.get("name") == "page_size"
                   for p in operations.get("get", {}).get("parameters", []))}


def seed(client: FlaskClient) -> dict[str, Any]:
    """At least ITEMS of everything each list shows, to an operator and to a payee."""
    operator, regulator = make_member(Role.OPERATOR), make_member(Role.REGULATOR)
    merchant, buyer = make_member(Role.MERCHANT), make_member(Role.BUYER)
    listings = [listed_product(client, merchant, licenses_available=None,
                               unit_price=10_000 + n) for n in range(ITEMS)]
    ok(client.put(f"/api/v1/parties/{merchant.id}/payout-account", headers=merchant.headers,
                  json={"method": "bank_file", "bank_name": "Bank", "account_name": "M",
                        "account_number": "6222 0000 1234"}))
    demands = [ok(client.post("/api/v1/demands", headers=buyer.headers, json={
        "category": "transport", "purpose": "research", "max_unit_price": 100_000}))
        for _ in range(ITEMS)]
    for n in range(ITEMS):
        ok(client.post("/api/v1/admission-rules", headers=operator.headers, json={
            "list": "positive", "name": f"Rule {n}", "reason": "Encouraged",
            "categories": [f"category-{n}"]}))
        ok(client.post("/api/v1/guide-prices", headers=operator.headers, json={
            "category": f"category-{n}", "reference_price": 1_000, "floor_pct": 10,
            "ceiling_pct": 10, "binding": False}))
        record(client, regulator, make_member(Role.MERCHANT), "fraud", "severe")
        order = ok(client.post("/api/v1/orders", headers=buyer.headers,
                               json=order_body(listings[n])))
        ok(client.post(f"/api/v1/orders/{order['id']}/payments/confirm",
                       headers={**operator.headers, "Idempotency-Key": f"pay-{n}"},
                       json={"reference": f"bank-{n}"}))
        ok(client.post(f"/api/v1/orders/{order['id']}/deliver", headers=merchant.headers,
                       json={"delivery_ref": "file", "checksum": "c"}))
        ok(client.post(f"/api/v1/orders/{order['id']}/accept", headers=buyer.headers))
        clock.advance(timedelta(minutes=1))
        ok(client.post(RUNS, headers={**operator.headers, "Idempotency-Key": f"run-{n}"},
                       json={}))
    return {"operator": operator, "merchant": merchant, "buyer": buyer,
            "listing": listings[0], "demand": demands[0]}


def requests(seeded: dict[str, Any]) -> dict[str, tuple[str, Member]]:
    operator, merchant = seeded["operator"], seeded["merchant"]
    return {
        "/api/v1/parties": ("/api/v1/parties", operator),
        "/api/v1/listings": ("/api/v1/listings", operator),
        "/api/v1/admission-rules": ("/api/v1/admission-rules", operator),
        "/api/v1/credit/blacklist": ("/api/v1/credit/blacklist", operator),
        "/api/v1/guide-prices": ("/api/v1/guide-prices", operator),
        "/api/v1/orders": ("/api/v1/orders", operator),
        "/api/v1/demands": ("/api/v1/demands", operator),
        "/api/v1/settlement/runs": (RUNS, operator),
        "/api/v1/payouts": ("/api/v1/payouts", operator),
        "/api/v1/parties/{party_id}/statement": (
            f"/api/v1/parties/{merchant.id}/statement", merchant),
        "/api/v1/demands/{demand_id}/matches": (
            f"/api/v1/demands/{seeded['demand']['id']}/matches", seeded["buyer"]),
        "/api/v1/listings/{listing_id}/matches": (
            f"/api/v1/listings/{seeded['listing']['id']}/matches", merchant),
    }


@pytest.fixture
def seeded(client: FlaskClient) -> dict[str, Any]:
    return seed(client)


def test_every_paginated_endpoint_is_measured(client):
    assert paginated_gets(client) == set(BUDGET)


def test_list_requests_cost_the_same_statements_at_any_page_size(app, client, seeded):
    measured = {}
    for template, (path, viewer) in requests(seeded).items():
        counts = []
        for page_size in (10, 100):
            with counted(app) as statements:
                response = client.get(path, headers=viewer.headers,
                                      query_string={"page_size": page_size})
            assert response.status_code == 200, (template, response.json)
            # A full small page, and every item (at least ITEMS) on the large one.
            assert len(response.json) == 10 if page_size == 10 else \
                len(response.json) >= ITEMS, (template, len(response.json))
            counts.append(len(statements))
        measured[template] = counts
    unequal = {t: c for t, c in measured.items() if c[0] != c[1]}
    assert not unequal, f"statements grow with the page (N+1): {unequal}"
    over = {t: c[0] for t, c in measured.items() if c[0] > BUDGET[t]}
    assert not over, f"over budget: {over}"
