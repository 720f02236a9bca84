"""Credit figures: blacklist query p50/p99 at scale, and credit-chain verification rate.

    python -m benchmarks.credit_blacklist [--parties 100000] [--events 1000000]
                                          [--database-url URL]

Uses a scratch SQLite file unless a database URL is given (its schema is dropped and rebuilt
by the migrations). Parties and a valid hash-chained credit ledger are bulk-loaded with Core
inserts, 2 % of parties are blacklisted, then the blacklist is queried through the Flask test
client: by name fragment (public and regulator) and by exact credit code.
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from flask_migrate import upgrade

from app import clock
from app.chains import GENESIS_HASH
from app.db import unit_of_work
from app.extensions import db
from app.parties import services as parties
from app.parties.credit_code import check_character
from app.parties.models import SYSTEM, PartyKind, Role
from benchmarks.listings_search import scratch_app
from credit import ledger
from credit.catalog import CATALOG, Severity, points_for
from credit.models import BlacklistEntry, CreditEntry, EntryAction

NEGATIVE = [kind for kind in CATALOG.values() if not kind.positive]
SEVERITIES = [Severity.MINOR, Severity.GENERAL, Severity.SERIOUS]
BATCH = 10_000
WARM_UP = 20  # requests of each query before the timed ones


def credit_code(n: int) -> str:
    first17 = f"9144{n:013d}"
    return first17 + check_character(first17)


def load(parties_count: int, events_count: int, rng: random.Random) -> list[str]:
    """Bulk-load parties, a valid credit chain and blacklistings; return party names."""
    now = clock.now()
    party_rows: list[dict[str, Any]] = [
        {"id": uuid.uuid4(), "name": f"{rng.choice(['华东', '深圳', 'Harbour'])} Data Co. {n}",
         "credit_code": credit_code(n), "kind": "enterprise", "roles": ["merchant"],
         "created_at": now} for n in range(parties_count)]
    table = db.metadata.tables["parties"]
    for start in range(0, len(party_rows), BATCH):
        db.session.execute(sa.insert(table), party_rows[start:start + BATCH])
    prev_hash = GENESIS_HASH
    entries = []
    for seq in range(1, events_count + 1):
        kind = rng.choice(NEGATIVE)
        severity = rng.choice(SEVERITIES)
        entry = CreditEntry(
            id=uuid.uuid4(), party_id=rng.choice(party_rows)["id"],
            action=EntryAction.RECORDED, kind=kind.code, severity=severity,
            points=points_for(kind, severity), description="bulk-loaded finding",
            evidence_ref=None, refers_to=None, recorded_by=None,
            occurred_at=now - timedelta(seconds=events_count - seq))
        entry.seal(seq, prev_hash)
        prev_hash = entry.hash
        entries.append({column.key: getattr(entry, column.key)
                        for column in CreditEntry.__table__.columns})
        if len(entries) == BATCH:
            db.session.execute(sa.insert(CreditEntry.__table__), entries)
            entries = []
    if entries:
        db.session.execute(sa.insert(CreditEntry.__table__), entries)
    blacklisted = rng.sample(party_rows, max(1, parties_count // 50))
    db.session.execute(sa.insert(BlacklistEntry.__table__), [
        {"id": uuid.uuid4(), "party_id": row["id"], "event_id": None,
         "reason": "Data tampering (severe)", "listed_at": now - timedelta(days=30),
         "publicity_min_until": now + timedelta(days=335),
         "publicity_until": now + timedelta(days=1065), "ended_at": None, "end_reason": None}
        for row in blacklisted])
    db.session.commit()
    return [row["name"] for row in blacklisted] + [row["credit_code"] for row in blacklisted]


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def timed(call: Callable[[], object], rounds: int) -> list[float]:
    samples = []
    for _ in range(rounds):
        started = time.perf_counter()
        call()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


@dataclass
class CreditFigures:
    dialect: str
    parties: int
    events: int
    load_seconds: float
    blacklisted: int
    queries: list[tuple[str, float, float]]  # label, p50 ms, p99 ms
    chain_entries: int
    chain_valid: bool
    verify_seconds: float

    @property
    def verify_rate(self) -> float:
        """Credit-chain entries verified per second."""
        return self.chain_entries / self.verify_seconds


def measure(database_url: str | None = None, *, parties_count: int = 100_000,
            events: int = 1_000_000, rounds: int = 300) -> CreditFigures:
    """Load parties, the credit chain and blacklistings; time the three blacklist queries and
    the chain's verification."""
    app = scratch_app(database_url or f"sqlite:///{tempfile.mkdtemp()}/bench.db")
    rng = random.Random(7)
    with app.app_context():
        dialect = db.engine.dialect.name
        upgrade()
        started = time.perf_counter()
        names_and_codes = load(parties_count, events, rng)
        loaded = time.perf_counter() - started
        # The statistics autovacuum would reach in production.
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            postgres = connection.dialect.name == "postgresql"
            connection.exec_driver_sql("VACUUM ANALYZE" if postgres else "ANALYZE")
        with unit_of_work() as session:
            _, key = parties.register_party(
                session, name="Bench Regulator", credit_code=credit_code(9_999_999),
                kind=PartyKind.PUBLIC_AGENCY, roles=[Role.REGULATOR], actor=SYSTEM)
        headers = {"Authorization": f"Bearer {key.raw}"}
        client = app.test_client()
        half = len(names_and_codes) // 2
        names, codes = names_and_codes[:half], names_and_codes[half:]

        def by_name(public: bool) -> Callable[[], object]:
            def call() -> object:
                fragment = rng.choice(names).split()[-1]
                response = client.get(f"/api/v1/credit/blacklist?q={fragment}",
                                      headers={} if public else headers)
                assert response.status_code == 200
                return response
            return call

        def by_code() -> object:
            response = client.get(f"/api/v1/credit/blacklist?credit_code={rng.choice(codes)}")
            assert response.status_code == 200 and len(response.get_json()) == 1
            return response

        rows = [("public, by name fragment", by_name(True)),
                ("regulator, by name fragment", by_name(False)),
                ("public, by exact credit code", by_code)]
        for _, call in rows:  # warm-up, not counted: the plans, caches and first connection
            timed(call, WARM_UP)
        results = [(label, *percentiles(timed(call, rounds))) for label, call in rows]
        started = time.perf_counter()
        with unit_of_work() as session:
            report = ledger.verify(session)
        verified = time.perf_counter() - started
        db.session.remove()
        db.engine.dispose()
    return CreditFigures(dialect, parties_count, events, loaded, len(names), results,
                         report.entries, report.valid, verified)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parties", type=int, default=100_000)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=300)
    parser.add_argument("--database-url")
    args = parser.parse_args()
    figures = measure(args.database_url, parties_count=args.parties, events=args.events,
                      rounds=args.rounds)
    print(f"database               {figures.dialect}")
    print(f"parties / events       {args.parties:,} / {args.events:,}  "
          f"(loaded in {figures.load_seconds:.1f} s; {figures.blacklisted:,} blacklisted)")
    print(f"{'blacklist query':<30} {'p50 ms':>8} {'p99 ms':>8}")
    for label, p50, p99 in figures.queries:
        print(f"{label:<30} {p50:>8.2f} {p99:>8.2f}")
    print(f"chain verification     {figures.verify_rate:,.0f} entries/s "
          f"(valid={figures.chain_valid}, {figures.chain_entries:,} entries in "
          f"{figures.verify_seconds:.1f} s)")


if __name__ == "__main__":
    main()
