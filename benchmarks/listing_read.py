"""Reading one listing over HTTP (gunicorn, PostgreSQL) against a bare endpoint in the same run.

    python -m benchmarks.listing_read --database-url URL [--listings 100000] [--seconds 10]
                                      [--rounds 3] [--workers 4] [--connections 8]
                                      [--port 8642]

Needs a scratch PostgreSQL database (its schema is dropped and rebuilt) and `wrk`. The catalog
is the listings benchmark's; wrk reads GET /api/v1/listings/{id} of listed products (a buyer's
API key: authentication, the listing and its certifications), then GET /healthz (the same
stack — routing, middleware, logging, metrics — without a database), alternating rounds.
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from flask_migrate import upgrade

from app.db import unit_of_work
from app.extensions import db
from app.parties import services as parties
from app.parties.models import SYSTEM, PartyKind, Role
from benchmarks.listings_search import credit_code, load_listings, load_merchants, scratch_app
from benchmarks.order_placement import PORT, require_tools, run_wrk, start_gunicorn, stop
from listings.models import Listing

READ_SCRIPT = """
local ids = {%(ids)s}
local n = 0
request = function()
  n = n + 1
  return wrk.format("GET", "/api/v1/listings/" .. ids[(n %% #ids) + 1],
                    {["Authorization"] = "%(auth)s"})
end
"""
BARE_SCRIPT = """
request = function() return wrk.format("GET", "/healthz") end
"""


@dataclass
class ReadFigures:
    """Alternating wrk rounds of the listing read and of the bare endpoint."""

    listings: int
    reads: list[tuple[float, float, float, int]]  # req/s, p50 ms, p99 ms, errors
    bares: list[tuple[float, float, float, int]]

    @property
    def read_rps(self) -> float:
        return statistics.median(r[0] for r in self.reads)

    @property
    def bare_rps(self) -> float:
        return statistics.median(r[0] for r in self.bares)

    @property
    def ratio(self) -> float:
        return self.read_rps / self.bare_rps


def measure(database_url: str, *, listings: int = 100_000, seconds: int = 10, rounds: int = 3,
            workers: int = 4, connections: int = 8, port: int = PORT) -> ReadFigures:
    """Load the catalog, then alternate wrk rounds of GET /listings/{id} and GET /healthz."""
    app = scratch_app(database_url)
    with app.app_context():
        upgrade()
        load_listings(listings, load_merchants(200), random.Random(11))
        with unit_of_work() as session:
            _, issued = parties.register_party(
                session, name="Read Bench Buyer Co.", credit_code=credit_code(9_100_000),
                kind=PartyKind.ENTERPRISE, roles=[Role.BUYER], actor=SYSTEM)
        ids = list(db.session.scalars(sa.select(Listing.id).where(Listing.status == "listed")
                                      .order_by(sa.func.random()).limit(1000)))
        url = db.engine.url.set(drivername="postgresql").render_as_string(False)
        db.session.remove()
        db.engine.dispose()

    work = Path(tempfile.mkdtemp(prefix="bench-read-"))
    (work / "read.lua").write_text(READ_SCRIPT % {
        "ids": ", ".join(f'"{i}"' for i in ids), "auth": f"Bearer {issued.raw}"})
    (work / "bare.lua").write_text(BARE_SCRIPT)
    server = start_gunicorn(url, workers, port)
    try:
        reads, bares = [], []
        for _ in range(rounds):
            reads.append(run_wrk(work / "read.lua", seconds, connections, port))
            bares.append(run_wrk(work / "bare.lua", seconds, connections, port))
    finally:
        stop(server)
    return ReadFigures(listings, reads, bares)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--listings", type=int, default=100_000)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--port", type=int, default=PORT, help="gunicorn's port")
    args = parser.parse_args()
    require_tools("wrk")
    figures = measure(args.database_url, listings=args.listings, seconds=args.seconds,
                      rounds=args.rounds, workers=args.workers, connections=args.connections,
                      port=args.port)

    print(f"setup         gunicorn {args.workers} sync workers on :{args.port}, "
          f"{args.connections} connections, {args.rounds} alternating rounds of "
          f"{args.seconds} s, medians; {args.listings:,} listings")
    print()
    print(f"{'':<40} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}")
    for name, rounds in (("GET /api/v1/listings/{id}", figures.reads),
                         ("GET /healthz (bare)", figures.bares)):
        print(f"{name:<40} {statistics.median(r[0] for r in rounds):>8.0f} "
              f"{statistics.median(r[1] for r in rounds):>8.1f} "
              f"{statistics.median(r[2] for r in rounds):>8.1f} {sum(r[3] for r in rounds):>7}")
    print(f"ratio listing / bare: {figures.ratio:.2f}")


if __name__ == "__main__":
    main()
