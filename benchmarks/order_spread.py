"""The recorded POST /orders transaction replayed by pgbench over many listings, against
pgbench's own simple-update (`-N`) on the same server in the same run.

    python -m benchmarks.order_spread --database-url URL [--listings 1000] [--clients 8 32]
                                      [--seconds 10] [--rounds 3]

Needs a scratch PostgreSQL database (its schema is dropped and rebuilt) and `pgbench`.
One real POST /orders is recorded statement by statement (as `benchmarks.order_placement`
does); its listing becomes one of `--listings` copies, drawn at random per transaction, so
orders wait on one another only where every order does, not on one listing's row lock.
pgbench -N runs on pgbench's own tables in the same database. At each client count the two
alternate for `--rounds` rounds; the table shows medians and the ratio.

Beside the rates, what one order costs the server, measured one transaction at a time on a
connection of its own: statements, WAL bytes (pg_current_wal_insert_lsn before and after,
median of many: other databases on the server write WAL too), and the rows and index entries
it writes, against one -N transaction measured the same way.
"""

from __future__ import annotations

import argparse
import contextlib
import random
import re
import shutil
import statistics
import subprocess
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import sqlalchemy as sa

from benchmarks import merge_delay
from benchmarks.order_placement import ORDERS, pgbench_script, record_order, run_pgbench

LISTINGS = 1_000
# The listing of a transaction: listing number :l of the copies (ids 1 .. LISTINGS as UUIDs).
LISTING_ID = "lpad(to_hex(:l::int), 32, '0')"
_LITERAL = re.compile(r"'(?:[^']|'')*'")
# What pgbench -N runs (its built-in "simple-update"), for the per-transaction cost.
SIMPLE_UPDATE = """\\set aid random(1, 100000 * :scale)
\\set bid random(1, 1 * :scale)
\\set tid random(1, 10 * :scale)
\\set delta random(-5000, 5000)
BEGIN;
UPDATE pgbench_accounts SET abalance = abalance + :delta WHERE aid = :aid;
SELECT abalance FROM pgbench_accounts WHERE aid = :aid;
INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) \
VALUES (:tid, :bid, :aid, :delta, CURRENT_TIMESTAMP);
END;
"""


def libpq(url: str) -> str:
    return sa.make_url(url).set(drivername="postgresql").render_as_string(False)


def copy_listing(url: str, listing_id: str, count: int) -> None:
    """`count` copies of the listing, with ids 1 .. count (as UUIDs)."""
    with psycopg.connect(libpq(url)) as connection:
        columns = [name for (name,) in connection.execute(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_schema = 'public' AND table_name = 'listings' "
            "ORDER BY ordinal_position")]
        others = ", ".join(name for name in columns if name != "id")
        connection.execute(
            f"INSERT INTO listings (id, {others}) "
            f"SELECT lpad(to_hex(g), 32, '0')::uuid, {others} "
            f"FROM listings, generate_series(1, {count}) g WHERE id = %s", [listing_id])


def spread(script: str, listing_id: str, count: int) -> str:
    """The script with its listing drawn among the copies: `\\set l` per transaction, and the
    listing's id, wherever a literal holds it, computed from :l."""
    hex_id, dashed = uuid.UUID(listing_id).hex, str(uuid.UUID(listing_id))

    def literal(match: re.Match[str]) -> str:
        text = match.group(0)
        if text == f"'{hex_id}'":
            return LISTING_ID
        if dashed not in text:
            return text
        return "(" + f"' || {LISTING_ID}::uuid || '".join(text.split(dashed)) + ")"

    return f"\\set l random(1, {count})\n" + _LITERAL.sub(literal, script)


MODES = ("simple", "prepared")


def prepared(script: str) -> str:
    """The script for pgbench -M prepared, which takes every `:word` for a variable, even in
    a string literal (JSON's `"checksum":null`): there the colon is written as E'\\x3a'."""

    def literal(match: re.Match[str]) -> str:
        text = match.group(0)
        if not re.search(r":[A-Za-z_]", text[1:-1]):
            return text
        return "E'" + text[1:-1].replace("\\", "\\\\").replace(":", "\\x3a") + "'"

    return "\n".join(line if line.startswith("\\") else _LITERAL.sub(literal, line)
                     for line in script.splitlines()) + "\n"


@dataclass
class TransactionCost:
    """What one transaction writes, measured alone."""

    statements: int
    wal_bytes: float  # median
    rows: dict[str, int] = field(default_factory=dict)  # table → rows inserted or updated
    index_entries: int = 0
    wal_record_bytes: float = 0.0  # median, without full-page images


@dataclass
class SpreadFigures:
    listings: int
    seconds: int
    # (pgbench's -M, clients) → [(orders tps, -N tps)], in alternating rounds
    rounds: dict[tuple[str, int], list[tuple[float, float]]]
    order: TransactionCost
    simple: TransactionCost
    delays: merge_delay.DelayFigures  # of the entries written under the order load

    def orders_tps(self, mode: str, clients: int) -> float:
        return statistics.median(o for o, _ in self.rounds[mode, clients])

    def simple_tps(self, mode: str, clients: int) -> float:
        return statistics.median(s for _, s in self.rounds[mode, clients])

    def ratio(self, mode: str, clients: int) -> float:
        return statistics.median(o / s for o, s in self.rounds[mode, clients])


def _run_script(connection: psycopg.Connection, script: str, values: dict[str, int]) -> int:
    """Run a pgbench script's transaction once, its variables replaced; its statements. Its
    transaction id is read just before its COMMIT, into `_LAST_XID`."""
    global _LAST_XID
    lines = [line for line in script.splitlines() if line and not line.startswith("\\")]
    for line in lines:
        if line.rstrip(";").upper() in ("COMMIT", "END"):
            _LAST_XID = int(_one(connection, "SELECT pg_current_xact_id()::text"))
        connection.execute(re.sub(r":(\w+)", lambda m: str(values[m.group(1)])
                                  if m.group(1) in values else m.group(0), line).rstrip(";"))
    return len(lines) - 2  # BEGIN and COMMIT / END


_LAST_XID = 0


def _waldump(major: int) -> str | None:
    """pg_waldump of this PostgreSQL (major version `major`), if installed here: on PATH,
    beside pg_config, or where Debian puts it."""
    found = shutil.which("pg_waldump")
    if found:
        return found
    places = [f"/usr/lib/postgresql/{major}/bin"]
    with contextlib.suppress(OSError, subprocess.CalledProcessError):
        places.insert(0, subprocess.run(["pg_config", "--bindir"], capture_output=True,
                                        text=True, check=True).stdout.strip())
    found_in = [Path(place) / "pg_waldump" for place in places
                if (Path(place) / "pg_waldump").exists()]
    return str(found_in[0]) if found_in else None


def _wal_of(waldump: str, wal_dir: str, start: str, end: str,
            xid: int) -> tuple[int, int] | None:
    """The bytes of the WAL records transaction `xid` wrote between two positions: without
    and with the full-page images in them (a page's first change after a checkpoint)."""
    done = subprocess.run([waldump, "-p", wal_dir, "-s", start, "-e", end, "-x", str(xid)],
                          capture_output=True, text=True)
    # It may stop with an error at `end`, where another session's record is still being
    # written: what it printed before that is whole. Nothing without the commit record.
    if "COMMIT" not in done.stdout:
        return None
    lengths = re.findall(r"len \(rec/tot\):\s*(\d+)/\s*(\d+)", done.stdout)
    return sum(int(rec) for rec, _ in lengths), sum(int(tot) for _, tot in lengths)


_WRITES = ("SELECT relname, n_tup_ins, n_tup_upd - n_tup_hot_upd, n_tup_hot_upd "
           "FROM pg_stat_user_tables")


def _one(connection: psycopg.Connection, sql: str, *params: Any) -> Any:
    row = connection.execute(sql, params or None).fetchone()
    assert row is not None
    return row[0]


def _counts(connection: psycopg.Connection) -> dict[str, tuple[int, ...]]:
    connection.execute("SELECT pg_stat_clear_snapshot()")
    return {name: tuple(counts) for name, *counts in connection.execute(_WRITES)}


def transaction_cost(url: str, script: str, draw: dict[str, Any], samples: int = 200
                     ) -> TransactionCost:
    """Statements and median WAL bytes of the script's transaction, run alone `samples`
    times; rows written, from pg_stat_user_tables over those runs."""
    rng = random.Random(7)
    wal: list[float] = []
    records: list[float] = []
    with psycopg.connect(libpq(url), autocommit=True) as connection:
        waldump = _waldump(int(_one(connection, "SHOW server_version_num")) // 10000)
        wal_dir = str(Path(_one(connection, "SHOW data_directory")) / "pg_wal")
        before = _counts(connection)
        statements = 0
        for _ in range(samples):
            values = {name: rng.randint(*bounds) for name, bounds in draw.items()}
            start = _one(connection, "SELECT pg_current_wal_insert_lsn()::text")
            statements = _run_script(connection, script, values)
            end = _one(connection, "SELECT pg_current_wal_insert_lsn()::text")
            # Its own records (pg_waldump by transaction id) when this machine holds the
            # WAL; else the WAL position's advance, which other sessions' writes inflate.
            own = _wal_of(waldump, wal_dir, start, end, _LAST_XID) if waldump else None
            advance = float(_one(connection, "SELECT pg_wal_lsn_diff(%s::pg_lsn, %s::pg_lsn)",
                                 end, start))
            wal.append(float(own[1]) if own else advance)
            records.append(float(own[0]) if own else advance)
        # A backend reports its statistics when idle, at most once a second.
        connection.execute("SELECT pg_sleep(1.5)")
        after = _counts(connection)
        indexes: dict[str, int] = dict(connection.execute(
            "SELECT tablename, count(*) FROM pg_indexes WHERE schemaname = 'public' "
            "GROUP BY tablename").fetchall())
    rows: dict[str, int] = {}
    index_entries = 0.0
    for name, (inserted, cold, hot) in after.items():
        old = before.get(name, (0, 0, 0))
        new, updated_cold, updated_hot = (inserted - old[0], cold - old[1], hot - old[2])
        if new + updated_cold + updated_hot >= samples // 2:
            rows[name] = round((new + updated_cold + updated_hot) / samples)
            # An insert or an update that is not HOT adds an entry to every index.
            index_entries += (new + updated_cold) * indexes.get(name, 0) / samples
    return TransactionCost(statements, statistics.median(wal), rows, round(index_entries),
                           statistics.median(records))


def measure(database_url: str, *, listings: int = LISTINGS, clients: tuple[int, ...] = (8, 32),
            seconds: int = 10, rounds: int = 3) -> SpreadFigures:
    """Record one order's SQL, spread it over the listings, then alternate pgbench -N and the
    order script at each client count."""
    url, listing_id, _, statements = record_order(database_url)
    copy_listing(url, listing_id, listings)
    with psycopg.connect(libpq(url)) as connection:
        script = spread(pgbench_script(statements, connection), listing_id, listings)
    parsed = sa.make_url(url)
    target = ["-h", parsed.host or "127.0.0.1", "-p", str(parsed.port or 5432),
              "-U", parsed.username or "postgres", parsed.database or "postgres"]
    subprocess.run(["pgbench", "-i", "-q", "-s", "1", *target], check=True,
                   capture_output=True)

    work = Path(tempfile.mkdtemp(prefix="bench-spread-"))
    (work / "order.sql").write_text(script)
    order = transaction_cost(url, script, {"n": (1, 2**62 - 1), "l": (1, listings)})
    simple = transaction_cost(url, SIMPLE_UPDATE.replace(":scale", "1"), {
        "aid": (1, 100_000), "bid": (1, 1), "tid": (1, 10), "delta": (-5000, 5000)})
    (work / "prepared.sql").write_text(prepared(script))
    figures: dict[tuple[str, int], list[tuple[float, float]]] = {}
    for count in clients:
        for mode in MODES:  # warm-up, not counted
            run_pgbench(work / f"{'order' if mode == 'simple' else mode}.sql", libpq(url), 2,
                        count, work, mode)
            _simple_update(target, 2, count, mode)
        for _ in range(rounds):
            for mode in MODES:
                tps = run_pgbench(work / f"{'order' if mode == 'simple' else mode}.sql",
                                  libpq(url), seconds, count, work, mode)[0]
                figures.setdefault((mode, count), []).append(
                    (tps, _simple_update(target, seconds, count, mode)))
    # The merge delay under the order load: the scheduler's sealer running as in production.
    with merge_delay.scheduler(url):
        merge_delay.wait_until_sealed(url)  # the rounds' orders, before the measured load
        after = merge_delay.last_entry(url)
        run_pgbench(work / "order.sql", libpq(url), seconds, clients[0], work)
        delays = merge_delay.delays_since(url, after, f"orders, {clients[0]} clients", seconds)
    return SpreadFigures(listings, seconds, figures, order, simple, delays)


def _simple_update(target: list[str], seconds: int, clients: int, mode: str) -> float:
    out = subprocess.run(["pgbench", "-n", "-N", "-M", mode, "-c", str(clients), "-j", "2",
                          "-T", str(seconds), *target],
                         capture_output=True, text=True, check=True).stdout
    return float(re.search(r"tps = ([\d.]+)", out).group(1))  # type: ignore[union-attr]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--listings", type=int, default=LISTINGS)
    parser.add_argument("--clients", type=int, nargs="+", default=[8, 32])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    figures = measure(args.database_url, listings=args.listings, clients=tuple(args.clients),
                      seconds=args.seconds, rounds=args.rounds)
    print(f"POST {ORDERS} replayed over {figures.listings:,} listings ÷ pgbench -N, "
          f"{args.rounds} alternating rounds of {args.seconds} s, medians")
    print(f"{'-M':>9} {'clients':>8} {'orders/s':>10} {'-N tps':>10} {'ratio':>7}  rounds")
    for mode, count in figures.rounds:
        print(f"{mode:>9} {count:>8} {figures.orders_tps(mode, count):>10,.0f} "
              f"{figures.simple_tps(mode, count):>10,.0f} {figures.ratio(mode, count):>7.2f}  "
              + ", ".join(f"{o / s:.2f}" for o, s in figures.rounds[mode, count]))
    merge_delay.print_delays(figures.delays)
    for name, cost in (("one order", figures.order), ("one -N transaction", figures.simple)):
        print(f"{name:<20} {cost.statements} statements, {cost.wal_record_bytes:,.0f} WAL bytes "
              f"({cost.wal_bytes:,.0f} with full-page images), "
              f"rows written {cost.rows}, index entries {cost.index_entries}")


if __name__ == "__main__":
    main()
