"""The many-workers soak in short (benchmarks/soak.py): two gunicorn hosts and the scheduler on
one PostgreSQL database, the whole trade flow driven from client threads over both hosts, a
worker killed with SIGKILL part-way; the command must exit 0 with every invariant count 0.

The command runs in a subprocess against a database of its own, `<name>_soak` next to the
TEST_DATABASE_URL database on the same server, created here and dropped afterwards: the soak
drops its schema and starts processes of its own, so it never touches the suite's database.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa
from psycopg import sql

ROOT = Path(__file__).resolve().parent.parent
SECONDS = 25
CHECK = re.compile(r"^\s+\[(?:ok|FAIL)\] (.+): (\d+)$", re.MULTILINE)
# The checks the command prints (each a count that must be 0); at least these.
REQUIRED_CHECKS = {
    "oversold licenses", "orders settled twice",
    "ledger and settlement violations (settlement.verification)",
    "cached balances differing from their entries", "evidence log failing verification",
    "entries never integrated", "entries integrated twice",
    "checkpoints inconsistent with the previous",
    "credit entries not matching their leaves", "acknowledged orders missing", "5xx answers",
    "refunded money paid out (reversals clawing back)",
    "settlement runs left running behind a later run",
    "orders refunded before delivery other than once and in full",
    "non_delivery findings recorded twice",
}


def _libpq(url: sa.URL, database: str) -> str:
    return url.set(drivername="postgresql", database=database).render_as_string(
        hide_password=False)


@pytest.fixture
def soak_database(backend: str) -> Iterator[str]:
    """A fresh database `<suite database>_soak` on the suite's PostgreSQL server."""
    url = sa.make_url(backend)
    name = f"{url.database}_soak"
    drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
    # Connected to the suite's database only to create and drop the other one.
    with psycopg.connect(_libpq(url, url.database or "postgres"), autocommit=True) as admin:
        admin.execute(drop)
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield _libpq(url, name)
    finally:
        with psycopg.connect(_libpq(url, url.database or "postgres"),
                             autocommit=True) as admin:
            admin.execute(drop)


@pytest.mark.postgres_only
def test_two_hosts_and_the_scheduler_under_load_with_a_worker_killed_keep_every_invariant(
        soak_database: str) -> None:
    started = time.monotonic()
    # A timeout kills the command; its processes die with it (PR_SET_PDEATHSIG).
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.soak", "--database-url", soak_database,
         "--seconds", str(SECONDS), "--clients", "6", "--job-every", "4",
         "--payment-ttl-minutes", "0"],
        cwd=ROOT, capture_output=True, text=True, timeout=SECONDS + 300)
    output = f"{done.stdout}\n{done.stderr}\n(ran {time.monotonic() - started:.0f} s)"

    assert done.returncode == 0, output
    checks = {name: int(count) for name, count in CHECK.findall(done.stdout)}
    assert set(checks) >= REQUIRED_CHECKS, output
    assert {name: count for name, count in checks.items() if count} == {}, output
    assert re.search(r"^result\s+0 violation", done.stdout, re.MULTILINE), output
    # It did soak: orders acknowledged, settled, and the killed worker replaced.
    acknowledged = re.search(r"orders acknowledged \(201\)\s+(\d+)", done.stdout)
    settled = re.search(r"orders settled\s+(\d+)", done.stdout)
    assert acknowledged and int(acknowledged.group(1)) > 0, output
    assert settled and int(settled.group(1)) > 0, output
    # Paid orders cancelled by their buyers, and the non-delivery job run beside them.
    refunded = re.search(r"refunded before delivery: by the buyer / for non-delivery\s+"
                         r"(\d+) / (\d+)", done.stdout)
    assert refunded and int(refunded.group(1)) > 0, output
    assert re.search(r"^jobs run .*refund_undelivered_orders \d", done.stdout,
                     re.MULTILINE), output
    assert re.search(r"worker kill .*SIGKILL to worker \d+ .*gunicorn started worker",
                     done.stdout), output
    assert "sealer kill   SIGKILL mid-batch" in done.stdout, output
