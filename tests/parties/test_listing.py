"""The parties register: operators and regulators page through it; others may not."""

from __future__ import annotations

import json

from app.parties.models import Role
from tests.factories import make_member


def test_operator_pages_through_the_register_with_an_x_pagination_header(client):
    operator = make_member(Role.OPERATOR)
    for _ in range(4):
        make_member(Role.BUYER)
    first = client.get("/api/v1/parties?page=1&page_size=2", headers=operator.headers)
    assert first.status_code == 200
    assert json.loads(first.headers["X-Pagination"]) == {
        "total": 5, "total_pages": 3, "first_page": 1, "last_page": 3, "page": 1,
        "next_page": 2, "page_size": 2}
    last = client.get("/api/v1/parties?page=3&page_size=2", headers=operator.headers)
    ids = [p["id"] for p in first.json] + [p["id"] for p in last.json]
    assert len(ids) == 3 and len(set(ids)) == 3


def test_register_filters_by_name_and_credit_code(client):
    regulator = make_member(Role.REGULATOR)
    target = make_member(Role.MERCHANT)
    by_code = client.get(f"/api/v1/parties?q={target.party.credit_code.lower()}",
                         headers=regulator.headers)
    assert [p["id"] for p in by_code.json] == [target.id]
    by_name = client.get(f"/api/v1/parties?q={target.party.name}", headers=regulator.headers)
    assert [p["id"] for p in by_name.json] == [target.id]


def test_page_size_above_100_is_refused(client):
    operator = make_member(Role.OPERATOR)
    response = client.get("/api/v1/parties?page_size=101", headers=operator.headers)
    assert response.status_code == 422
    assert response.mimetype == "application/problem+json"


def test_merchants_and_buyers_cannot_read_the_register(client):
    for role in (Role.MERCHANT, Role.BUYER, Role.BROKER, Role.CERTIFIER):
        response = client.get("/api/v1/parties", headers=make_member(role).headers)
        assert response.status_code == 403
