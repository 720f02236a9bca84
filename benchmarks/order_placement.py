"""Order placement over HTTP (gunicorn, PostgreSQL) against pgbench running the same SQL.

    python -m benchmarks.order_placement --database-url URL [--seconds 10] [--rounds 3]
                                         [--workers 4] [--connections 8] [--port 8642]

Needs a scratch PostgreSQL database (its schema is dropped and rebuilt), `wrk` and `pgbench`.
One real POST /orders is recorded statement by statement; those statements, with the
request's own values, become the pgbench script (new ids and the idempotency key per
transaction), so both sides run the same transaction. Each round runs pgbench, then wrk
against gunicorn, each after the buyer's unpaid orders are expired (`close_unpaid`); the
table shows medians of the rounds, the ratio, and latency at 60 % of the measured maximum
rate, measured open-loop (benchmarks/open_loop.py: requests sent on a fixed schedule, each
latency counted from the request's due time, so a stall is not hidden as it is by wrk,
which waits for each answer).
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from http.client import HTTPConnection
from pathlib import Path
from typing import Any

import psycopg
import sqlalchemy as sa
from flask_migrate import upgrade

from app.db import unit_of_work
from app.extensions import db
from app.log.note import Signer
from app.parties import services as parties
from app.parties.models import SYSTEM, PartyKind, Role
from benchmarks import open_loop
from benchmarks.listings_search import credit_code, percentile, recorded_statements, scratch_app

ORDERS = "/api/v1/orders"
PORT = 8642
ROOT = Path(__file__).resolve().parent.parent


def listing_body(merchant_id: str, **overrides: Any) -> dict[str, Any]:
    """A listing of the merchant's that admission lets through (a billion licences)."""
    return {
        "title": "Shanghai road traffic flows", "description": "Hourly vehicle counts.",
        "category": "transport", "tags": ["traffic"], "classification": "general",
        "contains_personal_info": False, "anonymized": False, "consent_basis": None,
        "source": {"origin": "collected", "description": "Roadside sensors",
                   "legal_basis": "Sensor operating licence"},
        "rights": {"holder_id": merchant_id, "processor_ids": [], "operator_id": merchant_id},
        "usage_scope": {"purposes": ["research"], "term_days": 365, "territory": "domestic",
                        "resale": False, "derivatives": True},
        "delivery_mode": "api", "price_model": "subscription", "unit_price": 120_000,
        "currency": "CNY", "licenses_available": 10**9, "revenue_shares": [], **overrides}


def seed(app: Any) -> tuple[str, str]:
    """A listed product with a billion licenses and a buyer; returns (listing id, buyer key)."""
    client = app.test_client()
    with app.app_context(), unit_of_work() as session:
        keys = {}
        for n, (name, roles) in enumerate([("Bench Operator", [Role.OPERATOR]),
                                           ("Bench Merchant", [Role.MERCHANT]),
                                           ("Bench Buyer", [Role.BUYER])]):
            party, issued = parties.register_party(
                session, name=f"{name} Co.", credit_code=credit_code(9_000_000 + n),
                kind=PartyKind.ENTERPRISE, roles=roles, actor=SYSTEM)
            keys[name] = ({"Authorization": f"Bearer {issued.raw}"}, str(party.id))
    merchant_headers, merchant_id = keys["Bench Merchant"]
    created = client.post("/api/v1/listings", json=listing_body(merchant_id),
                          headers=merchant_headers)
    assert created.status_code == 201, created.json
    listing_id = created.json["id"]
    client.post(f"/api/v1/listings/{listing_id}/submit", headers=merchant_headers)
    reviewed = client.post(f"/api/v1/listings/{listing_id}/review",
                           headers=keys["Bench Operator"][0],
                           json={"decision": "approve", "reason": "Benchmark"})
    assert reviewed.json["status"] == "listed", reviewed.json
    return listing_id, keys["Bench Buyer"][0]["Authorization"]


def order_body(listing_id: str) -> str:
    return f'{{"listing_id": "{listing_id}", "quantity": 1, "purpose": "research"}}'


# --- the same transaction as a pgbench script ------------------------------------------------

# Values of the recorded request that must differ per transaction, by statement and parameter:
# replaced by pgbench variables (n: a random 62-bit number).
_PER_TRANSACTION = {
    ("INSERT INTO idempotency_keys", "key"): "'k' || :n",
    ("SELECT idempotency_keys", "pk_2"): "'k' || :n",
    ("UPDATE idempotency_keys", "idempotency_keys_key"): "'k' || :n",
    ("INSERT INTO orders", "id"): "lpad(to_hex(:n::bigint), 32, '0')",
    ("INSERT INTO licenses", "id"): "lpad(to_hex(:n::bigint), 32, '0')",
    ("INSERT INTO licenses", "order_id"): "lpad(to_hex(:n::bigint), 32, '0')",
    ("INSERT INTO audit_entries", "subject_id"): "lpad(to_hex(:n::bigint), 32, '0')",
    # The time just before the commit, as the service writes it (merge delays count from it).
    ("INSERT INTO audit_entries", "occurred_at"): "clock_timestamp()",
}


def pgbench_script(statements: list[tuple[str, Any]], connection: psycopg.Connection) -> str:
    """The recorded statements as one pgbench transaction, values inlined."""
    cursor = psycopg.ClientCursor(connection)
    lines = ["\\set n random(1, 4611686018427387903)", "BEGIN;"]
    for statement, parameters in statements:
        params = dict(parameters or {})
        marks = {}
        for (starts, name), expression in _PER_TRANSACTION.items():
            if statement.lstrip().startswith(starts) and name in params:
                marks[f"@@{name}@@"] = expression
                params[name] = f"@@{name}@@"
        sql = cursor.mogrify(statement, params) if params else statement
        for mark, expression in marks.items():
            sql = sql.replace(f"'{mark}'", expression)
        lines.append(" ".join(sql.split()) + ";")
    lines.append("COMMIT;")
    return "\n".join(lines) + "\n"


def run_pgbench(script: Path, url: str, seconds: int, connections: int,
                log_dir: Path, mode: str = "simple") -> tuple[float, float, float]:
    """Transactions per second, p50 and p99 in milliseconds (`mode`: pgbench's -M)."""
    for old in log_dir.glob("pgbench_log*"):
        old.unlink()
    parsed = sa.make_url(url)
    out = subprocess.run(
        ["pgbench", "-n", "-M", mode, "-c", str(connections), "-j", "2", "-T", str(seconds),
         "-f", str(script), "-l", "--log-prefix", str(log_dir / "pgbench_log"),
         "-h", parsed.host or "127.0.0.1", "-p", str(parsed.port or 5432),
         "-U", parsed.username or "postgres", parsed.database or "postgres"],
        capture_output=True, text=True, check=True).stdout
    tps = float(re.search(r"tps = ([\d.]+)", out).group(1))  # type: ignore[union-attr]
    latencies = [int(line.split()[2]) / 1000 for log in log_dir.glob("pgbench_log*")
                 for line in log.read_text().splitlines()]
    return tps, statistics.median(latencies), percentile(latencies, 0.99)


# --- HTTP: gunicorn, wrk, and open-loop requests ---------------------------------------------

WRK_SCRIPT = """
local counter = 0
local prefix
function setup(thread) thread:set("prefix", tostring(math.random(1, 2147483647))) end
function init(args) prefix = wrk.thread:get("prefix") or tostring(math.random(1, 2147483647)) end
request = function()
  counter = counter + 1
  return wrk.format("POST", "%(path)s", {
    ["Authorization"] = "%(auth)s", ["Content-Type"] = "application/json",
    ["Idempotency-Key"] = prefix .. "-" .. counter}, '%(body)s')
end
"""


# The Debian packages of the load generators the HTTP benchmarks run.
TOOL_PACKAGES = {"wrk": "wrk", "pgbench": "postgresql"}


def require_tools(*tools: str) -> None:
    """Exit at once, naming the package, when a load generator is not installed."""
    for tool in tools:
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is not installed (Debian: apt-get install {TOOL_PACKAGES[tool]})")


def start_gunicorn(url: str, workers: int, port: int = PORT,
                   signing_key: str | None = None) -> subprocess.Popen:
    """gunicorn with production settings on the port, once it answers /healthz; the log's
    checkpoints signed with `signing_key` (by default a key of its own)."""
    # Another server on the port would answer the health check and take the load unnoticed.
    with socket.socket() as probe:
        if probe.connect_ex(("127.0.0.1", port)) == 0:
            raise RuntimeError(f"port {port} is in use: choose another with --port")
    # Production settings, but no abuse limits: the load is one buyer ordering flat out (and
    # leaving every order unpaid, so its unpaid licenses of the listing are not capped).
    env = {**os.environ, "APP_ENV": "production", "DATABASE_URL": url,
           "SECRET_KEY": secrets.token_urlsafe(48), "LOG_LEVEL": "WARNING",
           "LOG_SIGNING_KEY": signing_key or Signer.generate("exchange.local/log").skey,
           "BIND": f"127.0.0.1:{port}", "WEB_CONCURRENCY": str(workers),
           "RATE_LIMITS_ENABLED": "false", "UNPAID_LICENSES_PER_BUYER_PER_LISTING": str(10**9)}
    server = subprocess.Popen([str(Path(sys.executable).parent / "gunicorn"), "-c",
                               str(ROOT / "gunicorn.conf.py")], cwd=ROOT, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and server.poll() is None:
        try:
            connection = HTTPConnection("127.0.0.1", port, timeout=1)
            connection.request("GET", "/healthz")
            if connection.getresponse().status == 200:
                return server
        except OSError:
            time.sleep(0.2)
    server.kill()
    raise RuntimeError(f"gunicorn did not start on port {port}")


def stop(server: subprocess.Popen) -> None:
    server.send_signal(signal.SIGTERM)
    server.wait(timeout=30)


def run_wrk(script: Path, seconds: int, connections: int,
            port: int = PORT) -> tuple[float, float, float, int]:
    """Requests per second, p50 and p99 in milliseconds, and non-2xx responses."""
    out = subprocess.run(
        ["wrk", "-t", "2", "-c", str(connections), "-d", f"{seconds}s", "--latency",
         "-s", str(script), f"http://127.0.0.1:{port}"],
        capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return rps, _wrk_ms(out, "50%"), _wrk_ms(out, "99%"), int(errors.group(1)) if errors else 0


def _wrk_ms(out: str, label: str) -> float:
    value, unit = re.search(rf"{label}\s+([\d.]+)(us|ms|s)", out).groups()  # type: ignore
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def open_loop_orders(listing_id: str, auth: str, rate: float, seconds: int,
                     port: int = PORT) -> open_loop.OpenLoopFigures:
    """POST /orders sent open-loop at `rate` per second, each with its own Idempotency-Key."""
    body = order_body(listing_id).encode()
    run_id = secrets.token_hex(4)
    host = f"127.0.0.1:{port}"

    def request(n: int) -> bytes:
        return open_loop.http_request("POST", ORDERS, host, {
            "Authorization": auth, "Content-Type": "application/json",
            "Idempotency-Key": f"open-{run_id}-{n}"}, body)

    return open_loop.run(f"http://{host}", request, rate=rate, seconds=seconds)


@dataclass
class OrderFigures:
    """Rounds of pgbench and of wrk (alternating), and the open-loop run at 60 % of wrk's
    rate."""

    statements: int  # SQL statements of one POST /orders
    workers: int
    connections: int
    seconds: int
    sql_rounds: list[tuple[float, float, float]]  # tps, p50 ms, p99 ms
    http_rounds: list[tuple[float, float, float, int]]  # req/s, p50 ms, p99 ms, errors
    open_loop: open_loop.OpenLoopFigures

    @property
    def sql_tps(self) -> float:
        return statistics.median(r[0] for r in self.sql_rounds)

    @property
    def http_rps(self) -> float:
        return statistics.median(r[0] for r in self.http_rounds)

    @property
    def ratio(self) -> float:
        return self.http_rps / self.sql_tps


def close_unpaid(url: str) -> None:
    """Expire the buyer's unpaid orders, as the scheduler would: each order counts the
    buyer's unpaid licenses of the listing under its row lock, which a real buyer keeps to
    UNPAID_LICENSES_PER_BUYER_PER_LISTING (10) but the one benchmark buyer, its cap lifted,
    would pile up to tens of thousands, making every round slower than the one before."""
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute("UPDATE orders SET status = 'expired', closed_at = now() "
                           "WHERE status = 'pending_payment'")


def record_order(database_url: str) -> tuple[str, str, str, list[tuple[str, Any]]]:
    """A fresh schema, the market seeded, and one POST /orders recorded statement by
    statement: (database URL, listing id, buyer's Authorization, statements)."""
    app = scratch_app(database_url)
    url = app.config["SQLALCHEMY_DATABASE_URI"]
    with app.app_context():
        upgrade()
        db.session.remove()
    listing_id, auth = seed(app)
    with recorded_statements(app) as statements:
        response = app.test_client().post(ORDERS, data=order_body(listing_id), headers={
            "Authorization": auth, "Content-Type": "application/json",
            "Idempotency-Key": "recorded"})
    assert response.status_code == 201, response.json
    with app.app_context():
        db.engine.dispose()
    return url, listing_id, auth, statements


def measure(database_url: str, *, seconds: int = 10, rounds: int = 3, workers: int = 4,
            connections: int = 8, port: int = PORT) -> OrderFigures:
    """Record one order's SQL, then alternate pgbench and wrk rounds, then send open-loop at
    60 % of wrk's rate."""
    url, listing_id, auth, statements = record_order(database_url)
    body = order_body(listing_id)
    libpq_url = sa.make_url(url).set(drivername="postgresql").render_as_string(False)
    with psycopg.connect(libpq_url) as connection:
        script_text = pgbench_script(statements, connection)

    work = Path(tempfile.mkdtemp(prefix="bench-orders-"))
    (work / "order.sql").write_text(script_text)
    (work / "orders.lua").write_text(WRK_SCRIPT % {"path": ORDERS, "auth": auth, "body": body})
    server = start_gunicorn(libpq_url, workers, port)
    try:
        # Warm-up, not counted: prepared statements, caches and the workers' first requests.
        run_pgbench(work / "order.sql", libpq_url, 2, connections, work)
        run_wrk(work / "orders.lua", 2, connections, port)
        sql_rounds, http_rounds = [], []
        for _ in range(rounds):
            close_unpaid(libpq_url)
            sql_rounds.append(run_pgbench(work / "order.sql", libpq_url, seconds,
                                          connections, work))
            close_unpaid(libpq_url)
            http_rounds.append(run_wrk(work / "orders.lua", seconds, connections, port))
        close_unpaid(libpq_url)
        rate = 0.6 * statistics.median(r[0] for r in http_rounds)
        opened = open_loop_orders(listing_id, auth, rate, seconds, port)
    finally:
        stop(server)
    return OrderFigures(len(statements), workers, connections, seconds, sql_rounds,
                        http_rounds, opened)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--port", type=int, default=PORT, help="gunicorn's port")
    args = parser.parse_args()
    require_tools("wrk", "pgbench")
    figures = measure(args.database_url, seconds=args.seconds, rounds=args.rounds,
                      workers=args.workers, connections=args.connections, port=args.port)
    sql_rounds, http_rounds = figures.sql_rounds, figures.http_rounds

    print(f"transaction   POST {ORDERS}: {figures.statements} SQL statements, Idempotency-Key, "
          f"conditional license UPDATE, audit entries")
    print(f"setup         gunicorn {args.workers} sync workers, {args.connections} connections, "
          f"{args.rounds} alternating rounds of {args.seconds} s, medians")
    print()
    print(f"{'':<44} {'per s':>8} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}")
    print(f"{'pgbench, the same SQL':<44} {figures.sql_tps:>8.0f} "
          f"{statistics.median(r[1] for r in sql_rounds):>8.1f} "
          f"{statistics.median(r[2] for r in sql_rounds):>8.1f} {'':>7}")
    print(f"{'HTTP, wrk at full load':<44} {figures.http_rps:>8.0f} "
          f"{statistics.median(r[1] for r in http_rounds):>8.1f} "
          f"{statistics.median(r[2] for r in http_rounds):>8.1f} "
          f"{sum(r[3] for r in http_rounds):>7}")
    opened = figures.open_loop
    print(f"{f'HTTP, open-loop at {opened.rate / figures.http_rps:.0%} of the maximum':<44} "
          f"{opened.achieved:>8.0f} {opened.p50:>8.1f} {opened.p99:>8.1f} {opened.failures:>7}")
    per_round = [h[0] / s[0] for h, s in zip(http_rounds, sql_rounds, strict=True)]
    print(f"ratio HTTP / pgbench: {figures.ratio:.2f}   "
          f"(rounds: {', '.join(f'{ratio:.2f}' for ratio in per_round)})")
    print(f"open-loop: {opened.sent:,} requests due at {opened.rate:,.0f}/s, latency from each "
          f"one's due time (max {opened.max:.1f} ms); the client's send lag p99 "
          f"{opened.lag_p99:.1f} ms")


if __name__ == "__main__":
    main()
