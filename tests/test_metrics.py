"""GET /metrics: Prometheus text with request rate and latency per route, and the
exchange's business counts read from the database without counting whole tables; behind
METRICS_TOKEN when one is set, and not served in production without one."""

from __future__ import annotations

import re

import pytest
import sqlalchemy as sa
from prometheus_client.parser import text_string_to_metric_families

from app.extensions import db
from app.parties.models import Role
from benchmarks.listings_search import recorded_statements
from credit.models import CreditEntry
from tests.factories import make_member
from tests.orders.factories import give_completed_order, listed_product, order_body


def samples(client) -> dict[tuple[str, tuple], float]:  # type: ignore[no-untyped-def]
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.mimetype == "text/plain"
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(response.get_data(as_text=True))
            for sample in family.samples}


def test_requests_are_counted_and_timed_per_route_template(client):
    member = make_member(Role.BUYER)
    before = samples(client)
    for _ in range(3):
        client.get("/api/v1/parties/me", headers=member.headers)
    after = samples(client)
    key = ("exchange_http_requests_total",
           (("method", "GET"), ("route", "/api/v1/parties/me"), ("status", "200")))
    assert after[key] - before.get(key, 0) == 3
    count = ("exchange_http_request_duration_seconds_count",
             (("method", "GET"), ("route", "/api/v1/parties/me")))
    assert after[count] - before.get(count, 0) == 3
    # Routes are templates, not paths: one series per route, whatever the ids.
    assert not any(re.search(r"[0-9a-f]{8}-[0-9a-f]{4}-", str(labels))
                   for _, labels in after)


def test_business_counts_come_from_the_database(client):
    merchant, buyer = make_member(Role.MERCHANT), make_member(Role.BUYER)
    listing = listed_product(client, merchant)
    for _ in range(2):
        assert client.post("/api/v1/orders", json=order_body(listing),
                           headers=buyer.headers).status_code == 201
    metrics = samples(client)
    assert metrics[("exchange_orders", (("status", "pending_payment"),))] == 2
    assert metrics[("exchange_orders_settled", ())] == 0
    assert ("exchange_ledger_transactions", ()) in metrics


# Who may scrape


TOKEN = "metrics-" + "x" * 32


def test_with_a_token_configured_a_scrape_must_carry_it(app, client, monkeypatch):
    monkeypatch.setitem(app.config, "METRICS_TOKEN", TOKEN)
    operator = make_member(Role.OPERATOR)

    for headers in ({}, {"Authorization": "Bearer wrong"}, operator.headers,
                    {"Authorization": TOKEN}):
        refused = client.get("/metrics", headers=headers)
        assert refused.status_code == 401, headers
        assert refused.mimetype == "application/problem+json"
        assert "exchange_" not in refused.get_data(as_text=True)
    scraped = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert scraped.status_code == 200
    assert "exchange_http_requests_total" in scraped.get_data(as_text=True)


def test_without_a_token_production_does_not_serve_metrics(app, client, monkeypatch):
    monkeypatch.setitem(app.config, "ENV_NAME", "production")
    monkeypatch.setitem(app.config, "METRICS_TOKEN", None)

    response = client.get("/metrics")

    assert response.status_code == 404
    assert "exchange_" not in response.get_data(as_text=True)


# What a scrape costs


BUSINESS_TABLES = ("orders", "payouts", "order_settlements", "credit_entries",
                   "ledger_transactions")


@pytest.mark.postgres_only
def test_a_scrape_on_postgresql_counts_no_whole_table(app, client):
    with recorded_statements(app) as statements:
        samples(client)
    reads = [statement for statement, _ in statements
             if re.search(rf"\bFROM ({'|'.join(BUSINESS_TABLES)})\b", statement)]
    # Only the orders still in flight are counted, through the (status, expires_at) index.
    assert len(reads) == 1, reads
    assert re.search(r"WHERE orders\.status IN", reads[0]), reads[0]


@pytest.mark.postgres_only
def test_settled_and_finished_counts_on_postgresql_are_its_statistics(app, client):
    merchant, buyer = make_member(Role.MERCHANT), make_member(Role.BUYER)
    listing = listed_product(client, merchant)
    for _ in range(3):
        give_completed_order(client, buyer.id, listing["id"])
    for _ in range(2):
        assert client.post("/api/v1/orders", json=order_body(listing),
                           headers=buyer.headers).status_code == 201
    with db.engine.begin() as connection:
        connection.execute(sa.text("ANALYZE orders, credit_entries, ledger_transactions"))
        credit_entries = connection.scalar(sa.select(sa.func.count()).select_from(CreditEntry))

    after = samples(client)

    assert after[("exchange_orders", (("status", "completed"),))] == 3
    assert after[("exchange_orders", (("status", "pending_payment"),))] == 2
    assert after[("exchange_orders", (("status", "refunded"),))] == 0
    assert after[("exchange_credit_events", ())] == credit_entries
