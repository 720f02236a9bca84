"""SQL statements per list request: the same at page size 10 and 100 for every paginated
endpoint (an N+1 fails the build), within a budget per endpoint. Every paginated GET in the
OpenAPI document must be listed here and measured by benchmarks/statement_counts.py (which
`make bench` runs on PostgreSQL too), so a new list endpoint is measured as well."""

from __future__ import annotations

from benchmarks.statement_counts import count_statements, paginated_gets

# Statements per request: authentication, then COUNT and the page (the blacklist's dispute
# flags are a column of its page). The two matching lists read what they match first: the
# demand (or the listing with its certifications), whether the caller may trade, and the
# binding guide prices of the category; the demand's ranked candidates are one query with
# each merchant's level and best rating (on PostgreSQL after a SET LOCAL that has it planned
# for the demand's values), the listing's fitting demands a COUNT and a page. A party's
# consents are a COUNT and a page (each with its listing, joined); a listing's consents, a
# party's qualifications and a certifier's accreditations first read the listing or party.
BUDGET = {
    "/api/v1/parties": 3, "/api/v1/listings": 3, "/api/v1/admission-rules": 3,
    "/api/v1/credit/blacklist": 3, "/api/v1/guide-prices": 3, "/api/v1/orders": 3,
    "/api/v1/licenses": 3, "/api/v1/demands": 3, "/api/v1/settlement/runs": 3, "/api/v1/payouts": 3,
    "/api/v1/parties/{party_id}/statement": 3,
    "/api/v1/demands/{demand_id}/matches": 6,
    "/api/v1/listings/{listing_id}/matches": 6,
    # Its merchant's: the listing is read first, to refuse anyone else.
    "/api/v1/listings/{listing_id}/artifacts": 4,
    "/api/v1/consents": 3,
    "/api/v1/listings/{listing_id}/consents": 4,
    "/api/v1/parties/{party_id}/qualifications": 4,
    "/api/v1/certifiers/{party_id}/accreditations": 4,
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
