"""SQL statements per list request at page size 10 and 100, for every paginated endpoint.

    python -m benchmarks.statement_counts [--database-url URL]

Uses a scratch SQLite file unless a database URL is given (its schema is dropped and rebuilt
by the migrations). A dozen of everything each list shows is made through the API (listings,
demands, admission rules, guide prices, blacklistings, completed and settled orders and their
licences, consent requests, qualifications and accreditations), then each list is read at both
page sizes while its statements are counted: equal counts mean no per-item query (N+1).
tests/test_statement_counts.py asserts the same figures in the suite.
"""

from __future__ import annotations

import argparse
import itertools
import tempfile
from dataclasses import dataclass
from datetime import timedelta
from io import BytesIO
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from flask_migrate import upgrade

from app import clock
from app.db import unit_of_work
from app.extensions import db
from app.parties import services as parties
from app.parties.credit_code import check_character
from app.parties.models import SYSTEM, PartyKind, Role
from benchmarks.listings_search import recorded_statements, scratch_app

ITEMS = 12  # more than the small page, so a per-item query shows as a different count
PAGE_SIZES = (10, 100)
RUNS = "/api/v1/settlement/runs"

_serial = itertools.count(1)


@dataclass
class Viewer:
    """A party with an API key, as the requests use it."""

    id: str
    headers: dict[str, str]


def viewer(role: Role) -> Viewer:
    """Register a party with one role (as the system, so any role)."""
    n = next(_serial)
    first17 = f"91330000MA{n:07d}"
    with unit_of_work(db.session()) as session:
        party, issued = parties.register_party(
            session, name=f"Statements Party {n} Co.", credit_code=first17 +
            check_character(first17), kind=PartyKind.ENTERPRISE, roles=[role], actor=SYSTEM)
    return Viewer(str(party.id), {"Authorization": f"Bearer {issued.raw}"})


def _work(statements: list[tuple[str, Any]]) -> int:
    """How many of the recorded statements are work (savepoints are not)."""
    return sum(not statement.lstrip().upper().startswith(("SAVEPOINT", "RELEASE"))
               for statement, _ in statements)


def ok(response: Any) -> Any:
    assert response.status_code in (200, 201), response.json
    return response.json


def paginated_gets(client: FlaskClient) -> set[str]:
    """Path templates of every GET in the OpenAPI document that takes a page size."""
    document = client.get("/openapi.json").get_json()
    return {path for path, operations in document["paths"].items()
            if any(p.get("name") == "page_size"
                   for p in operations.get("get", {}).get("parameters", []))}


def listing_body(merchant: Viewer, unit_price: int, holder_id: str | None = None,
                 processor_ids: list[str] | None = None) -> dict[str, Any]:
    """A general listing with unlimited licenses (held by the merchant unless named)."""
    return {
        "title": "Shanghai road traffic flows 上海道路交通流量",
        "description": "Hourly vehicle counts on 1,200 arterial road segments, anonymized.",
        "category": "transport", "tags": ["traffic", "交通", "hourly"],
        "classification": "general", "contains_personal_info": False, "anonymized": False,
        "consent_basis": None,
        "source": {"origin": "collected", "description": "Roadside sensors we operate",
                   "legal_basis": "Road sensor operating licence 2024-17"},
        "rights": {"holder_id": holder_id or merchant.id, "processor_ids": processor_ids or [],
                   "operator_id": merchant.id},
        "usage_scope": {"purposes": ["research", "logistics_planning"], "term_days": 365,
                        "territory": "domestic", "resale": False, "derivatives": True},
        "delivery_mode": "api", "price_model": "subscription", "unit_price": unit_price,
        "currency": "CNY", "licenses_available": None, "revenue_shares": []}


def listed_product(client: FlaskClient, merchant: Viewer, unit_price: int) -> dict[str, Any]:
    """A listing with unlimited licenses, taken through review to `listed`."""
    listing = ok(client.post("/api/v1/listings", headers=merchant.headers,
                             json=listing_body(merchant, unit_price)))
    submitted = ok(client.post(f"/api/v1/listings/{listing['id']}/submit",
                               headers=merchant.headers))
    if submitted["status"] == "listed":
        return submitted
    reviewed = ok(client.post(f"/api/v1/listings/{listing['id']}/review",
                              headers=viewer(Role.OPERATOR).headers,
                              json={"decision": "approve", "reason": "Checked"}))
    assert reviewed["status"] == "listed", reviewed
    return reviewed


def seed(client: FlaskClient) -> dict[str, Any]:
    """At least ITEMS of everything each list shows, to an operator and to a payee (inside an
    app context; moves the clock ITEMS minutes on, so that each settlement run has work)."""
    operator, regulator = viewer(Role.OPERATOR), viewer(Role.REGULATOR)
    merchant, buyer = viewer(Role.MERCHANT), viewer(Role.BUYER)
    listings = [listed_product(client, merchant, 10_000 + n) for n in range(ITEMS)]
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
        ok(client.post("/api/v1/credit/events", headers=regulator.headers, json={
            "party_id": viewer(Role.MERCHANT).id, "kind": "fraud", "severity": "severe",
            "description": "fraud found by inspection", "evidence_ref": "case-001"}))
        order = ok(client.post("/api/v1/orders", headers=buyer.headers, json={
            "listing_id": listings[n]["id"], "quantity": 1, "purpose": "research"}))
        ok(client.post(f"/api/v1/orders/{order['id']}/payments/confirm",
                       headers={**operator.headers, "Idempotency-Key": f"pay-{n}"},
                       json={"reference": f"bank-{n}"}))
        ok(client.post(f"/api/v1/orders/{order['id']}/deliver", headers=merchant.headers,
                       json={"delivery_ref": "file", "checksum": "c"}))
        ok(client.post(f"/api/v1/orders/{order['id']}/accept", headers=buyer.headers))
        clock.advance(timedelta(minutes=1))
        ok(client.post(RUNS, headers={**operator.headers, "Idempotency-Key": f"run-{n}"},
                       json={}))
        ok(client.post(f"/api/v1/listings/{listings[0]['id']}/artifacts",
                       headers=merchant.headers,
                       data={"file": (BytesIO(f"segment,vehicles\nS{n},1\n".encode()),
                                      f"flows-{n}.csv")}))
    # Consents: the first party is the holder of ITEMS drafts, and the first draft also
    # names the others as processors (ITEMS requests of one listing); each submitted once.
    named = [viewer(Role.BUYER) for _ in range(ITEMS)]
    drafts = [ok(client.post("/api/v1/listings", headers=merchant.headers, json=listing_body(
        merchant, 20_000, holder_id=named[0].id,
        processor_ids=[p.id for p in named[1:]] if n == 0 else None)))
        for n in range(ITEMS)]
    for draft in drafts:
        asked = client.post(f"/api/v1/listings/{draft['id']}/submit", headers=merchant.headers)
        assert asked.status_code == 409, asked.get_json()
    certifier = viewer(Role.CERTIFIER)
    until = (clock.now() + timedelta(days=365)).isoformat()
    for n in range(ITEMS):
        ok(client.post(f"/api/v1/parties/{merchant.id}/qualifications",
                       headers=operator.headers, json={
                           "max_classification": "sensitive", "valid_until": until,
                           "evidence_ref": f"QUAL-{n}"}))
        ok(client.post(f"/api/v1/certifiers/{certifier.id}/accreditations",
                       headers=operator.headers, json={
                           "scopes": ["compliance"], "max_classification": "sensitive",
                           "valid_until": until, "evidence_ref": f"CNAS-{n}"}))
    return {"operator": operator, "merchant": merchant, "buyer": buyer,
            "listing": listings[0], "demand": demands[0], "holder": named[0],
            "draft": drafts[0], "certifier": certifier}


def endpoint_requests(seeded: dict[str, Any]) -> dict[str, tuple[str, Viewer]]:
    """Each paginated endpoint's path template → the path to read and who reads it."""
    operator, merchant = seeded["operator"], seeded["merchant"]
    return {
        "/api/v1/parties": ("/api/v1/parties", operator),
        "/api/v1/listings": ("/api/v1/listings", operator),
        "/api/v1/admission-rules": ("/api/v1/admission-rules", operator),
        "/api/v1/credit/blacklist": ("/api/v1/credit/blacklist", operator),
        "/api/v1/guide-prices": ("/api/v1/guide-prices", operator),
        "/api/v1/orders": ("/api/v1/orders", operator),
        "/api/v1/licenses": ("/api/v1/licenses", operator),
        "/api/v1/demands": ("/api/v1/demands", operator),
        "/api/v1/settlement/runs": (RUNS, operator),
        "/api/v1/payouts": ("/api/v1/payouts", operator),
        "/api/v1/parties/{party_id}/statement": (
            f"/api/v1/parties/{merchant.id}/statement", merchant),
        "/api/v1/demands/{demand_id}/matches": (
            f"/api/v1/demands/{seeded['demand']['id']}/matches", seeded["buyer"]),
        "/api/v1/listings/{listing_id}/matches": (
            f"/api/v1/listings/{seeded['listing']['id']}/matches", merchant),
        "/api/v1/listings/{listing_id}/artifacts": (
            f"/api/v1/listings/{seeded['listing']['id']}/artifacts", merchant),
        "/api/v1/consents": ("/api/v1/consents", seeded["holder"]),
        "/api/v1/listings/{listing_id}/consents": (
            f"/api/v1/listings/{seeded['draft']['id']}/consents", merchant),
        "/api/v1/parties/{party_id}/qualifications": (
            f"/api/v1/parties/{merchant.id}/qualifications", merchant),
        "/api/v1/certifiers/{party_id}/accreditations": (
            f"/api/v1/certifiers/{seeded['certifier'].id}/accreditations", merchant),
    }


def count_statements(app: Flask, client: FlaskClient) -> dict[str, tuple[int, int]]:
    """Seed, then each endpoint's path template → statements per request at page size 10 and
    100 (inside an app context on a migrated, empty database)."""
    measured = {}
    for template, (path, reader) in endpoint_requests(seed(client)).items():
        counts = []
        for page_size in PAGE_SIZES:
            with recorded_statements(app) as statements:
                response = client.get(path, headers=reader.headers,
                                      query_string={"page_size": page_size})
            assert response.status_code == 200, (template, response.json)
            # A full small page, and every item (at least ITEMS) on the large one.
            items = response.get_json()
            assert len(items) == 10 if page_size == 10 else len(items) >= ITEMS, \
                (template, len(items))
            counts.append(_work(statements))
        measured[template] = (counts[0], counts[1])
    return measured


@dataclass
class StatementFigures:
    dialect: str
    counts: dict[str, tuple[int, int]]  # path template → (at page size 10, at 100)
    unmeasured: set[str]  # paginated GETs of the OpenAPI document missing from `counts`


def measure(database_url: str) -> StatementFigures:
    """Count the statements of every list endpoint on a fresh app on the scratch database."""
    app = scratch_app(database_url)
    client = app.test_client()
    try:
        with app.app_context():
            upgrade()
            counts = count_statements(app, client)
            unmeasured = paginated_gets(client) - set(counts)
            dialect = db.engine.dialect.name
            db.session.remove()
    finally:
        # The seed moved the process's clock on; the benchmarks after this one read real time.
        clock.reset()
    with app.app_context():
        db.engine.dispose()
    return StatementFigures(dialect, counts, unmeasured)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url")
    args = parser.parse_args()
    figures = measure(args.database_url or f"sqlite:///{tempfile.mkdtemp()}/bench.db")
    print(f"database      {figures.dialect}")
    print(f"seed          {ITEMS} of everything each list shows")
    print()
    print(f"{'SQL statements per request':<44} {'size 10':>8} {'size 100':>9}")
    for template, (small, large) in figures.counts.items():
        note = "" if small == large else "  NOT EQUAL: N+1"
        print(f"{'GET ' + template:<44} {small:>8} {large:>9}{note}")
    if figures.unmeasured:
        print(f"not measured: {', '.join(sorted(figures.unmeasured))}")


if __name__ == "__main__":
    main()
