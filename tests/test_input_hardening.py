"""Hostile or absurd input is refused with a clear 4xx, never a 500."""

from __future__ import annotations

import uuid

from app.parties.models import Role
from tests.factories import PartyBodyFactory, make_member
from tests.listings.factories import listing_body

PROBLEM = "application/problem+json"


def test_nul_characters_in_a_body_are_refused(client):
    response = client.post("/api/v1/parties", json=PartyBodyFactory(name="Evil\x00Co"))
    assert response.status_code == 422
    assert response.mimetype == PROBLEM


def test_nul_characters_in_a_query_are_refused(client):
    operator = make_member(Role.OPERATOR)
    response = client.get("/api/v1/parties?q=a%00b", headers=operator.headers)
    assert response.status_code == 422


def test_dates_near_the_ends_of_the_calendar_are_refused(client):
    operator = make_member(Role.OPERATOR)
    for moment in ("9999-12-31T23:00:00-05:00", "0001-01-01T00:30:00+01:00"):
        response = client.post("/api/v1/admission-rules", headers=operator.headers, json={
            "list": "negative", "name": "Far future", "reason": "probe",
            "categories": ["x"], "effective_to": moment})
        assert response.status_code == 422, response.json
        assert "effective_to" in response.json["errors"]


def test_a_page_beyond_any_offset_is_empty_not_an_error(client):
    operator = make_member(Role.OPERATOR)
    response = client.get(f"/api/v1/parties?page={10**23}", headers=operator.headers)
    assert response.status_code == 200
    assert response.json == []


def test_a_domain_422_without_field_errors_still_carries_errors(client):
    merchant = make_member(Role.MERCHANT)
    body = listing_body(merchant)
    body["rights"]["holder_id"] = str(uuid.uuid4())
    response = client.post("/api/v1/listings", json=body, headers=merchant.headers)
    assert response.status_code == 422
    assert response.json["code"] == "unknown_party"
    assert response.json["errors"] == {"_schema": [response.json["detail"]]}


def test_an_outsider_cannot_tell_which_party_ids_exist(client):
    buyer = make_member(Role.BUYER)
    other = make_member(Role.MERCHANT)
    missing = client.get(f"/api/v1/parties/{uuid.uuid4()}", headers=buyer.headers)
    existing = client.get(f"/api/v1/parties/{other.id}", headers=buyer.headers)
    assert missing.status_code == existing.status_code == 403


def test_absurd_prices_and_pages_on_the_catalog_and_blacklist_are_not_errors(client):
    buyer = make_member(Role.BUYER)
    too_big = client.get(f"/api/v1/listings?max_price={10**23}", headers=buyer.headers)
    assert too_big.status_code == 422
    far_page = client.get(f"/api/v1/credit/blacklist?page={10**23}")
    assert far_page.status_code == 200
    assert far_page.json == []


def test_booleans_and_numbers_in_a_body_must_be_json_booleans_and_numbers(client):
    merchant = make_member(Role.MERCHANT)
    body = listing_body(merchant)
    body["usage_scope"]["derivatives"] = 0
    body["contains_personal_info"] = "false"
    body["revenue_shares"] = [{"party_id": merchant.id, "role": "holder",
                               "basis": "contribution", "weight": "1.5"}]
    response = client.post("/api/v1/listings", json=body, headers=merchant.headers)
    assert response.status_code == 422
    assert {"usage_scope", "contains_personal_info", "revenue_shares"} <= set(
        response.json["errors"])


def test_an_implausible_date_names_the_query_parameter_as_sent(client):
    party = make_member(Role.MERCHANT)
    response = client.get(f"/api/v1/parties/{party.id}/statement?from=0203-09-04T14:54:12Z",
                          headers=party.headers)
    assert response.status_code == 422
    assert set(response.json["errors"]) == {"from"}
