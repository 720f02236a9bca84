"""An operator's approval and relisting check again, as of now, what submission checked:
the admission lists in force and the merchant's listing ban; a delisting is final."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from app.parties.models import Role
from tests.factories import Member, make_member
from tests.listings.factories import listing_body

LISTINGS = "/api/v1/listings"


@pytest.fixture
def merchant(app: Flask) -> Member:
    return make_member(Role.MERCHANT)


@pytest.fixture
def operator(app: Flask) -> Member:
    return make_member(Role.OPERATOR)


def _pending(client: FlaskClient, merchant: Member) -> dict[str, Any]:
    created = client.post(LISTINGS, json=listing_body(merchant), headers=merchant.headers)
    assert created.status_code == 201, created.json
    submitted = client.post(f"{LISTINGS}/{created.json['id']}/submit", headers=merchant.headers)
    assert submitted.status_code == 200, submitted.json
    assert submitted.json["status"] == "pending_review"
    return submitted.json


def _step(client: FlaskClient, actor: Member, listing_id: str, step: str) -> Any:
    body: dict[str, Any] = {"reason": "Checked by the exchange"}
    if step in ("approve", "reject"):
        body["decision"], step = step, "review"
    return client.post(f"{LISTINGS}/{listing_id}/{step}", headers=actor.headers, json=body)


def _moved(client: FlaskClient, actor: Member, listing_id: str, step: str,
           status: str) -> dict[str, Any]:
    response = _step(client, actor, listing_id, step)
    assert response.status_code == 200, response.json
    assert response.json["status"] == status
    return response.json


def _suspended(client: FlaskClient, merchant: Member, operator: Member) -> dict[str, Any]:
    listing = _pending(client, merchant)
    _moved(client, operator, listing["id"], "approve", "listed")
    return _moved(client, operator, listing["id"], "suspend", "suspended")


def _ready_for(client: FlaskClient, merchant: Member, operator: Member,
               step: str) -> dict[str, Any]:
    """A listing the step applies to: pending review to approve, suspended to relist."""
    if step == "approve":
        return _pending(client, merchant)
    return _suspended(client, merchant, operator)


def _as_stored(client: FlaskClient, operator: Member, listing_id: str) -> dict[str, Any]:
    response = client.get(f"{LISTINGS}/{listing_id}", headers=operator.headers)
    assert response.status_code == 200, response.json
    return response.json


def _trace(client: FlaskClient, operator: Member, listing_id: str) -> list[str]:
    response = client.get(f"{LISTINGS}/{listing_id}/trace", headers=operator.headers)
    assert response.status_code == 200, response.json
    return [entry["action"] for entry in response.json]


def _negative_rule(client: FlaskClient, operator: Member, **criteria: Any) -> dict[str, Any]:
    response = client.post("/api/v1/admission-rules", headers=operator.headers, json={
        "list": "negative", "name": "No transport data for now",
        "reason": "Under review by the regulator", **criteria})
    assert response.status_code == 201, response.json
    return response.json


def _listing_ban(client: FlaskClient, operator: Member, party: Member) -> None:
    response = client.post("/api/v1/credit/penalties", headers=operator.headers, json={
        "party_id": party.id, "kind": "listing_ban", "days": 30})
    assert response.status_code == 201, response.json


def _credit_events(client: FlaskClient, party: Member) -> list[dict[str, Any]]:
    response = client.get(f"/api/v1/credit/parties/{party.id}", headers=party.headers)
    assert response.status_code == 200, response.json
    return response.json["events"]


@pytest.mark.parametrize(("step", "status"), [("approve", "pending_review"),
                                            ("relist", "suspended")])
def test_a_listing_prohibited_by_a_rule_added_since_submission_stays_off_the_market(
        client, merchant, operator, step, status):
    listing = _ready_for(client, merchant, operator, step)
    before = _as_stored(client, operator, listing["id"])
    trace_before = _trace(client, operator, listing["id"])
    rule = _negative_rule(client, operator, categories=["transport"])

    refused = _step(client, operator, listing["id"], step)

    assert refused.status_code == 422, refused.json
    assert refused.json["code"] == "admission_prohibited"
    assert [m["rule_id"] for m in refused.json["matched_rules"]] == [rule["id"]]
    # Nothing kept: not rejected, no decision stored, nothing in the trace, no credit finding
    # (the merchant attempted nothing; the operator rejects or delists with a reason).
    after = _as_stored(client, operator, listing["id"])
    assert (after["status"], after["version"], after["admission"]) == (
        status, before["version"], before["admission"])
    assert _trace(client, operator, listing["id"]) == trace_before
    assert _credit_events(client, merchant) == []


@pytest.mark.parametrize("step", ["approve", "relist"])
def test_approval_and_relisting_record_the_admission_decision_of_the_rules_in_force(
        client, merchant, operator, step):
    listing = _ready_for(client, merchant, operator, step)
    response = client.post("/api/v1/admission-rules", headers=operator.headers, json={
        "list": "positive", "name": "Open transport data", "reason": "Encouraged",
        "categories": ["transport"]})
    assert response.status_code == 201, response.json

    moved = _moved(client, operator, listing["id"], step, "listed")

    assert moved["admission"]["decision"] == "encouraged"
    assert [m["rule_id"] for m in moved["admission"]["matched_rules"]] == [response.json["id"]]


@pytest.mark.parametrize(("step", "status"), [("approve", "pending_review"),
                                            ("relist", "suspended")])
def test_a_merchant_under_a_listing_ban_cannot_have_a_listing_approved_or_relisted(
        client, merchant, operator, step, status):
    listing = _ready_for(client, merchant, operator, step)
    trace_before = _trace(client, operator, listing["id"])
    _listing_ban(client, operator, merchant)

    refused = _step(client, operator, listing["id"], step)

    assert refused.status_code == 403, refused.json
    assert refused.json["code"] == "party_restricted"
    assert _as_stored(client, operator, listing["id"])["status"] == status
    assert _trace(client, operator, listing["id"]) == trace_before


@pytest.mark.parametrize("withdrawn_by", ["merchant", "operator"])
def test_a_delisted_listing_cannot_be_relisted_even_by_an_operator(client, merchant, operator,
                                                                   withdrawn_by):
    listing = _pending(client, merchant)
    _moved(client, operator, listing["id"], "approve", "listed")
    actor = merchant if withdrawn_by == "merchant" else operator
    delisted = _moved(client, actor, listing["id"], "delist", "delisted")

    refused = _step(client, operator, listing["id"], "relist")

    assert refused.status_code == 409, refused.json
    assert refused.json["code"] == "invalid_transition"
    after = _as_stored(client, operator, listing["id"])
    assert (after["status"], after["version"]) == ("delisted", delisted["version"])
    assert _trace(client, operator, listing["id"])[-1] == "listing.delisted"
