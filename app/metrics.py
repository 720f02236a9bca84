"""Prometheus metrics at GET /metrics: request rate and latency per route, and the
exchange's business counts (orders by status, settled orders, credit events, payouts).

Request metrics are counted in each process; under gunicorn set PROMETHEUS_MULTIPROC_DIR
(gunicorn.conf.py marks dead workers) and every worker's samples are added up. The business
counts are read from the database at scrape time, so they are exact whatever the number of
processes and never count a transaction that rolled back.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import Any

from flask import Flask, Response, g, request
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
from sqlalchemy import func, select

REQUESTS = Counter("exchange_http_requests_total", "HTTP requests answered",
                   ["method", "route", "status"])
LATENCY = Histogram("exchange_http_request_duration_seconds", "Time to answer a request",
                    ["method", "route"],
                    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0))


class BusinessCollector(Collector):
    """Counts read from the database when Prometheus scrapes."""

    def __init__(self, app: Flask) -> None:
        self.app = app

    def collect(self) -> Iterator[GaugeMetricFamily]:
        from app import ledger
        from app.extensions import db
        from credit.models import CreditEntry
        from orders.models import Order
        from settlement.models import OrderSettlement, Payout

        with self.app.app_context():
            session = db.session
            orders = GaugeMetricFamily("exchange_orders", "Orders by status", labels=["status"])
            for status, count in session.execute(
                    select(Order.status, func.count()).group_by(Order.status)):
                orders.add_metric([status.value], count)
            yield orders
            payouts = GaugeMetricFamily("exchange_payouts", "Payouts by status",
                                        labels=["status"])
            for status, count in session.execute(
                    select(Payout.status, func.count()).group_by(Payout.status)):
                payouts.add_metric([status.value], count)
            yield payouts
            for name, doc, model in (
                    ("exchange_orders_settled", "Orders settled", OrderSettlement),
                    ("exchange_credit_events", "Entries on the credit ledger", CreditEntry),
                    ("exchange_ledger_transactions", "Ledger transactions",
                     ledger.LedgerTransaction)):
                yield GaugeMetricFamily(name, doc, value=session.scalar(
                    select(func.count()).select_from(model)) or 0)
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
