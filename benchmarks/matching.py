"""Matching figures: p50/p99 of ranking one demand's matches at 10,000 and 100,000 listings.

    python -m benchmarks.matching [--database-url URL] [--sizes 10000,100000] [--requests 300]

Uses a scratch SQLite file unless a database URL is given (its schema is dropped and rebuilt
by the migrations). The catalog is the listings benchmark's (a realistic mix of categories,
classifications, statuses and log-uniform prices), grown in place from one size to the next;
each demand is read through GET /demands/{id}/matches with the buyer's real API key.
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass

from flask.testing import FlaskClient
from flask_migrate import upgrade

from app.db import unit_of_work
from app.extensions import db
from app.parties import services as parties
from app.parties.models import SYSTEM, PartyKind, Role
from benchmarks.listings_search import (
    CATEGORIES,
    credit_code,
    load_listings,
    load_merchants,
    percentile,
    scratch_app,
)

# (category, budget in fen, delivery modes, max classification, keywords): busy and quiet
# categories, tight and loose budgets.
DEMANDS = [
    ("transport", 5_000_000, ["api", "download", "sandbox"], "important", ["traffic"]),
    ("transport", 50_000, ["api"], "general", ["Shanghai", "parking"]),
    ("credit", 1_000_000, ["sandbox", "api"], "sensitive", ["tax"]),
    ("weather", 200_000, ["download"], "open", []),
    ("healthcare", 10_000_000, ["sandbox"], "important", ["pharmaceutical"]),
    ("energy", 3_000_000, ["api", "download"], "general", ["solar", "Beijing"]),
]


def post_demands(client: FlaskClient, headers: dict[str, str]) -> list[str]:
    ids = []
    for category, budget, modes, maximum, keywords in DEMANDS:
        response = client.post("/api/v1/demands", headers=headers, json={
            "category": category, "max_unit_price": budget, "delivery_modes": modes,
            "max_classification": maximum, "keywords": keywords, "purpose": "research"})
        assert response.status_code == 201, response.json
        ids.append(response.get_json()["id"])
    return ids


def timed_matches(client: FlaskClient, headers: dict[str, str], demand_ids: list[str],
                  requests: int) -> tuple[float, float, float]:
    """p50 and p99 in milliseconds, and the mean number of matches returned per demand."""
    for demand_id in demand_ids:  # warm-up
        client.get(f"/api/v1/demands/{demand_id}/matches", headers=headers)
    latencies, found = [], []
    for n in range(requests):
        demand_id = demand_ids[n % len(demand_ids)]
        started = time.perf_counter()
        response = client.get(f"/api/v1/demands/{demand_id}/matches", headers=headers,
                              query_string={"page_size": 20})
        latencies.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, response.json
        found.append(len(response.get_json()))
    return statistics.median(latencies), percentile(latencies, 0.99), statistics.mean(found)


@dataclass
class MatchingFigures:
    dialect: str
    merchants: int
    requests: int
    results: dict[int, tuple[float, float, float]]  # listings → p50 ms, p99 ms, mean matches

    @property
    def p99_ratio(self) -> float:
        """p99 at the last catalog size over p99 at the first."""
        sizes = list(self.results)
        return self.results[sizes[-1]][1] / self.results[sizes[0]][1]


def measure(database_url: str | None = None, *, sizes: Sequence[int] = (10_000, 100_000),
            merchants: int = 200, requests: int = 300) -> MatchingFigures:
    """Post the demands, then grow the catalog size by size, timing the matches at each."""
    app = scratch_app(database_url or f"sqlite:///{tempfile.mkdtemp()}/bench.db")
    rng = random.Random(20261129)
    with app.app_context():
        upgrade()
        merchant_ids = load_merchants(merchants)
        with unit_of_work() as session:
            _, issued = parties.register_party(
                session, name="Bench Buyer Co.", credit_code=credit_code(9_999_999),
                kind=PartyKind.ENTERPRISE, roles=[Role.BUYER], actor=SYSTEM)
        dialect = db.engine.dialect.name
        db.session.remove()
    client = app.test_client()
    headers = {"Authorization": f"Bearer {issued.raw}"}
    demand_ids = post_demands(client, headers)

    results, loaded = {}, 0
    for size in sizes:
        with app.app_context():
            load_listings(size - loaded, merchant_ids, rng)
            db.session.remove()
        loaded = size
        results[size] = timed_matches(client, headers, demand_ids, requests)
    with app.app_context():
        db.engine.dispose()
    return MatchingFigures(dialect, merchants, requests, results)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--merchants", type=int, default=200)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--database-url")
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]
    figures = measure(args.database_url, sizes=sizes, merchants=args.merchants,
                      requests=args.requests)

    print(f"database      {figures.dialect}")
    print(f"catalog       {len(CATEGORIES)} categories, {args.merchants} merchants; "
          f"{len(DEMANDS)} demands, {args.requests} match requests per size")
    print()
    print(f"{'GET /demands/{id}/matches':<34} {'p50 ms':>8} {'p99 ms':>8} {'matches':>8}")
    for size, (p50, p99, found) in figures.results.items():
        print(f"{f'{size:,} listings':<34} {p50:>8.1f} {p99:>8.1f} {found:>8.1f}")
    if len(sizes) >= 2:
        print(f"p99 ratio {sizes[-1]:,} / {sizes[0]:,} listings: {figures.p99_ratio:.2f}")


if __name__ == "__main__":
    main()
