"""Every benchmark in one run on a scratch PostgreSQL database, printed as one table of figures
against their targets.

    python -m benchmarks.suite --database-url URL [--quick] [--port 8642]

Needs a scratch PostgreSQL database (each benchmark drops and rebuilds its schema in turn),
`wrk` and `pgbench`. Each row is measured in the same run as its baseline (HTTP rounds
alternate with the bare endpoint's or pgbench's; batched settlement follows one order per
transaction on the same data), medians of three rounds where there are rounds. --quick
scales everything down to check the table end to end in a few minutes: its figures are not
the targets' sizes.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypeVar

import psycopg
import sqlalchemy as sa

from benchmarks import (
    artifact_upload,
    audit_chain,
    credit_blacklist,
    introspection,
    listing_read,
    listings_search,
    log_proofs,
    matching,
    merge_delay,
    order_placement,
    order_spread,
    settlement,
    statement_counts,
)
from benchmarks.listings_search import percentile


@dataclass(frozen=True)
class Scale:
    """How big each benchmark runs."""

    listings: int  # the catalog GET /listings/{id} reads from
    match_sizes: tuple[int, int]
    orders: int  # settled in batches, after `single` one per transaction
    single: int
    parties: int
    events: int  # credit events on the chain the blacklist reads
    audit_entries: int
    searched_listings: int
    deals: int
    seconds: int  # per HTTP or pgbench round
    rounds: int
    requests: int  # timed requests per figure of the in-process benchmarks
    upload_mib: int  # the file uploaded through the service and copied with cp
    tokens: int  # access tokens beside the one introspected
    introspections: int  # timed introspections of each kind
    log_leaves: int  # the evidence log the proofs are served from


# The sizes the targets are stated at.
FULL = Scale(listings=100_000, match_sizes=(10_000, 100_000), orders=100_000, single=5_000,
             parties=100_000, events=1_000_000, audit_entries=100_000,
             searched_listings=100_000, deals=100_000, seconds=10, rounds=3, requests=300,
             upload_mib=1024, tokens=100_000, introspections=2_000, log_leaves=10_000_000)
QUICK = Scale(listings=2_000, match_sizes=(2_000, 20_000), orders=2_000, single=500,
              parties=2_000, events=20_000, audit_entries=5_000, searched_listings=2_000,
              deals=2_000, seconds=2, rounds=3, requests=100, upload_mib=64, tokens=5_000,
              introspections=300, log_leaves=100_000)

WORKERS, CONNECTIONS = 4, 8  # gunicorn's sync workers; wrk's and pgbench's connections
STATEMENT_BUDGET = 3  # per list request, at any page size
TARGETS = {"read": 0.35, "orders": 0.50, "open_loop_p99_ms": 25.0, "matching": 1.5,
           "settlement": 5.0, "blacklist_p99_ms": 10.0, "upload": 0.5,
           "introspection_p99_ms": 5.0, "spread": 0.25, "merge_load_s": 1.0,
           "merge_sustained_s": 2.0, "inclusion_p99_ms": 10.0, "evidence_p99_ms": 20.0,
           "verify_leaves_per_s": 50_000}
SUSTAINED_ENTRIES = 1_000  # per second, for the merge delay


@dataclass
class Row:
    """One line of the table: the issue's row number, what, how much, against what."""

    number: str
    measure: str
    figure: str
    target: str = "—"
    met: bool | None = None  # None: a figure without a target


def read_rows(figures: listing_read.ReadFigures) -> list[Row]:
    errors = sum(r[3] for r in figures.reads + figures.bares)
    return [Row("1", f"GET /listings/{{id}} ÷ GET /healthz, req/s ({figures.listings:,} "
                     "listings)",
                f"{figures.read_rps:,.0f} ÷ {figures.bare_rps:,.0f} = {figures.ratio:.2f}"
                + (f", {errors} errors" if errors else ""),
                f"≥ {TARGETS['read']:.2f}", figures.ratio >= TARGETS["read"] and not errors)]


def order_rows(figures: order_placement.OrderFigures) -> list[Row]:
    errors = sum(r[3] for r in figures.http_rounds)
    opened = figures.open_loop
    return [
        Row("2", "POST /orders of one product ÷ pgbench running the same SQL, per s "
                 "(the listing's row lock bounds both)",
            f"{figures.http_rps:,.0f} ÷ {figures.sql_tps:,.0f} = {figures.ratio:.2f}"
            + (f", {errors} errors" if errors else ""),
            f"≥ {TARGETS['orders']:.2f}", figures.ratio >= TARGETS["orders"] and not errors),
        Row("2", f"POST /orders open-loop at {opened.rate:,.0f}/s "
                 f"({opened.rate / figures.http_rps:.0%} of max), p50 / p99 from due time",
            f"{opened.p50:.1f} / {opened.p99:.1f} ms (send lag p99 {opened.lag_p99:.1f})"
            + (f", {opened.failures} failed" if opened.failures else ""),
            f"p99 ≤ {TARGETS['open_loop_p99_ms']:.0f} ms",
            opened.p99 <= TARGETS["open_loop_p99_ms"] and not opened.failures),
    ]


def spread_rows(figures: order_spread.SpreadFigures) -> list[Row]:
    rows = []
    for mode in order_spread.MODES:
        counts = sorted(count for each, count in figures.rounds if each == mode)
        rows += [Row("8", f"POST /orders SQL over {figures.listings:,} listings ÷ pgbench -N, "
                          f"-M {mode}, {clients} clients, tps",
                     f"{figures.orders_tps(mode, clients):,.0f} ÷ "
                     f"{figures.simple_tps(mode, clients):,.0f} = "
                     f"{figures.ratio(mode, clients):.2f}",
                     f"≥ {TARGETS['spread']:.2f}",
                     figures.ratio(mode, clients) >= TARGETS["spread"])
                 for clients in counts]
        low, high = counts[0], counts[-1]
        rows.append(Row("8", f"-M {mode}: the same ratio at {high} clients ÷ at {low}",
                        f"{figures.ratio(mode, high) / figures.ratio(mode, low):.2f}", "≥ 1.00",
                        figures.ratio(mode, high) >= figures.ratio(mode, low)))
    for name, cost in (("one order", figures.order), ("one -N transaction", figures.simple)):
        rows.append(Row("8", f"{name}: statements, WAL bytes without / with page images "
                             "(medians), index entries",
                        f"{cost.statements}, {cost.wal_record_bytes:,.0f} / "
                        f"{cost.wal_bytes:,.0f}, {cost.index_entries}"))
    delays = figures.delays
    rows.append(Row("9", f"merge delay p99 under the order load ({delays.rate:,.0f} "
                         "entries/s), commit → in the log",
                    f"{delays.p99:.2f} s (p50 {delays.p50:.2f}, never sealed "
                    f"{delays.never_sealed})", f"≤ {TARGETS['merge_load_s']:.0f} s",
                    delays.p99 <= TARGETS["merge_load_s"] and not delays.never_sealed))
    return rows


def merge_rows(delays: merge_delay.DelayFigures) -> list[Row]:
    return [Row("9", f"merge delay p99 at {SUSTAINED_ENTRIES:,} entries/s "
                     f"(achieved {delays.rate:,.0f}/s)",
                f"{delays.p99:.2f} s (p50 {delays.p50:.2f}, never sealed "
                f"{delays.never_sealed})", f"≤ {TARGETS['merge_sustained_s']:.0f} s",
                delays.p99 <= TARGETS["merge_sustained_s"] and not delays.never_sealed)]


def proof_rows(figures: log_proofs.ProofFigures) -> list[Row]:
    healthz = percentile(figures.healthz, 0.99)
    inclusion, verify = percentile(figures.inclusion, 0.99), percentile(figures.verify, 0.99)
    return [
        Row("10", f"inclusion proof over HTTP p99, {figures.leaves:,} leaves "
                  f"(GET /healthz p99 {healthz:.1f} ms)", f"{inclusion:.1f} ms",
            f"≤ {TARGETS['inclusion_p99_ms']:.0f} ms", inclusion <= TARGETS["inclusion_p99_ms"]),
        Row("10", f"POST /evidence/verify p99, {figures.leaves:,} leaves",
            f"{verify:.1f} ms" + ("" if figures.verified else ", NOT valid"),
            f"≤ {TARGETS['evidence_p99_ms']:.0f} ms",
            verify <= TARGETS["evidence_p99_ms"] and figures.verified),
    ]


def statement_rows(figures: statement_counts.StatementFigures) -> list[Row]:
    rows = [Row("3", f"SQL statements, GET {template}", f"{small} / {large} (page 10 / 100)",
                f"equal, ≤ {STATEMENT_BUDGET}", small == large and large <= STATEMENT_BUDGET)
            for template, (small, large) in figures.counts.items()]
    if figures.unmeasured:
        rows.append(Row("3", "paginated GETs not measured", ", ".join(sorted(
            figures.unmeasured)), "none", False))
    return rows


def matching_rows(figures: matching.MatchingFigures) -> list[Row]:
    (small, (_, small_p99, _)), (large, (_, large_p99, _)) = figures.results.items()
    return [Row("4", f"matching p99, one demand, {small:,} → {large:,} listings",
                f"{small_p99:.1f} → {large_p99:.1f} ms = {figures.p99_ratio:.2f}x",
                f"≤ {TARGETS['matching']}x", figures.p99_ratio <= TARGETS["matching"])]


def settlement_rows(figures: settlement.SettlementFigures) -> list[Row]:
    return [Row("5", f"settlement, batches of {figures.batch} ÷ one order per transaction",
                f"{figures.batch_rate:,.0f} ÷ {figures.single_rate:,.0f} orders/s = "
                f"{figures.ratio:.1f}x ({figures.batch_orders:,} orders)"
                + ("" if figures.verified else ", ledger NOT verified"),
                f"≥ {TARGETS['settlement']:.0f}x",
                figures.ratio >= TARGETS["settlement"] and figures.verified)]


def credit_rows(figures: credit_blacklist.CreditFigures) -> list[Row]:
    return [Row("6", f"blacklist p99, {label} ({figures.events:,} events)", f"{p99:.2f} ms",
                f"≤ {TARGETS['blacklist_p99_ms']:.0f} ms", p99 <= TARGETS["blacklist_p99_ms"])
            for label, _, p99 in figures.queries]


def chain_rows(audit: audit_chain.AuditFigures,
               credit: credit_blacklist.CreditFigures) -> list[Row]:
    # No target: figures to compare between runs; a broken chain is still a failure.
    return [Row("7", "evidence log full verification (flask audit verify), leaves/s",
                f"{audit.verify_rate:,.0f} leaves/s ({audit.chain_entries:,}"
                f"{'' if audit.chain_valid else ', INVALID'})",
                f"≥ {TARGETS['verify_leaves_per_s']:,}",
                audit.chain_valid and audit.verify_rate >= TARGETS["verify_leaves_per_s"]),
            Row("7", "credit ledger verification (entries against their leaves, and the log)",
                f"{credit.verify_rate:,.0f} entries/s ({credit.ledger_entries:,}"
                f"{'' if credit.ledger_valid else ', INVALID'})",
                met=None if credit.ledger_valid else False)]


def upload_rows(figures: artifact_upload.UploadFigures) -> list[Row]:
    cp, upload = (statistics.median(seconds) for seconds in (figures.cp_seconds,
                                                              figures.upload_seconds))
    mib = figures.size / 1024**2
    return [Row("8", f"artifact upload through the service ÷ cp, MiB/s ({mib:,.0f} MiB file)",
                f"{mib / upload:,.0f} ÷ {mib / cp:,.0f} = {figures.ratio:.2f} "
                f"(÷ cp + sync: {figures.ratio_with_sync:.2f}; ÷ gunicorn's bare read: "
                f"{figures.ratio_to_drain:.2f})",
                f"≥ {TARGETS['upload']:.2f}", figures.ratio >= TARGETS["upload"]),
            Row("8", "service worker's peak RSS during the uploads",
                f"{figures.peak_rss / 1024**2:,.0f} MiB (before: "
                f"{figures.rss_before / 1024**2:,.0f} MiB)")]


def introspection_rows(figures: introspection.IntrospectionFigures) -> list[Row]:
    (_, active), (_, unknown), (_, baseline) = figures.active, figures.unknown, figures.baseline
    return [Row("9", f"POST /oauth/introspect p99 in process, live / unknown token "
                     f"({figures.tokens:,} tokens; GET /parties/me beside it)",
                f"{active:.2f} / {unknown:.2f} ms (baseline {baseline:.2f}; "
                f"{figures.statements} statements)",
                f"≤ {TARGETS['introspection_p99_ms']:.0f} ms",
                figures.p99 <= TARGETS["introspection_p99_ms"])]


def search_rows(figures: listings_search.SearchFigures) -> list[Row]:
    # What `make bench` printed before the suite, kept as figures without a target.
    name, (_, p99, _) = max(figures.searches.items(), key=lambda item: item[1][1])
    return [Row("+", f"listing search p99, slowest of {len(figures.searches)} "
                     f"({figures.listings:,} listings)", f"{p99:.1f} ms ({name})"),
            Row("+", f"price guidance p99 ({figures.deals:,} deals)",
                f"{figures.guidance[1]:.1f} ms")]


T = TypeVar("T")


def timed(name: str, durations: dict[str, float], call: Callable[[], T]) -> T:
    """Run one benchmark, reporting progress on stderr (stdout is the table)."""
    print(f"… {name}", file=sys.stderr, flush=True)
    started = time.perf_counter()
    result = call()
    durations[name] = time.perf_counter() - started
    print(f"  {name}: {durations[name]:.0f} s", file=sys.stderr, flush=True)
    return result


def postgres_version(database_url: str) -> str:
    libpq_url = sa.make_url(database_url).set(drivername="postgresql").render_as_string(False)
    with psycopg.connect(libpq_url) as connection:
        row = connection.execute("SELECT version()").fetchone()
    assert row is not None  # SELECT without FROM returns one row
    return row[0].split(",")[0]  # "PostgreSQL 16.4 (...) on x86_64-pc-linux-gnu"


def run(database_url: str, scale: Scale, port: int) -> tuple[list[Row], dict[str, float]]:
    """Every benchmark in turn on the database; the table's rows and each one's seconds."""
    durations: dict[str, float] = {}
    rows: list[Row] = []
    rows += read_rows(timed("listing_read", durations, lambda: listing_read.measure(
        database_url, listings=scale.listings, seconds=scale.seconds, rounds=scale.rounds,
        workers=WORKERS, connections=CONNECTIONS, port=port)))
    rows += order_rows(timed("order_placement", durations, lambda: order_placement.measure(
        database_url, seconds=scale.seconds, rounds=scale.rounds, workers=WORKERS,
        connections=CONNECTIONS, port=port)))
    rows += spread_rows(timed("order_spread", durations, lambda: order_spread.measure(
        database_url, seconds=scale.seconds, rounds=scale.rounds)))
    rows += merge_rows(timed("merge_delay", durations, lambda: merge_delay.measure(
        database_url, rate=SUSTAINED_ENTRIES, seconds=2 * scale.seconds)))
    rows += proof_rows(timed("log_proofs", durations, lambda: log_proofs.measure(
        database_url, leaves=scale.log_leaves, requests=5 * scale.requests, verify_leaves=0,
        port=port)))
    rows += statement_rows(timed("statement_counts", durations,
                                 lambda: statement_counts.measure(database_url)))
    rows += matching_rows(timed("matching", durations, lambda: matching.measure(
        database_url, sizes=scale.match_sizes, requests=scale.requests)))
    rows += settlement_rows(timed("settlement", durations, lambda: settlement.measure(
        database_url, orders=scale.orders, single=scale.single)))
    credit = timed("credit_blacklist", durations, lambda: credit_blacklist.measure(
        database_url, parties_count=scale.parties, events=scale.events,
        rounds=scale.requests))
    rows += credit_rows(credit)
    audit = timed("audit_chain", durations, lambda: audit_chain.measure(
        database_url, entries=scale.audit_entries))
    rows += chain_rows(audit, credit)
    rows += introspection_rows(timed("introspection", durations, lambda: introspection.measure(
        database_url, tokens=scale.tokens, requests=scale.introspections)))
    rows += search_rows(timed("listings_search", durations, lambda: listings_search.measure(
        database_url, listings=scale.searched_listings, requests=scale.requests,
        deals=scale.deals)))
    rows += upload_rows(timed("artifact_upload", durations, lambda: artifact_upload.measure(
        size=scale.upload_mib * 1024**2, rounds=scale.rounds, port=port,
        database_url=database_url)))
    return rows, durations


def print_table(rows: list[Row], header: list[tuple[str, str]]) -> None:
    for label, value in header:
        print(f"{label:<10} {value}")
    print()
    widths = [max(len(getattr(row, field)) for row in rows) for field in ("measure", "figure")]
    print(f"{'#':<2} {'measure':<{widths[0]}}  {'figure':<{widths[1]}}  {'target':<14} met")
    for row in rows:
        met = {True: "yes", False: "NO", None: "—"}[row.met]
        print(f"{row.number:<2} {row.measure:<{widths[0]}}  {row.figure:<{widths[1]}}  "
              f"{row.target:<14} {met}")
    judged = [row for row in rows if row.met is not None]
    print()
    print(f"targets met: {sum(1 for row in judged if row.met)} of {len(judged)}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", required=True,
                        help="a scratch PostgreSQL database: its schema is dropped")
    parser.add_argument("--quick", action="store_true",
                        help="scaled down (2,000 listings, 20,000 events, 2 s rounds)")
    parser.add_argument("--port", type=int, default=order_placement.PORT,
                        help="gunicorn's port")
    args = parser.parse_args(argv)
    if not sa.make_url(args.database_url).drivername.startswith("postgresql"):
        sys.exit("the suite needs a scratch PostgreSQL database")
    order_placement.require_tools("wrk", "pgbench")

    started_at = datetime.now(UTC)
    started = time.perf_counter()
    scale = QUICK if args.quick else FULL
    rows, durations = run(args.database_url, scale, args.port)
    total = time.perf_counter() - started

    minutes, seconds = divmod(round(total), 60)
    print_table(rows, [
        ("run", f"{started_at:%Y-%m-%d %H:%M} UTC, {minutes} min {seconds} s"
                + (" — QUICK: scaled down, not the targets' sizes" if args.quick else "")),
        ("machine", f"{os.cpu_count()} cores ({platform.machine()}, {platform.system()} "
                    f"{platform.release()}); {postgres_version(args.database_url)}"),
        ("setup", f"gunicorn {WORKERS} sync workers on :{args.port}, wrk and pgbench with "
                  f"{CONNECTIONS} connections on the same machine, {scale.rounds} alternating "
                  f"rounds of {scale.seconds} s, medians; {scale.requests} requests per "
                  "in-process figure"),
        ("times", ", ".join(f"{name} {seconds:.0f} s" for name, seconds in durations.items())),
    ])


if __name__ == "__main__":
    main()
