"""GET /metrics: Prometheus text with request rate and latency per route, and the
exchange's business counts read from the database."""

from __future__ import annotations

import re

from prometheus_client.parser import text_string_to_metric_families

from app.parties.models import Role
from tests.factories import make_member
from tests.orders.factories import listed_product, order_body


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
