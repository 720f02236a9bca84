"""Audit-chain figures: appends per second and verification entries per second.

    python -m benchmarks.audit_chain [--entries 100000] [--database-url URL]

Uses a scratch SQLite file unless a database URL is given (its tables are dropped first).
"""

from __future__ import annotations

import argparse
import tempfile
import time

from flask_migrate import upgrade

from app import audit, create_app
from app.db import unit_of_work
from app.extensions import db
from config import TestingConfig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--per-transaction", type=int, default=100)
    parser.add_argument("--database-url")
    args = parser.parse_args()
    url = args.database_url or f"sqlite:///{tempfile.mkdtemp()}/bench.db"
    app = create_app(TestingConfig, SQLALCHEMY_DATABASE_URI=url)
    with app.app_context():
        db.drop_all()
        db.session.execute(db.text("DROP TABLE IF EXISTS alembic_version"))
        db.session.commit()
        upgrade()
        started = time.perf_counter()
        for start in range(0, args.entries, args.per_transaction):
            with unit_of_work() as session:
                for n in range(start, min(start + args.per_transaction, args.entries)):
                    audit.record(session, actor_id=None, action="benchmark.appended",
                                 subject=n, subject_type="benchmark", details={"n": n})
        appended = time.perf_counter() - started
        started = time.perf_counter()
        report = audit.verify_chain(db.session)
        verified = time.perf_counter() - started
    print(f"database            {url.split(':')[0]}")
    print(f"entries             {report.entries}")
    print(f"append entries/s    {args.entries / appended:,.0f}  "
          f"({args.per_transaction} per transaction)")
    print(f"verify entries/s    {report.entries / verified:,.0f}  (valid={report.valid})")


if __name__ == "__main__":
    main()
