"""Audit-trail figures: appends per second, sealing into the evidence log, and full-log
verification in leaves per second.

    python -m benchmarks.audit_chain [--entries 100000] [--database-url URL]

Uses a scratch SQLite file unless a database URL is given (its schema is dropped and rebuilt
by the migrations).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import dataclass

from flask_migrate import upgrade

from app import audit
from app.db import unit_of_work
from app.extensions import db
from app.log.keys import log_verifier
from app.log.sealer import seal
from app.log.verification import verify_log
from benchmarks.listings_search import scratch_app


@dataclass
class AuditFigures:
    dialect: str
    appended: int
    per_transaction: int
    append_seconds: float
    seal_seconds: float
    chain_entries: int
    chain_valid: bool
    verify_seconds: float

    @property
    def append_rate(self) -> float:
        return self.appended / self.append_seconds

    @property
    def verify_rate(self) -> float:
        """Evidence-log leaves verified per second."""
        return self.chain_entries / self.verify_seconds


def measure(database_url: str | None = None, *, entries: int = 100_000,
            per_transaction: int = 100) -> AuditFigures:
    """Append `entries` audit entries through the service, seal them, then verify the log."""
    app = scratch_app(database_url or f"sqlite:///{tempfile.mkdtemp()}/bench.db")
    with app.app_context():
        dialect = db.engine.dialect.name
        upgrade()
        started = time.perf_counter()
        for start in range(0, entries, per_transaction):
            with unit_of_work() as session:
                for n in range(start, min(start + per_transaction, entries)):
                    audit.record(session, actor_id=None, action="benchmark.appended",
                                 subject=n, subject_type="benchmark", details={"n": n})
        appended = time.perf_counter() - started
        started = time.perf_counter()
        while (batch := seal(app.config["LOG_ORIGIN"])) is not None and batch.sealed:
            pass  # batch after batch (LOG_SEAL_BATCH_SIZE each) until every entry is in
        sealed = time.perf_counter() - started
        started = time.perf_counter()
        report = verify_log(db.session(), log_verifier())
        verified = time.perf_counter() - started
        db.session.remove()
        db.engine.dispose()
    return AuditFigures(dialect, entries, per_transaction, appended, sealed, report.entries,
                        report.valid, verified)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--per-transaction", type=int, default=100)
    parser.add_argument("--database-url")
    args = parser.parse_args()
    figures = measure(args.database_url, entries=args.entries,
                      per_transaction=args.per_transaction)
    print(f"database            {figures.dialect}")
    print(f"entries             {figures.chain_entries}")
    print(f"append entries/s    {figures.append_rate:,.0f}  "
          f"({args.per_transaction} per transaction)")
    print(f"seal seconds        {figures.seal_seconds:,.2f}  (batches of LOG_SEAL_BATCH_SIZE)")
    print(f"verify leaves/s     {figures.verify_rate:,.0f}  (valid={figures.chain_valid})")


if __name__ == "__main__":
    main()
