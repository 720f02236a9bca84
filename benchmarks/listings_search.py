"""Listing search figures: p50/p99 latency of catalog searches and of price guidance, and SQL
statements per request.

    python -m benchmarks.listings_search [--listings 100000] [--deals 100000]
                                         [--database-url URL] [--explain]

Uses a scratch SQLite file unless a database URL is given (its schema is dropped and rebuilt
by the migrations). Listings are bulk-loaded with Core inserts (a realistic mix of categories,
classifications, statuses, prices and 200 merchants), then searched through the Flask test
client with a buyer's real API key. Then 100,000 completed orders (deals of the last 60
days) and guide prices for half the categories are loaded, and the price guidance of listed
products is read. --explain prints the query plans of the searches.
"""

from __future__ import annotations

import argparse
import itertools
import math
import random
import re
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from flask import Flask
from flask_migrate import upgrade

from app import clock, create_app
from app.db import unit_of_work
from app.extensions import db
from app.parties import services as parties
from app.parties.credit_code import check_character
from app.parties.models import SYSTEM, Party, PartyKind, Role
from config import TestingConfig
from listings.models import GuidePrice, Listing
from orders.models import Order

SEARCH = "/api/v1/listings"
BATCH = 5_000

# (category, weight, Chinese topic words, English topic words)
CATEGORIES = [
    ("transport", 16, ["道路交通流量", "公交客流", "停车场空位", "货运轨迹", "地铁进出站"],
     ["road traffic flows", "bus ridership", "parking availability", "freight trajectories",
      "metro gate counts"]),
    ("weather", 9, ["逐小时气象观测", "降水预报", "台风路径"],
     ["hourly weather observations", "precipitation forecasts", "typhoon tracks"]),
    ("agriculture", 8, ["农作物产量估算", "土壤墒情", "农产品价格"],
     ["crop yield estimates", "soil moisture", "farm produce prices"]),
    ("energy", 8, ["用电负荷曲线", "光伏发电出力", "充电桩使用率"],
     ["electricity load curves", "solar generation output", "EV charger utilisation"]),
    ("credit", 10, ["企业信用评估摘要", "行政处罚记录", "纳税信用等级"],
     ["enterprise credit summaries", "administrative penalty records", "tax credit grades"]),
    ("finance", 9, ["供应链金融票据", "小微企业经营指数"],
     ["supply-chain finance bills", "small business activity index"]),
    ("logistics", 8, ["仓储周转率", "快递时效"], ["warehouse turnover", "parcel delivery times"]),
    ("retail", 7, ["商圈客流热力", "门店销售指数"], ["footfall heatmaps", "store sales index"]),
    ("healthcare", 5, ["医疗资源分布", "药品流通"],
     ["healthcare facility coverage", "pharmaceutical distribution"]),
    ("geospatial", 8, ["高精度地图要素", "建筑物轮廓"], ["HD map features", "building footprints"]),
    ("manufacturing", 6, ["工业设备运行", "产能利用率"],
     ["industrial equipment telemetry", "capacity utilisation"]),
    ("telecom", 6, ["基站覆盖", "网络质量"], ["cell site coverage", "network quality"]),
]
REGIONS = [("上海", "Shanghai"), ("北京", "Beijing"), ("深圳", "Shenzhen"), ("杭州", "Hangzhou"),
           ("成都", "Chengdu"), ("武汉", "Wuhan"), ("华东", "East China"), ("全国", "nationwide")]
CLASSIFICATIONS = [("open", 30), ("general", 50), ("sensitive", 15), ("important", 5)]
STATUSES = [("listed", 85), ("pending_review", 5), ("draft", 4), ("suspended", 3),
            ("delisted", 2), ("rejected", 1)]


def _weighted(pairs: list[tuple[Any, int]]) -> tuple[list[Any], list[int]]:
    return [value for value, _ in pairs], [weight for _, weight in pairs]


def credit_code(n: int) -> str:
    first17 = f"91440300MA{n:07d}"
    return first17 + check_character(first17)


def load_merchants(count: int) -> list[uuid.UUID]:
    """Merchant parties, inserted in one Core statement (no keys: they never call the API)."""
    now = clock.now()
    rows: list[dict[str, Any]] = [
        {"id": uuid.uuid4(), "name": f"Bench Merchant {n} Co.", "credit_code": credit_code(n),
         "kind": PartyKind.ENTERPRISE.value, "roles": [Role.MERCHANT.value], "created_at": now}
        for n in range(1, count + 1)]
    with unit_of_work() as session:
        session.execute(sa.insert(Party.__table__), rows)
    return [row["id"] for row in rows]


def listing_rows(count: int, merchants: list[uuid.UUID], rng: random.Random) -> Iterator[dict]:
    """Listing rows as the table stores them: a realistic catalog of data products."""
    categories = [c for c, *_ in CATEGORIES]
    weights = [w for _, w, *_ in CATEGORIES]
    topics = {c: (zh, en) for c, _, zh, en in CATEGORIES}
    classes, class_weights = _weighted(CLASSIFICATIONS)
    statuses, status_weights = _weighted(STATUSES)
    now = clock.now()
    for n in range(count):
        category = rng.choices(categories, weights)[0]
        zh_topics, en_topics = topics[category]
        topic = rng.randrange(len(zh_topics))
        region_zh, region_en = rng.choice(REGIONS)
        classification = rng.choices(classes, class_weights)[0]
        status = rng.choices(statuses, status_weights)[0]
        merchant = rng.choice(merchants)
        created = now - timedelta(seconds=rng.randrange(2 * 365 * 86400))
        # Prices from 1 yuan to 100,000 yuan, log-uniform (in fen).
        price = int(10 ** rng.uniform(2, 7))
        personal = classification in ("sensitive", "important") and rng.random() < 0.5
        yield {
            "id": uuid.uuid4(), "merchant_id": merchant,
            "title": f"{region_zh}{zh_topics[topic]} {region_en} {en_topics[topic]} #{n}",
            "description": f"{region_zh}{zh_topics[topic]}数据产品, 按日更新。{en_topics[topic]} "
                           f"for {region_en}, updated daily; product {n}.",
            "category": category, "tags": [category, region_en.lower()],
            "classification": classification, "contains_personal_info": personal,
            "anonymized": personal, "consent_basis": None,
            "source_origin": rng.choice(["collected", "public_authorized", "purchased",
                                         "derived"]),
            "source_description": "Benchmark data", "source_legal_basis": "Benchmark licence",
            "rights_holder_id": merchant, "rights_processor_ids": [],
            "rights_operator_id": merchant,
            "usage_purposes": ["research"], "usage_term_days": 365,
            "usage_territory": "domestic", "usage_resale": False, "usage_derivatives": True,
            "delivery_mode": "sandbox" if classification == "important"
                             else rng.choice(["download", "api", "sandbox"]),
            "price_model": rng.choice(["one_time", "subscription", "per_call"]),
            "unit_price": price, "currency": "CNY",
            "licenses_available": rng.choice([None, None, 10, 100]),
            "revenue_shares": [], "status": status, "status_reason": None, "admission": None,
            "review_flag": None, "quality_reports_count": 0, "quality_score_total": 0,
            "version": 1, "created_at": created, "updated_at": created,
            "listed_at": created if status == "listed" else None,
        }


def load_listings(count: int, merchants: list[uuid.UUID], rng: random.Random) -> float:
    """Bulk-insert the listings in batches; returns the seconds it took."""
    started = time.perf_counter()
    rows = listing_rows(count, merchants, rng)
    with unit_of_work() as session:
        while batch := list(itertools.islice(rows, BATCH)):
            session.execute(sa.insert(Listing.__table__), batch)
    elapsed = time.perf_counter() - started
    # The steady state autovacuum reaches after a bulk load: statistics and visibility map.
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        vacuum = "VACUUM ANALYZE" if connection.dialect.name == "postgresql" else "ANALYZE"
        connection.exec_driver_sql(vacuum)
    return elapsed


def load_deals(count: int, buyer_id: uuid.UUID, rng: random.Random) -> float:
    """Completed orders of listed products over the last 60 days, and a guide price for
    half the categories; returns the seconds the orders took to load."""
    listed = db.session.execute(sa.select(Listing.id, Listing.merchant_id, Listing.category,
                                          Listing.unit_price)
                                .where(Listing.status == "listed")).all()
    now = clock.now()
    started = time.perf_counter()
    with unit_of_work() as session:
        for start in range(0, count, BATCH):
            rows = []
            for _ in range(min(BATCH, count - start)):
                listing = rng.choice(listed)
                done = now - timedelta(seconds=rng.randrange(60 * 86400))
                rows.append({
                    "id": uuid.uuid4(), "buyer_id": buyer_id, "merchant_id": listing.merchant_id,
                    "listing_id": listing.id, "category": listing.category, "quantity": 1,
                    "purpose": "research", "beneficiaries": [],
                    "unit_price": listing.unit_price, "total_amount": listing.unit_price,
                    "currency": "CNY", "license": {}, "status": "completed",
                    "payment_provider": "offline", "payment_status": "succeeded",
                    "paid_amount": listing.unit_price, "refunded_amount": 0,
                    "expires_at": done, "paid_at": done, "delivered_at": done,
                    "completed_at": done, "version": 1, "created_at": done})
            session.execute(sa.insert(Order.__table__), rows)
        for category, *_ in CATEGORIES[::2]:
            session.add(GuidePrice(category=category, reference_price=100_000, floor_pct=50,
                                   ceiling_pct=100, binding=category == "transport",
                                   currency="CNY", effective_from=now - timedelta(days=1)))
    elapsed = time.perf_counter() - started
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.exec_driver_sql(
            "VACUUM ANALYZE" if connection.dialect.name == "postgresql" else "ANALYZE")
    return elapsed


def timed_guidance(client: Any, headers: dict[str, str], listing_ids: list[uuid.UUID],
                   requests: int) -> tuple[float, float]:
    """p50 and p99 in milliseconds of GET /listings/{id}/price-guidance."""
    latencies = []
    for n in range(requests + 10):
        started = time.perf_counter()
        response = client.get(f"{SEARCH}/{listing_ids[n % len(listing_ids)]}/price-guidance",
                              headers=headers)
        if n >= 10:  # the first ten warm up
            latencies.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, response.json
    return statistics.median(latencies), percentile(latencies, 0.99)


@contextmanager
def recorded_statements(app: Flask) -> Iterator[list[tuple[str, Any]]]:
    """Every SQL statement the application sends, with its parameters."""
    statements: list[tuple[str, Any]] = []

    def record(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any,
               executemany: bool) -> None:
        statements.append((statement, parameters))

    with app.app_context():
        engine = db.engine
    sa.event.listen(engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        sa.event.remove(engine, "before_cursor_execute", record)


def timed(client: Any, headers: dict[str, str], queries: Callable[[int], dict[str, Any]],
          requests: int) -> tuple[float, float, float]:
    """p50 and p99 in milliseconds, and the mean number of listings per page."""
    for n in range(10):  # warm-up: connections, caches
        client.get(SEARCH, query_string=queries(n), headers=headers)
    latencies, rows = [], []
    for n in range(requests):
        started = time.perf_counter()
        response = client.get(SEARCH, query_string=queries(n), headers=headers)
        latencies.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, response.json
        rows.append(len(response.json))
    return statistics.median(latencies), percentile(latencies, 0.99), statistics.mean(rows)


def percentile(values: list[float], fraction: float) -> float:
    """The nearest-rank percentile (0.99 → p99)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(fraction * len(ordered)) - 1)]


def scratch_app(database_url: str) -> Flask:
    """The app on a scratch database, emptied: the caller runs the migrations."""
    url = sa.make_url(database_url)
    if url.drivername == "postgresql":
        url = url.set(drivername="postgresql+psycopg")
    app = create_app(TestingConfig, SQLALCHEMY_DATABASE_URI=url.render_as_string(False),
                     LOG_LEVEL="WARNING")
    with app.app_context():
        if db.engine.dialect.name == "postgresql":
            with db.engine.begin() as connection:
                connection.exec_driver_sql("DROP SCHEMA public CASCADE")
                connection.exec_driver_sql("CREATE SCHEMA public")
        else:
            db.drop_all()
            db.session.execute(sa.text("DROP TABLE IF EXISTS alembic_version"))
            db.session.commit()
    return app


_COLUMNS = re.compile(r"SELECT (?:listings\.\w+(?: AS \w+)?,\s*)*listings\.\w+(?: AS \w+)?\s")


def explain(app: Flask, client: Any, headers: dict[str, str], query: dict[str, Any]) -> list[str]:
    """The plan of every listings statement one search request sends, as lines to print."""
    with recorded_statements(app) as statements:
        client.get(SEARCH, query_string=query, headers=headers)
    lines = []
    with app.app_context(), db.engine.connect() as connection:
        dialect = connection.dialect.name
        prefix = "EXPLAIN ANALYZE " if dialect == "postgresql" else "EXPLAIN QUERY PLAN "
        for statement, parameters in statements:
            if "FROM listings" not in statement:
                continue
            lines.append(f"\n-- {query}\n{_COLUMNS.sub('SELECT listings.* ', statement)}")
            for row in connection.exec_driver_sql(prefix + statement, parameters):
                lines.append(f"    {row[-1] if dialect == 'sqlite' else row[0]}")
    return lines


_WINDOWS = [(10_000, 100_000), (50_000, 500_000), (100, 5_000), (1_000_000, 5_000_000)]
_WORDS = ["traffic", "交通流量", "credit", "光伏"]
_CATEGORIES = ["transport", "credit", "energy", "weather"]
# Search name → the query of the n-th request.
SEARCHES: dict[str, Callable[[int], dict[str, Any]]] = {
    "category=transport & price range, page_size=20": lambda n: {
        "category": "transport", "min_price": _WINDOWS[n % 4][0],
        "max_price": _WINDOWS[n % 4][1], "page_size": 20},
    "category (4 kinds), page 1..5, page_size=20": lambda n: {
        "category": _CATEGORIES[n % 4], "page": 1 + n % 5, "page_size": 20},
    "q=one word (EN/ZH), page_size=20": lambda n: {"q": _WORDS[n % 4], "page_size": 20},
    "q=word & category=transport, page_size=20": lambda n: {
        "q": "traffic" if n % 2 else "交通", "category": "transport", "page_size": 20},
    "no filter (the catalog's first page)": lambda n: {"page_size": 20},
}
EXPLAINED = ["category=transport & price range, page_size=20",
             "q=one word (EN/ZH), page_size=20", "no filter (the catalog's first page)"]


@dataclass
class SearchFigures:
    dialect: str
    listings: int
    listed: int
    load_seconds: float
    searches: dict[str, tuple[float, float, float]]  # name → p50 ms, p99 ms, mean rows
    deals: int
    deals_seconds: float
    guidance: tuple[float, float]  # p50 ms, p99 ms
    statements: dict[int, int]  # page size → SQL statements per list request
    plans: list[str]  # with explain=True: the searches' query plans, as lines


def measure(database_url: str | None = None, *, listings: int = 100_000, merchants: int = 200,
            requests: int = 300, deals: int = 100_000, explain_plans: bool = False,
            ) -> SearchFigures:
    """Load the catalog, time the searches, load the deals, time the price guidance, and
    count one list request's statements at two page sizes."""
    app = scratch_app(database_url or f"sqlite:///{tempfile.mkdtemp()}/bench.db")
    rng = random.Random(20251124)
    with app.app_context():
        upgrade()
        merchant_ids = load_merchants(merchants)
        loaded = load_listings(listings, merchant_ids, rng)
        with unit_of_work() as session:
            _, issued = parties.register_party(
                session, name="Bench Buyer Co.", credit_code=credit_code(9_999_999),
                kind=PartyKind.ENTERPRISE, roles=[Role.BUYER], actor=SYSTEM)
        listed = db.session.scalars(sa.select(sa.func.count()).select_from(Listing)
                                    .where(Listing.status == "listed")).one()
        dialect = db.engine.dialect.name
        db.session.remove()

    # Requests run outside any app context, each in its own, as in production.
    client = app.test_client()
    headers = {"Authorization": f"Bearer {issued.raw}"}
    results = {name: timed(client, headers, query, requests) for name, query in SEARCHES.items()}
    with app.app_context():
        buyer_id = db.session.scalars(
            sa.select(Party.id).where(Party.name == "Bench Buyer Co.")).one()
        deals_loaded = load_deals(deals, buyer_id, rng)
        sample = list(db.session.scalars(sa.select(Listing.id).where(
            Listing.status == "listed").order_by(Listing.id).limit(requests)))
        db.session.remove()
    guidance = timed_guidance(client, headers, sample, requests)
    counts: dict[int, int] = {}
    for page_size in (10, 100):
        with recorded_statements(app) as statements:
            response = client.get(SEARCH, query_string={"category": "transport",
                                                        "page_size": page_size},
                                  headers=headers)
        assert response.status_code == 200 and len(response.get_json()) == page_size
        counts[page_size] = len(statements)
    plans = [line for name in EXPLAINED
             for line in explain(app, client, headers, SEARCHES[name](0))] \
        if explain_plans else []
    with app.app_context():
        db.engine.dispose()
    return SearchFigures(dialect, listings, listed, loaded, results, deals, deals_loaded,
                         guidance, counts, plans)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listings", type=int, default=100_000)
    parser.add_argument("--merchants", type=int, default=200)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--deals", type=int, default=100_000)
    parser.add_argument("--database-url")
    parser.add_argument("--explain", action="store_true", help="print the query plans")
    args = parser.parse_args()
    figures = measure(args.database_url, listings=args.listings, merchants=args.merchants,
                      requests=args.requests, deals=args.deals, explain_plans=args.explain)
    loaded, counts, guidance = figures.load_seconds, figures.statements, figures.guidance

    print(f"database      {figures.dialect}")
    print(f"listings      {args.listings:,} ({figures.listed:,} listed), {args.merchants} "
          f"merchants; bulk load {loaded:.1f} s ({args.listings / loaded:,.0f} rows/s)")
    print(f"viewer        a buyer with a real API key, Flask test client, {args.requests} "
          "requests per search")
    print()
    print(f"{'search (GET /api/v1/listings)':<50} {'p50 ms':>8} {'p99 ms':>8} {'rows':>6}")
    for name, (p50, p99, rows) in figures.searches.items():
        print(f"{name:<50} {p50:>8.1f} {p99:>8.1f} {rows:>6.1f}")
    print(f"{'GET /listings/{id}/price-guidance':<50} {guidance[0]:>8.1f} "
          f"{guidance[1]:>8.1f}  ({args.deals:,} completed deals, loaded in "
          f"{figures.deals_seconds:.1f} s)")
    equal = "equal" if counts[10] == counts[100] else "NOT EQUAL: N+1"
    print(f"{'SQL statements per list request, page_size=10':<50} {counts[10]:>8}")
    print(f"{'SQL statements per list request, page_size=100':<50} {counts[100]:>8}  ({equal})")
    for line in figures.plans:
        print(line)


if __name__ == "__main__":
    main()
