"""Prometheus metrics at GET /metrics: request rate and latency per route, and the
exchange's business counts (orders by status, settled orders, credit events, payouts).

Request metrics are counted in each process; under gunicorn set PROMETHEUS_MULTIPROC_DIR
(gunicorn.conf.py marks dead workers) and every worker's samples are added up. Business counts
are read at scrape time without counting whole tables, which grow for ever: the orders still in
flight are counted through the (status, expires_at) index; every other figure is, on
PostgreSQL, its statistics (a table's rows from pg_class, a status's share from pg_stats), as
fresh as the last ANALYZE that autovacuum runs as tables change. SQLite, the embedded
development database, counts.

A scrape carries `Authorization: Bearer <METRICS_TOKEN>`; without a token configured the
metrics are served in development and testing, and not at all in production (404).
"""

from __future__ import annotations

import enum
import hmac
import os
import time
from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

from flask import Flask, Response, current_app, g, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select, text
from sqlalchemy.orm import InstrumentedAttribute, Session

from app import limits
from app.errors import NotFound, Unauthorized
from app.parties.auth import bearer_token

REQUESTS = Counter("exchange_http_requests_total", "HTTP requests answered",
                   ["method", "route", "status"])
LATENCY = Histogram("exchange_http_request_duration_seconds", "Time to answer a request",
                    ["method", "route"],
                    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0))

E = TypeVar("E", bound=enum.Enum)

_TABLE_ROWS = text("SELECT reltuples FROM pg_class WHERE oid = to_regclass(:table)")
_VALUE_SHARES = text("""
    SELECT c.reltuples, s.most_common_vals::text::text[] AS vals, s.most_common_freqs AS freqs
    FROM pg_class c JOIN pg_stats s ON s.schemaname = current_schema()
        AND s.tablename = c.relname AND s.attname = :column
    WHERE c.oid = to_regclass(:table)""")


def table_rows(session: Session, model: Any) -> int:
    """A table's rows: PostgreSQL's estimate, SQLite's count."""
    if session.get_bind().dialect.name != "postgresql":
        return session.scalar(select(func.count()).select_from(model)) or 0
    rows = session.scalar(_TABLE_ROWS, {"table": model.__tablename__})
    return max(0, round(rows or 0))  # -1 until the table is first analysed


def rows_by_value(session: Session, column: InstrumentedAttribute[E],
                  values: Iterable[E]) -> dict[E, int]:
    """Rows holding each value of an enum column: PostgreSQL's estimate (its share among
    the column's most common values times the table's rows), SQLite's count."""
    wanted = list(values)
    if session.get_bind().dialect.name != "postgresql":
        counted: dict[E, int] = dict(session.execute(
            select(column, func.count()).where(column.in_(wanted)).group_by(column)
        ).tuples().all())
        return {value: counted.get(value, 0) for value in wanted}
    stats = session.execute(_VALUE_SHARES, {"table": column.class_.__tablename__,
                                            "column": column.key}).one_or_none()
    shares = dict(zip(stats.vals, stats.freqs, strict=True)) if stats and stats.vals else {}
    rows = max(0.0, stats.reltuples) if stats else 0.0
    return {value: round(shares.get(value.value, 0.0) * rows) for value in wanted}


class BusinessCollector(Collector):
    """Counts read from the database when Prometheus scrapes."""

    def __init__(self, app: Flask) -> None:
        self.app = app

    def collect(self) -> Iterator[GaugeMetricFamily]:
        from app import ledger
        from app.extensions import db
        from credit.models import CreditEntry
        from orders.models import Order, OrderStatus
        from settlement.models import OrderSettlement, Payout, PayoutStatus

        in_flight = [OrderStatus.PENDING_PAYMENT, OrderStatus.PAID, OrderStatus.DELIVERED,
                     OrderStatus.DISPUTED]
        with self.app.app_context():
            session = db.session()
            counted = dict(session.execute(
                select(Order.status, func.count()).where(Order.status.in_(in_flight))
                .group_by(Order.status)).tuples().all())
            by_status = {**rows_by_value(session, Order.status,
                                         (s for s in OrderStatus if s not in in_flight)),
                         **{status: counted.get(status, 0) for status in in_flight}}
            orders = GaugeMetricFamily(
                "exchange_orders", "Orders by status (finished ones estimated on PostgreSQL)",
                labels=["status"])
            for status in OrderStatus:
                orders.add_metric([status.value], by_status[status])
            yield orders
            payouts = GaugeMetricFamily("exchange_payouts",
                                        "Payouts by status (estimated on PostgreSQL)",
                                        labels=["status"])
            for payout_status, count in rows_by_value(session, Payout.status,
                                                      PayoutStatus).items():
                payouts.add_metric([payout_status.value], count)
            yield payouts
            for name, doc, model in (
                    ("exchange_orders_settled", "Orders settled", OrderSettlement),
                    ("exchange_credit_events", "Entries on the credit ledger", CreditEntry),
                    ("exchange_ledger_transactions", "Ledger transactions",
                     ledger.LedgerTransaction)):
                yield GaugeMetricFamily(name, f"{doc} (estimated on PostgreSQL)",
                                        value=table_rows(session, model))
            db.session.remove()


def init_metrics(app: Flask) -> None:
    @app.before_request
    def start_timer() -> None:
        g.metrics_started = time.perf_counter()

    @app.after_request
    def observe(response: Response) -> Response:
        started = g.get("metrics_started")
        if started is not None and request.path != "/metrics":
            route = request.url_rule.rule if request.url_rule else "unmatched"
            REQUESTS.labels(request.method, route, str(response.status_code)).inc()
            LATENCY.labels(request.method, route).observe(time.perf_counter() - started)
        return response

    app.extensions["business_metrics"] = BusinessCollector(app)


def authorize_scrape() -> None:
    """401 without the METRICS_TOKEN (a failed authentication); 404 in production when no
    token is configured."""
    token = current_app.config.get("METRICS_TOKEN")
    if not token:
        if current_app.config["ENV_NAME"] == "production":
            raise NotFound("The metrics are served with METRICS_TOKEN set.")
        return
    try:
        presented = bearer_token()
    except Unauthorized:
        presented = None
    if presented is None or not hmac.compare_digest(presented.encode(), token.encode()):
        limits.count_failed_authentication()
        raise Unauthorized("The metrics need 'Authorization: Bearer <METRICS_TOKEN>'.")


def exposition(app: Flask) -> Response:
    """Every metric in Prometheus's text format (all workers' under gunicorn)."""
    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.MultiProcessCollector(registry)
    else:
        registry.register(_ProcessMetrics())
    registry.register(app.extensions["business_metrics"])
    return Response(generate_latest(registry), mimetype=CONTENT_TYPE_LATEST)


class _ProcessMetrics(Collector):
    """This process's request metrics (the default registry's), without a shared registry."""

    def collect(self) -> Iterator[Any]:
        yield from REQUESTS.collect()
        yield from LATENCY.collect()
