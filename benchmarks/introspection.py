"""Token introspection in process: POST /oauth/introspect p50/p99 among many live tokens, beside
an authenticated read of the same process (GET /parties/me) as its baseline.

    python -m benchmarks.introspection [--tokens 100000] [--requests 1000] [--database-url URL]

Uses a scratch SQLite file unless a database URL is given (its schema is dropped and rebuilt by
the migrations). An API subscription is bought, paid and delivered through the API and its
buyer takes a token; `tokens` more tokens of the licence are bulk-loaded, so the lookup runs on
an index of realistic size. The merchant then introspects through the Flask test client: the
active token, and as many unknown ones (the answer `{"active": false}`), each timed; the
statements of one introspection are counted (its API key, then the token with its licence).
Every call of a merchant's API waits on this, so the target is a p99 of at most 5 ms.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import secrets
import statistics
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from flask.testing import FlaskClient
from flask_migrate import upgrade

from app import clock
from app.extensions import db
from app.parties.models import Role
from benchmarks.listings_search import percentile, recorded_statements, scratch_app
from benchmarks.statement_counts import listed_product, viewer
from licenses.models import LicenseToken

INTROSPECT = "/api/v1/oauth/introspect"
BATCH = 10_000
WARM_UP = 200


def _ok(response: Any, status: int = 200) -> Any:
    assert response.status_code == status, (response.status_code, response.json)
    return response.json


def seed(client: FlaskClient, tokens: int) -> tuple[dict[str, str], str, dict[str, str]]:
    """A delivered API licence and its buyer's token among `tokens` others; the merchant's
    headers, the token, and the buyer's headers."""
    merchant, buyer, operator = (viewer(role) for role in (Role.MERCHANT, Role.BUYER,
                                                            Role.OPERATOR))
    listing = listed_product(client, merchant, 120_000)
    order = _ok(client.post("/api/v1/orders", headers=buyer.headers, json={
        "listing_id": listing["id"], "quantity": 1, "purpose": "research"}), 201)
    _ok(client.post(f"/api/v1/orders/{order['id']}/payments/confirm",
                    headers={**operator.headers, "Idempotency-Key": "pay"},
                    json={"reference": "B-1"}))
    _ok(client.post(f"/api/v1/orders/{order['id']}/deliver", headers=merchant.headers,
                    json={"delivery_ref": "api-credential:1", "checksum": "sha256:00"}))
    token = _ok(client.post(f"/api/v1/licenses/{order['license_id']}/tokens",
                            headers=buyer.headers), 201)["access_token"]
    expires_at = clock.now() + timedelta(hours=1)
    license_id, buyer_id = uuid.UUID(order["license_id"]), uuid.UUID(buyer.id)
    for start in range(0, tokens, BATCH):
        db.session.execute(sa.insert(LicenseToken.__table__), [
            {"id": uuid.uuid4(), "license_id": license_id,
             "token_hash": hashlib.sha256(secrets.token_bytes(16)).hexdigest(),
             "issued_to": buyer_id, "expires_at": expires_at, "created_at": clock.now()}
            for _ in range(min(BATCH, tokens - start))])
        db.session.commit()
    if db.engine.dialect.name == "postgresql":
        # Done now, not by autovacuum in the middle of the timed requests.
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(sa.text("VACUUM ANALYZE license_tokens"))
    return merchant.headers, token, buyer.headers


def timed(client: FlaskClient, method: str, path: str, headers: dict[str, str],
          bodies: Sequence[dict[str, str] | None]) -> list[float]:
    """Milliseconds per request, one per body (form bodies; None: no body)."""
    for body in bodies[:WARM_UP]:  # connections, caches, compiled statements
        client.open(path, method=method, headers=headers, data=body)
    samples = []
    for body in bodies:
        started = time.perf_counter()
        response = client.open(path, method=method, headers=headers, data=body)
        samples.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, response.json
    return samples


@dataclass
class IntrospectionFigures:
    dialect: str
    tokens: int
    requests: int
    active: tuple[float, float]  # p50, p99 in ms: the live token
    unknown: tuple[float, float]  # p50, p99 in ms: tokens nobody issued
    baseline: tuple[float, float]  # p50, p99 in ms: GET /parties/me
    statements: int  # per introspection, the API key's lookup included

    @property
    def p99(self) -> float:
        return max(self.active[1], self.unknown[1])


def _p50_p99(samples: list[float]) -> tuple[float, float]:
    return statistics.median(samples), percentile(samples, 0.99)


def measure(database_url: str | None = None, *, tokens: int = 100_000,
            requests: int = 1000) -> IntrospectionFigures:
    """Seed the licence and its tokens, then time introspections and the baseline."""
    app = scratch_app(database_url or f"sqlite:///{tempfile.mkdtemp()}/bench.db")
    client = app.test_client()
    try:
        with app.app_context():
            upgrade()
            merchant, token, buyer = seed(client, tokens)
            db.session.remove()
        live = [{"token": token}] * requests
        strangers = [{"token": "dxt_" + secrets.token_urlsafe(32)} for _ in range(requests)]
        assert _ok(client.post(INTROSPECT, headers=merchant, data=live[0]))["active"] is True
        assert _ok(client.post(INTROSPECT, headers=merchant, data=strangers[0])) == {
            "active": False}
        with recorded_statements(app) as statements:
            client.post(INTROSPECT, headers=merchant, data=live[0])
        gc.collect()  # the seed's garbage is not collected on the clock
        active = _p50_p99(timed(client, "POST", INTROSPECT, merchant, live))
        unknown = _p50_p99(timed(client, "POST", INTROSPECT, merchant, strangers))
        baseline = _p50_p99(timed(client, "GET", "/api/v1/parties/me", buyer,
                                  [None] * requests))
        with app.app_context():
            dialect = db.engine.dialect.name
    finally:
        with app.app_context():
            db.engine.dispose()
    work = [s for s, _ in statements if not s.lstrip().upper().startswith(
        ("SAVEPOINT", "RELEASE"))]
    return IntrospectionFigures(dialect, tokens, requests, active, unknown, baseline,
                                len(work))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url")
    parser.add_argument("--tokens", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=1000)
    args = parser.parse_args()
    figures = measure(args.database_url, tokens=args.tokens, requests=args.requests)
    print(f"database      {figures.dialect}")
    print(f"tokens        {figures.tokens + 1:,} (one live, the rest of the same licence)")
    print(f"requests      {figures.requests:,} of each, in process (Flask test client)")
    print(f"statements    {figures.statements} per introspection (API key, token with licence)")
    print()
    print(f"{'':<38} {'p50 ms':>8} {'p99 ms':>8}")
    for label, (p50, p99) in (("POST /oauth/introspect, active token", figures.active),
                              ("POST /oauth/introspect, unknown token", figures.unknown),
                              ("GET /parties/me (baseline)", figures.baseline)):
        print(f"{label:<38} {p50:>8.2f} {p99:>8.2f}")
    print()
    print(f"introspection p99 {figures.p99:.2f} ms: "
          f"{'meets' if figures.p99 <= 5 else 'MISSES'} the target of 5 ms")


if __name__ == "__main__":
    main()
