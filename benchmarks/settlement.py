"""Settlement throughput: completed orders with 4-way splits settled in batches, against one
order per transaction.

    python -m benchmarks.settlement --database-url URL [--orders 100000] [--single 5000]
                                    [--batch 500]

Needs a scratch database (PostgreSQL for the real figure; its schema is dropped and rebuilt).
Completed orders are bulk-loaded with a frozen plan of three contributors (collector,
processor, holder) besides the platform; `--single` of them are settled with one order per
transaction first, then `--orders` more with `--batch` orders per transaction. Each order's
settlement is its allocation lines, its settlement mark and a balanced ledger transaction.
"""

from __future__ import annotations

import argparse
import itertools
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta

import sqlalchemy as sa
from flask import Flask
from flask_migrate import upgrade

from app import clock
from app.db import unit_of_work
from app.extensions import db
from app.parties import services as parties
from app.parties.models import SYSTEM, PartyKind, Role
from benchmarks.listings_search import credit_code, scratch_app
from listings.models import Listing
from orders.models import Order
from settlement import runs
from settlement.models import OrderSettlement
from settlement.verification import verify

BATCH = 5_000


def seed_parties() -> tuple[list[uuid.UUID], uuid.UUID]:
    with unit_of_work() as session:
        ids = []
        for n, roles in enumerate([[Role.MERCHANT], [Role.MERCHANT], [Role.MERCHANT],
                                   [Role.BUYER]]):
            party, _ = parties.register_party(
                session, name=f"Settlement Bench Party {n}", credit_code=credit_code(8_000_000 + n),
                kind=PartyKind.ENTERPRISE, roles=roles, actor=SYSTEM)
            ids.append(party.id)
    return ids[:3], ids[3]


def seed_listing(merchant: uuid.UUID) -> uuid.UUID:
    now = clock.now()
    listing_id = uuid.uuid4()
    with unit_of_work() as session:
        session.execute(sa.insert(Listing.__table__).values(
            id=listing_id, merchant_id=merchant, title="Bench", description="Bench",
            category="transport", tags=[], classification="general",
            contains_personal_info=False, anonymized=False, consent_basis=None,
            source_origin="collected", source_description="Bench", source_legal_basis="Bench",
            rights_holder_id=merchant, rights_processor_ids=[], rights_operator_id=merchant,
            usage_purposes=["research"], usage_term_days=365, usage_territory="domestic",
            usage_resale=False, usage_derivatives=False, delivery_mode="api",
            price_model="one_time", unit_price=12_345, currency="CNY", licenses_available=None,
            revenue_shares=[], status="listed", quality_reports_count=0,
            quality_score_total=0, version=1, created_at=now, updated_at=now, listed_at=now))
    return listing_id


def load_orders(count: int, completed_at_offset: timedelta, payees: list[uuid.UUID],
                buyer: uuid.UUID, listing: uuid.UUID) -> None:
    collector, processor, holder = payees
    plan = {"listing_version": 1, "platform_fee_bps": 500, "shares": [
        {"party_id": str(collector), "role": "collector", "basis": "contribution",
         "weight": 30, "invested_amount": 0},
        {"party_id": str(processor), "role": "processor", "basis": "contribution",
         "weight": 20, "invested_amount": 0},
        {"party_id": str(holder), "role": "holder", "basis": "investment",
         "weight": 50, "invested_amount": 1_000_000}]}
    done = clock.now() - completed_at_offset
    rows = ({"id": uuid.uuid4(), "buyer_id": buyer, "merchant_id": holder,
             "listing_id": listing, "category": "transport", "quantity": 1 + n % 3,
             "purpose": "research", "beneficiaries": [], "unit_price": 12_345,
             "total_amount": 12_345 * (1 + n % 3), "currency": "CNY", "license": {},
             "revenue_plan": plan, "status": "completed", "payment_provider": "offline",
             "payment_status": "succeeded", "paid_amount": 12_345 * (1 + n % 3),
             "refunded_amount": 0, "expires_at": done, "paid_at": done, "delivered_at": done,
             "completed_at": done - timedelta(seconds=n % 3600), "version": 1,
             "created_at": done} for n in range(count))
    with unit_of_work() as session:
        while batch := list(itertools.islice(rows, BATCH)):
            session.execute(sa.insert(Order.__table__), batch)
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.exec_driver_sql(
            "VACUUM ANALYZE" if connection.dialect.name == "postgresql" else "ANALYZE")


def timed_settle(app: Flask, up_to_offset: timedelta, batch: int) -> tuple[float, int]:
    app.config["SETTLEMENT_BATCH_SIZE"] = batch
    started = time.perf_counter()
    run = runs.settle(up_to=clock.now() - up_to_offset, actor=None)
    return time.perf_counter() - started, run.orders_settled


@dataclass
class SettlementFigures:
    dialect: str
    batch: int
    single_orders: int
    single_seconds: float
    batch_orders: int
    batch_seconds: float
    verified: bool
    violations: int
    settled: int

    @property
    def single_rate(self) -> float:
        return self.single_orders / self.single_seconds

    @property
    def batch_rate(self) -> float:
        return self.batch_orders / self.batch_seconds

    @property
    def ratio(self) -> float:
        return self.batch_rate / self.single_rate


def measure(database_url: str | None = None, *, orders: int = 100_000, single: int = 5_000,
            batch: int = 500) -> SettlementFigures:
    """Settle `single` orders one per transaction, then `orders` in batches, then verify."""
    app = scratch_app(database_url or f"sqlite:///{tempfile.mkdtemp()}/bench.db")
    with app.app_context():
        dialect = db.engine.dialect.name
        upgrade()
        payees, buyer = seed_parties()
        listing = seed_listing(payees[2])
        load_orders(single, timedelta(days=3), payees, buyer, listing)
        single_s, single_n = timed_settle(app, timedelta(days=2), 1)
        load_orders(orders, timedelta(days=1), payees, buyer, listing)
        batch_s, batch_n = timed_settle(app, timedelta(hours=1), batch)
        db.session.remove()
        with unit_of_work() as session:
            report = verify(session)
            settled = session.scalars(
                sa.select(sa.func.count()).select_from(OrderSettlement)).one()
        db.session.remove()
        db.engine.dispose()
    return SettlementFigures(dialect, batch, single_n, single_s, batch_n, batch_s, report.ok,
                             len(report.violations), settled)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=100_000)
    parser.add_argument("--single", type=int, default=5_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--database-url")
    args = parser.parse_args()
    figures = measure(args.database_url, orders=args.orders, single=args.single,
                      batch=args.batch)
    single_n, batch_n = figures.single_orders, figures.batch_orders
    print(f"database        {figures.dialect}")
    print(f"orders          {single_n:,} one per transaction, then {batch_n:,} in batches of "
          f"{args.batch}; 4-way splits (platform + 3 contributors)")
    print()
    print(f"{'settlement':<34} {'orders':>9} {'seconds':>9} {'orders/s':>10}")
    print(f"{'one order per transaction':<34} {single_n:>9,} {figures.single_seconds:>9.1f} "
          f"{figures.single_rate:>10,.0f}")
    print(f"{f'{args.batch} orders per transaction':<34} {batch_n:>9,} "
          f"{figures.batch_seconds:>9.1f} {figures.batch_rate:>10,.0f}")
    print(f"ratio batched / one per transaction: {figures.ratio:.1f}x")
    print(f"verify: ok={figures.verified} orders_settled={figures.settled:,} "
          f"violations={figures.violations}")


if __name__ == "__main__":
    main()
