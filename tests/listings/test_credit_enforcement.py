"""Trading credit reaches listings: bans refuse, prohibited attempts are findings, level A
earns the fast track, certifications earn credit."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
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


# --- certifications earn credit once, for a listing on its way to the market -------------

def _certification(rating: str = "A") -> dict[str, Any]:
    return {"rating": rating, "scopes": ["compliance"], "report_ref": "CERT-2026-002",
            "valid_until": (clock.now() + timedelta(days=365)).isoformat()}


def _certify(client: FlaskClient, certifier: Member, listing_id: str,
             rating: str = "A") -> Any:
    return client.post(f"{LISTINGS}/{listing_id}/certifications", headers=certifier.headers,
                       json=_certification(rating))


def _pending(client: FlaskClient, merchant: Member) -> str:
    draft = _create(client, merchant, classification="sensitive")
    submitted = client.post(f"{LISTINGS}/{draft.json['id']}/submit", headers=merchant.headers)
    assert submitted.json["status"] == "pending_review", submitted.json
    return draft.json["id"]


def _kinds(client: FlaskClient, party: Member) -> list[str]:
    return [event["kind"] for event in _credit_file(client, party)["events"]]


@pytest.mark.parametrize("rating", ["B", "C"])
def test_a_certification_rated_below_a_earns_no_credit(client, rating):
    merchant, certifier = make_member(Role.MERCHANT), make_member(Role.CERTIFIER)
    listing_id = _pending(client, merchant)

    assert _certify(client, certifier, listing_id, rating).status_code == 201

    assert _kinds(client, merchant) == []


def test_only_the_first_good_certification_of_a_listing_earns_credit(client):
    merchant, certifier = make_member(Role.MERCHANT), make_member(Role.CERTIFIER)
    listing_id = _pending(client, merchant)
    other_id = _pending(client, merchant)

    for rating in ("A", "AAA", "AA"):
        assert _certify(client, certifier, listing_id, rating).status_code == 201
    assert _certify(client, make_member(Role.CERTIFIER), listing_id).status_code == 201
    assert _kinds(client, merchant) == ["certification_obtained"]
    # Another product of the merchant's earns its own.
    assert _certify(client, certifier, other_id, "AA").status_code == 201
    assert _kinds(client, merchant) == ["certification_obtained"] * 2


@pytest.mark.parametrize(("status", "steps"), [
    ("rejected", [("review", "reject")]),
    ("suspended", [("review", "approve"), ("suspend", None)]),
    ("delisted", [("review", "approve"), ("delist", None)]),
])
def test_certifying_a_listing_off_the_market_earns_no_credit(client, status, steps):
    merchant, certifier = make_member(Role.MERCHANT), make_member(Role.CERTIFIER)
    operator = make_member(Role.OPERATOR)
    listing_id = _create(client, merchant).json["id"]  # general: approved uncertified
    client.post(f"{LISTINGS}/{listing_id}/submit", headers=merchant.headers)
    for step, decision in steps:
        body = {"reason": "Checked"} | ({"decision": decision} if decision else {})
        moved = client.post(f"{LISTINGS}/{listing_id}/{step}", headers=operator.headers,
                            json=body)
        assert moved.status_code == 200, moved.json
    assert moved.json["status"] == status

    certified = _certify(client, certifier, listing_id, "AAA")

    assert certified.status_code == 201, certified.json
    assert _kinds(client, merchant) == []


def test_a_certifier_cannot_certify_its_own_listing(client):
    merchant_certifier = make_member(Role.MERCHANT, Role.CERTIFIER)
    listing_id = _pending(client, merchant_certifier)

    refused = _certify(client, merchant_certifier, listing_id, "AAA")

    assert refused.status_code == 403, refused.json
    assert refused.json["code"] == "own_listing"
    assert _kinds(client, merchant_certifier) == []
    trace = client.get(f"{LISTINGS}/{listing_id}/trace", headers=merchant_certifier.headers)
    assert "listing.certified" not in [entry["action"] for entry in trace.json]
    detail = client.get(f"{LISTINGS}/{listing_id}", headers=merchant_certifier.headers)
    assert detail.json["certifications"] == []


@pytest.mark.postgres_only
def test_concurrent_certifications_of_one_listing_earn_credit_once(app, client):
    merchant = make_member(Role.MERCHANT)
    certifiers = [make_member(Role.CERTIFIER) for _ in range(6)]
    listing_id = _pending(client, merchant)
    start = threading.Barrier(len(certifiers))
    statuses: list[int] = []
    errors: list[BaseException] = []

    def certify(certifier: Member) -> None:
        try:
            own_client = app.test_client()
            start.wait()
            statuses.append(_certify(own_client, certifier, listing_id, "AA").status_code)
        except BaseException as error:  # surfaced in the main thread
            errors.append(error)

    threads = [threading.Thread(target=certify, args=(c,)) for c in certifiers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors
    assert statuses == [201] * len(certifiers)
    assert _kinds(client, merchant) == ["certification_obtained"]
