"""Merge delay of the evidence log: from an audit entry's commit to its integration into the
tree, with the scheduler's sealer running as in production (`flask scheduler run`).

    python -m benchmarks.merge_delay --database-url URL [--rate 1000] [--seconds 20]

Needs a scratch PostgreSQL database (its schema is dropped and rebuilt) and `pgbench`.
pgbench writes audit entries at a fixed rate (`-R`, one entry per transaction, as an audited
write's transaction does) while the scheduler seals; each entry's delay is its leaf's
`integrated_at` minus its `occurred_at` (written by `clock_timestamp()` just before its
commit, so the commit's own time counts as delay). `benchmarks.order_spread` measures the
same under the order load. The latest checkpoint's age and the transactions holding the
sealer back are what `flask log status` shows operators.
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
import sqlalchemy as sa
from flask_migrate import upgrade

from app.audit import digest
from app.extensions import db
from app.log.note import Signer
from benchmarks.listings_search import percentile, scratch_app

ROOT = Path(__file__).resolve().parent.parent
RATE = 1_000
# One audited write: an entry like the service's, its digest and txid left to the database.
ENTRY_SCRIPT = (
    "\\set n random(1, 4611686018427387903)\n"
    "INSERT INTO audit_entries (occurred_at, actor_id, action, subject_type, subject_id, "
    "details, payload_digest) VALUES (clock_timestamp(), NULL, 'benchmark.appended', "
    f"'benchmark', :n, '{{\"n\": 1}}', '{digest({'n': 1})}');\n")


def libpq(url: str) -> str:
    return sa.make_url(url).set(drivername="postgresql").render_as_string(False)


@dataclass
class DelayFigures:
    """Merge delays of the entries written during one load, in seconds."""

    load: str
    entries: int
    delays: list[float]
    never_sealed: int  # entries still not in the log 30 s after the load ended
    rate: float  # entries per second written

    @property
    def p50(self) -> float:
        return statistics.median(self.delays) if self.delays else float("nan")

    @property
    def p99(self) -> float:
        return percentile(self.delays, 0.99) if self.delays else float("nan")

    @property
    def max(self) -> float:
        return max(self.delays, default=float("nan"))


def service_env(url: str) -> dict[str, str]:
    """Production settings for the scheduler process (as `benchmarks.soak` runs it)."""
    return {**os.environ, "APP_ENV": "production", "FLASK_APP": "app", "DATABASE_URL": url,
            "SECRET_KEY": secrets.token_urlsafe(48), "LOG_LEVEL": "WARNING",
            "LOG_SIGNING_KEY": Signer.generate("exchange.local/log").skey,
            "SCHEDULER_IN_WEB": "false", "PAYMENT_PROVIDER": "offline",
            "RATE_LIMITS_ENABLED": "false", "PYTHONUNBUFFERED": "1"}


@contextmanager
def scheduler(url: str) -> Iterator[subprocess.Popen]:
    """`flask scheduler run` on the database for as long as the block runs."""
    log = Path(tempfile.mkdtemp(prefix="bench-scheduler-")) / "scheduler.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [str(Path(sys.executable).parent / "flask"), "scheduler", "run"], cwd=ROOT,
            env=service_env(libpq(url)), stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True)
    try:
        time.sleep(3)  # its first runs
        if process.poll() is not None:
            raise RuntimeError(f"the scheduler exited: see {log}")
        yield process
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def last_entry(url: str) -> int:
    with psycopg.connect(libpq(url)) as connection:
        row = connection.execute("SELECT coalesce(max(id), 0) FROM audit_entries").fetchone()
    return int(row[0]) if row else 0


def wait_until_sealed(url: str, timeout: float = 600) -> None:
    """Until every committed entry is in the log (a backlog written before the measured load
    is sealed first, so its catch-up is not counted as delay)."""
    deadline = time.monotonic() + timeout
    with psycopg.connect(libpq(url), autocommit=True) as connection:
        while connection.execute(
                "SELECT EXISTS (SELECT FROM audit_entries e WHERE NOT EXISTS "
                "(SELECT FROM log_leaves l WHERE l.entry_id = e.id))").fetchone() == (True,):
            if time.monotonic() > deadline:
                raise RuntimeError(f"the backlog was not sealed within {timeout} s")
            time.sleep(0.5)


def delays_since(url: str, after_id: int, load: str, seconds: float,
                 wait_seconds: float = 30) -> DelayFigures:
    """The delays of the entries after `after_id`, once every one is sealed (or the wait
    is over)."""
    deadline = time.monotonic() + wait_seconds
    with psycopg.connect(libpq(url), autocommit=True) as connection:
        while True:
            rows = connection.execute(
                "SELECT extract(epoch FROM l.integrated_at - e.occurred_at)::float8 "
                "FROM audit_entries e LEFT JOIN log_leaves l ON l.entry_id = e.id "
                "WHERE e.id > %s", [after_id]).fetchall()
            pending = sum(1 for (delay,) in rows if delay is None)
            if not pending or time.monotonic() > deadline:
                break
            time.sleep(0.5)
    delays = [delay for (delay,) in rows if delay is not None]
    return DelayFigures(load, len(rows), delays, pending, len(rows) / seconds)


def pgbench(url: str, script: Path, seconds: int, clients: int,
            rate: int | None = None) -> str:
    parsed = sa.make_url(url)
    return subprocess.run(
        ["pgbench", "-n", "-M", "prepared", "-c", str(clients), "-j", "2", "-T", str(seconds),
         *(["-R", str(rate)] if rate else []), "-f", str(script),
         "-h", parsed.host or "127.0.0.1", "-p", str(parsed.port or 5432),
         "-U", parsed.username or "postgres", parsed.database or "postgres"],
        capture_output=True, text=True, check=True).stdout


def sustained(url: str, rate: int = RATE, seconds: int = 20) -> DelayFigures:
    """Entries written at `rate` per second for `seconds`, the scheduler sealing."""
    script = Path(tempfile.mkdtemp(prefix="bench-merge-")) / "entry.sql"
    script.write_text(ENTRY_SCRIPT)
    with scheduler(url):
        wait_until_sealed(url)
        after = last_entry(url)
        out = pgbench(url, script, seconds, 4, rate)
        figures = delays_since(url, after, f"{rate:,} entries/s", seconds)
    lag = re.search(r"schedule lag: avg ([\d.]+)", out)
    if lag and float(lag.group(1)) > 100:
        print(f"pgbench fell behind its schedule (lag {lag.group(1)} ms)", file=sys.stderr)
    return figures


def measure(database_url: str, *, rate: int = RATE, seconds: int = 20) -> DelayFigures:
    """On a fresh schema: the sustained-rate figure."""
    app = scratch_app(database_url)
    url = app.config["SQLALCHEMY_DATABASE_URI"]
    with app.app_context():
        upgrade()
        db.session.remove()
        db.engine.dispose()
    return sustained(url, rate, seconds)


def print_delays(figures: DelayFigures) -> None:
    print(f"{figures.load:<36} {figures.entries:>8,} entries ({figures.rate:,.0f}/s)  "
          f"merge delay p50 {figures.p50:.3f} s, p99 {figures.p99:.3f} s, "
          f"max {figures.max:.3f} s; never sealed {figures.never_sealed}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--rate", type=int, default=RATE)
    parser.add_argument("--seconds", type=int, default=20)
    args = parser.parse_args()
    print_delays(measure(args.database_url, rate=args.rate, seconds=args.seconds))


if __name__ == "__main__":
    main()
