"""Trading credit reaches listings: bans refuse, prohibited attempts are findings, level A
earns the fast track, certifications earn credit."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from flask.testing import FlaskClient

from app import clock
from app.parties.models import Role
from tests.factories import Member, make_member
from tests.listings.factories import listing_body

LISTINGS = "/api/v1/listings"


def _create(client: FlaskClient, merchant: Member, **overrides: Any) -> Any:
    return client.post(LISTINGS, json=listing_body(merchant, **overrides),
                       headers=merchant.headers)


def _finding(client: FlaskClient, regulator: Member, party: Member, kind: str,
             severity: str) -> Any:
    response = client.post("/api/v1/credit/events", headers=regulator.headers, json={
        "party_id": party.id, "kind": kind, "severity": severity,
        "description": f"{kind} found by inspection"})
    assert response.status_code == 201, response.json
    return response.json


def _credit_file(client: FlaskClient, party: Member) -> dict[str, Any]:
    return client.get(f"/api/v1/credit/parties/{party.id}", headers=party.headers).json


def _positive_rule(client: FlaskClient) -> None:
    operator = make_member(Role.OPERATOR)
    response = client.post("/api/v1/admission-rules", headers=operator.headers, json={
        "list": "positive", "name": "Open transport data", "reason": "Encouraged",
        "categories": ["transport"]})
    assert response.status_code == 201, response.json


def test_a_listing_banned_merchant_can_neither_create_nor_submit_listings(client):
    merchant = make_member(Role.MERCHANT)
    regulator = make_member(Role.REGULATOR)
    draft = _create(client, merchant)
    assert draft.status_code == 201
    _finding(client, regulator, merchant, "data_tampering", "severe")

    refused_create = _create(client, merchant)
    assert refused_create.status_code == 403
    assert refused_create.json["code"] == "party_restricted"
    refused_submit = client.post(f"{LISTINGS}/{draft.json['id']}/submit",
                                 headers=merchant.headers)
    assert refused_submit.status_code == 403
    assert refused_submit.json["code"] == "party_restricted"
    listing = client.get(f"{LISTINGS}/{draft.json['id']}", headers=merchant.headers).json
    assert listing["status"] == "draft"


def test_a_fixed_listing_ban_ends_with_its_period(client):
    merchant = make_member(Role.MERCHANT)
    operator = make_member(Role.OPERATOR)
    banned = client.post("/api/v1/credit/penalties", headers=operator.headers, json={
        "party_id": merchant.id, "kind": "listing_ban", "days": 30})
    assert banned.status_code == 201, banned.json
    assert _create(client, merchant).status_code == 403

    clock.advance(timedelta(days=31))
    assert _create(client, merchant).status_code == 201


def test_a_prohibited_listing_attempt_records_a_credit_finding(client):
    merchant = make_member(Role.MERCHANT)
    draft = _create(client, merchant, classification="core")
    refused = client.post(f"{LISTINGS}/{draft.json['id']}/submit", headers=merchant.headers)
    assert refused.status_code == 422
    assert refused.json["code"] == "admission_prohibited"

    file = _credit_file(client, merchant)
    [event] = file["events"]
    assert event["kind"] == "prohibited_listing_attempt"
    assert event["points"] < 0
    assert file["score"] == 800 + event["points"]
    assert any(p["kind"] == "warning" for p in file["penalties"])


def test_a_merchant_below_level_a_goes_to_review_even_with_a_positive_match(client):
    _positive_rule(client)
    level_a = make_member(Role.MERCHANT)
    level_b = make_member(Role.MERCHANT)
    _finding(client, make_member(Role.REGULATOR), level_b, "unfair_competition", "serious")
    assert _credit_file(client, level_b)["level"] == "B"

    fast = _create(client, level_a)
    slow = _create(client, level_b)
    fast_status = client.post(f"{LISTINGS}/{fast.json['id']}/submit", headers=level_a.headers)
    slow_status = client.post(f"{LISTINGS}/{slow.json['id']}/submit", headers=level_b.headers)
    assert fast_status.json["status"] == "listed"
    assert slow_status.json["status"] == "pending_review"
    assert "credit level A" in slow_status.json["status_reason"]


def test_a_certification_earns_the_merchant_a_positive_credit_event(client):
    merchant = make_member(Role.MERCHANT)
    certifier = make_member(Role.CERTIFIER)
    draft = _create(client, merchant, classification="sensitive", anonymized=True,
                    contains_personal_info=True)
    client.post(f"{LISTINGS}/{draft.json['id']}/submit", headers=merchant.headers)
    certified = client.post(f"{LISTINGS}/{draft.json['id']}/certifications",
                            headers=certifier.headers, json={
                                "rating": "AA", "scopes": ["compliance"],
                                "valid_until": (datetime.now(UTC) + timedelta(days=365))
                                .isoformat(), "report_ref": "CERT-2026-001"})
    assert certified.status_code == 201, certified.json
    [event] = _credit_file(client, merchant)["events"]
    assert (event["kind"], event["severity"], event["points"]) == (
        "certification_obtained", "positive", 10)
