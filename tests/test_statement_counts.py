"""SQL statements per list request: the same at page size 10 and 100 for every paginated
endpoint (an N+1 fails the build), within a budget per endpoint. Every paginated GET in the
OpenAPI document must be listed here and measured by benchmarks/statement_counts.py (which
`make bench` runs on PostgreSQL too), so a new list endpoint is measured as well."""

from __future__ import annotations

from benchmarks.statement_counts import count_statements, paginated_gets

# Statements per request: authentication, then COUNT and the page; more where the endpoint
# reads more, once per page: the blacklist which of the page's findings are under objection;
# matching the demand, both parties' restrictions, the binding bands, the candidates, the
# merchants' levels and the certifications.
BUDGET = {
    "/api/v1/parties": 3, "/api/v1/listings": 3, "/api/v1/admission-rules": 3,
    "/api/v1/credit/blacklist": 4, "/api/v1/guide-prices": 3, "/api/v1/orders": 3,
    "/api/v1/demands": 3, "/api/v1/settlement/runs": 3, "/api/v1/payouts": 3,
    "/api/v1/parties/{party_id}/statement": 3,
    "/api/v1/demands/{demand_id}/matches": 7,
    "/api/v1/listings/{listing_id}/matches": 7,
}


def test_every_paginated_endpoint_is_measured(client):
    assert paginated_gets(client) == set(BUDGET)


def test_list_requests_cost_the_same_statements_at_any_page_size(app, client):
    measured = count_statements(app, client)
    assert set(measured) == set(BUDGET), "benchmarks/statement_counts.py measures other endpoints"
    unequal = {t: c for t, c in measured.items() if c[0] != c[1]}
    assert not unequal, f"statements grow with the page (N+1): {unequal}"
    over = {t: c[0] for t, c in measured.items() if c[0] > BUDGET[t]}
    assert not over, f"over budget: {over}"
