"""Certifications, quality reports and the operation-evaluation job, through the HTTP API."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from app import clock
from app.parties.models import SYSTEM, Role
from app.scheduler import run_job
from listings.jobs import evaluate_listings
from tests.factories import Member, make_member
from tests.listings.factories import listing_body
from tests.orders.factories import give_completed_order

API = "/api/v1/listings"
EVALUATE = "evaluate_listings"


@dataclass
class Cast:
    merchant: Member
    operator: Member
    certifier: Member
    buyer: Member


@pytest.fixture
def cast(app: Flask) -> Cast:
    return Cast(merchant=make_member(Role.MERCHANT), operator=make_member(Role.OPERATOR),
                certifier=make_member(Role.CERTIFIER), buyer=make_member(Role.BUYER))


def _in(days: float) -> str:
    return (clock.now() + timedelta(days=days)).isoformat()


def _certification(**overrides: Any) -> dict[str, Any]:
    body = {"rating": "A", "scopes": ["compliance"], "valid_until": _in(30),
            "report_ref": "SZDX-CERT-2025-0042"}
    body.update(overrides)
    return body


def _create(client: FlaskClient, cast: Cast, **overrides: Any) -> str:
    created = client.post(API, json=listing_body(cast.merchant, **overrides),
                          headers=cast.merchant.headers)
    assert created.status_code == 201, created.json
    return created.json["id"]


def _submitted(client: FlaskClient, cast: Cast, **overrides: Any) -> str:
    listing_id = _create(client, cast, **overrides)
    submitted = client.post(f"{API}/{listing_id}/submit", headers=cast.merchant.headers)
    assert submitted.status_code == 200, submitted.json
    return listing_id


def _certify(client: FlaskClient, cast: Cast, listing_id: str, **overrides: Any) -> Any:
    return client.post(f"{API}/{listing_id}/certifications", json=_certification(**overrides),
                       headers=cast.certifier.headers)


def _approve(client: FlaskClient, cast: Cast, listing_id: str) -> Any:
    return client.post(f"{API}/{listing_id}/review", headers=cast.operator.headers,
                       json={"decision": "approve", "reason": "Source and rights verified"})


def _relist(client: FlaskClient, cast: Cast, listing_id: str) -> Any:
    return client.post(f"{API}/{listing_id}/relist", headers=cast.operator.headers,
                       json={"reason": "Certification renewed"})


def _detail(client: FlaskClient, cast: Cast, listing_id: str) -> dict[str, Any]:
    response = client.get(f"{API}/{listing_id}", headers=cast.operator.headers)
    assert response.status_code == 200, response.json
    return response.json


def _trace(client: FlaskClient, cast: Cast, listing_id: str) -> list[dict[str, Any]]:
    response = client.get(f"{API}/{listing_id}/trace", headers=cast.operator.headers)
    assert response.status_code == 200, response.json
    return response.json


def _actions(client: FlaskClient, cast: Cast, listing_id: str) -> list[str]:
    return [entry["action"] for entry in _trace(client, cast, listing_id)]


def _listed_general(client: FlaskClient, cast: Cast, **overrides: Any) -> str:
    listing_id = _submitted(client, cast, **overrides)
    approved = _approve(client, cast, listing_id)
    assert approved.status_code == 200, approved.json
    assert approved.json["status"] == "listed"
    return listing_id


def _listed_sensitive(client: FlaskClient, cast: Cast, *, valid_days: float = 30,
                      **overrides: Any) -> str:
    listing_id = _submitted(client, cast, classification="sensitive", **overrides)
    certified = _certify(client, cast, listing_id, valid_until=_in(valid_days))
    assert certified.status_code == 201, certified.json
    approved = _approve(client, cast, listing_id)
    assert approved.status_code == 200, approved.json
    assert approved.json["status"] == "listed"
    return listing_id


def _report(client: FlaskClient, buyer: Member, listing_id: str, score: Any,
            issue: str | None = None) -> Any:
    give_completed_order(client, buyer.id, listing_id)
    return client.post(f"{API}/{listing_id}/quality-reports", headers=buyer.headers,
                       json={"score": score, "issue": issue})


def _evaluate(app: Flask) -> None:
    assert run_job(app, EVALUATE) is True


# --- certification gates listing ---------------------------------------------------------

@pytest.mark.parametrize("overrides", [
    pytest.param({"classification": "sensitive"}, id="sensitive"),
    pytest.param({"classification": "important", "delivery_mode": "sandbox"}, id="important"),
])
def test_uncertified_listing_needing_certification_waits_for_review_and_cannot_be_approved(
        client, cast, overrides):
    listing_id = _submitted(client, cast, **overrides)
    detail = _detail(client, cast, listing_id)
    assert detail["status"] == "pending_review"
    assert "compliance certification" in detail["status_reason"]

    refused = _approve(client, cast, listing_id)
    assert refused.status_code == 422
    assert refused.json["code"] == "certification_required"
    assert _detail(client, cast, listing_id)["status"] == "pending_review"


@pytest.mark.parametrize("overrides", [
    pytest.param({"classification": "sensitive"}, id="sensitive"),
    pytest.param({"classification": "important", "delivery_mode": "sandbox"}, id="important"),
])
def test_listing_certified_for_compliance_rated_a_is_approved_to_listed(client, cast, overrides):
    listing_id = _submitted(client, cast, **overrides)
    assert _approve(client, cast, listing_id).status_code == 422

    certified = _certify(client, cast, listing_id)
    assert certified.status_code == 201, certified.json
    assert certified.json["rating"] == "A"
    assert certified.json["scopes"] == ["compliance"]
    assert certified.json["report_ref"] == "SZDX-CERT-2025-0042"
    assert certified.json["certifier_id"] == cast.certifier.id

    approved = _approve(client, cast, listing_id)
    assert approved.status_code == 200, approved.json
    assert approved.json["status"] == "listed"
    assert approved.json["listed_at"] is not None


@pytest.mark.parametrize("rating", ["AA", "AAA"])
def test_ratings_better_than_a_satisfy_the_certification_requirement(client, cast, rating):
    listing_id = _submitted(client, cast, classification="sensitive")
    assert _certify(client, cast, listing_id, rating=rating,
                    scopes=["security", "compliance"]).status_code == 201
    approved = _approve(client, cast, listing_id)
    assert approved.status_code == 200, approved.json
    assert approved.json["status"] == "listed"


@pytest.mark.parametrize("overrides", [
    pytest.param({"rating": "B"}, id="rated-B"),
    pytest.param({"rating": "C"}, id="rated-C"),
    pytest.param({"rating": "AAA", "scopes": ["quality", "security"]}, id="no-compliance-scope"),
])
def test_a_certification_too_weak_or_outside_compliance_does_not_allow_approval(
        client, cast, overrides):
    listing_id = _submitted(client, cast, classification="sensitive")
    assert _certify(client, cast, listing_id, **overrides).status_code == 201
    refused = _approve(client, cast, listing_id)
    assert refused.status_code == 422
    assert refused.json["code"] == "certification_required"
    assert _detail(client, cast, listing_id)["status"] == "pending_review"


def test_an_expired_certification_does_not_allow_approval(client, cast):
    listing_id = _submitted(client, cast, classification="sensitive")
    assert _certify(client, cast, listing_id, valid_until=_in(1)).status_code == 201
    clock.advance(timedelta(days=2))
    refused = _approve(client, cast, listing_id)
    assert refused.status_code == 422
    assert refused.json["code"] == "certification_required"

    assert _certify(client, cast, listing_id, valid_until=_in(30)).status_code == 201
    assert _approve(client, cast, listing_id).json["status"] == "listed"


def test_a_general_listing_is_approved_without_any_certification(client, cast):
    listing_id = _submitted(client, cast, classification="general")
    approved = _approve(client, cast, listing_id)
    assert approved.status_code == 200
    assert approved.json["status"] == "listed"


# --- certifications endpoint ------------------------------------------------------------

@pytest.mark.parametrize("role", [Role.MERCHANT, Role.BUYER, Role.OPERATOR, Role.REGULATOR])
def test_only_certifiers_may_certify_a_listing(client, cast, role):
    listing_id = _submitted(client, cast, classification="sensitive")
    outsider = cast.merchant if role is Role.MERCHANT else make_member(role)
    refused = client.post(f"{API}/{listing_id}/certifications", json=_certification(),
                          headers=outsider.headers)
    assert refused.status_code == 403
    assert refused.json["code"] == "forbidden"
    assert "listing.certified" not in _actions(client, cast, listing_id)
    assert _approve(client, cast, listing_id).status_code == 422


def test_a_certification_already_expired_is_refused(client, cast):
    listing_id = _submitted(client, cast, classification="sensitive")
    refused = _certify(client, cast, listing_id, valid_until=_in(-1))
    assert refused.status_code == 422
    assert refused.json["code"] == "validation_error"
    assert "valid_until" in refused.json["errors"]
    assert "listing.certified" not in _actions(client, cast, listing_id)


@pytest.mark.parametrize(("overrides", "field"), [
    pytest.param({"rating": "A+"}, "rating", id="unknown-rating"),
    pytest.param({"rating": None}, "rating", id="null-rating"),
    pytest.param({"scopes": ["privacy"]}, "scopes", id="unknown-scope"),
    pytest.param({"scopes": []}, "scopes", id="no-scope"),
    pytest.param({"valid_until": "2030-01-01T00:00:00"}, "valid_until", id="naive-valid-until"),
    pytest.param({"report_ref": ""}, "report_ref", id="empty-report-ref"),
])
def test_a_malformed_certification_is_refused_with_the_field_named(client, cast, overrides,
                                                                   field):
    listing_id = _submitted(client, cast, classification="sensitive")
    refused = _certify(client, cast, listing_id, **overrides)
    assert refused.status_code == 422
    assert refused.json["code"] == "validation_error"
    assert field in refused.json["errors"]


def test_a_certification_without_required_fields_is_refused(client, cast):
    listing_id = _submitted(client, cast, classification="sensitive")
    refused = client.post(f"{API}/{listing_id}/certifications", json={"rating": "A"},
                          headers=cast.certifier.headers)
    assert refused.status_code == 422
    assert {"scopes", "valid_until", "report_ref"} <= set(refused.json["errors"])


def test_a_draft_or_unknown_listing_cannot_be_certified(client, cast):
    draft_id = _create(client, cast, classification="sensitive")
    refused = _certify(client, cast, draft_id)
    assert refused.status_code == 404
    assert refused.json["code"] == "listing_not_found"
    assert _actions(client, cast, draft_id) == ["listing.created"]

    unknown = _certify(client, cast, "00000000-0000-4000-8000-000000000000")
    assert unknown.status_code == 404


def test_listing_detail_shows_only_certifications_still_valid(client, cast):
    listing_id = _submitted(client, cast, classification="sensitive")
    short = _certify(client, cast, listing_id, valid_until=_in(10), report_ref="SHORT-1")
    long = _certify(client, cast, listing_id, rating="AA", scopes=["compliance", "quality"],
                    valid_until=_in(40), report_ref="LONG-2")
    assert short.status_code == long.status_code == 201
    assert _approve(client, cast, listing_id).json["status"] == "listed"

    shown = client.get(f"{API}/{listing_id}", headers=cast.buyer.headers)
    assert shown.status_code == 200
    assert [(c["id"], c["rating"], c["report_ref"]) for c in shown.json["certifications"]] == [
        (short.json["id"], "A", "SHORT-1"), (long.json["id"], "AA", "LONG-2")]

    clock.advance(timedelta(days=11))
    shown = client.get(f"{API}/{listing_id}", headers=cast.buyer.headers)
    assert [c["report_ref"] for c in shown.json["certifications"]] == ["LONG-2"]
    assert shown.json["certifications"][0]["scopes"] == ["compliance", "quality"]

    clock.advance(timedelta(days=30))
    assert _detail(client, cast, listing_id)["certifications"] == []


# --- the operation evaluation job -------------------------------------------------------

def test_evaluation_leaves_a_listing_with_a_valid_certification_listed(app, client, cast):
    listing_id = _listed_sensitive(client, cast, valid_days=10)
    before = _detail(client, cast, listing_id)
    clock.advance(timedelta(days=9))
    _evaluate(app)
    after = _detail(client, cast, listing_id)
    assert after["status"] == "listed"
    assert after["version"] == before["version"]
    assert "listing.suspended" not in _actions(client, cast, listing_id)


def test_evaluation_suspends_a_listed_sensitive_listing_whose_certification_expired(
        app, client, cast):
    listing_id = _listed_sensitive(client, cast, valid_days=10)
    clock.advance(timedelta(days=11))
    _evaluate(app)

    detail = _detail(client, cast, listing_id)
    assert detail["status"] == "suspended"
    assert "Certification expired" in detail["status_reason"]
    last = _trace(client, cast, listing_id)[-1]
    assert last["action"] == "listing.suspended"
    assert last["actor_id"] is None  # the service itself
    assert last["details"]["by"] == "evaluation"
    assert last["details"]["reason"] == detail["status_reason"]
    # A suspended product leaves the catalog.
    assert client.get(f"{API}/{listing_id}", headers=cast.buyer.headers).status_code == 404


def test_running_the_evaluation_again_changes_nothing_more(app, client, cast):
    listing_id = _listed_sensitive(client, cast, valid_days=10)
    clock.advance(timedelta(days=11))
    _evaluate(app)
    after_first = (_detail(client, cast, listing_id), _trace(client, cast, listing_id))
    _evaluate(app)
    assert evaluate_listings(actor=SYSTEM, at=clock.now()) == {
        "suspended": 0, "flagged": 0, "skipped": 0, "failed": 0}
    assert (_detail(client, cast, listing_id), _trace(client, cast, listing_id)) == after_first
    assert _actions(client, cast, listing_id).count("listing.suspended") == 1


def test_evaluation_keeps_a_listing_whose_other_certification_is_still_valid(app, client, cast):
    listing_id = _listed_sensitive(client, cast, valid_days=10)
    assert _certify(client, cast, listing_id, rating="AAA",
                    valid_until=_in(60)).status_code == 201
    clock.advance(timedelta(days=11))
    _evaluate(app)
    assert _detail(client, cast, listing_id)["status"] == "listed"


def test_evaluation_suspends_when_only_a_weak_certification_remains(app, client, cast):
    listing_id = _listed_sensitive(client, cast, valid_days=10)
    assert _certify(client, cast, listing_id, rating="B", valid_until=_in(60)).status_code == 201
    clock.advance(timedelta(days=11))
    _evaluate(app)
    assert _detail(client, cast, listing_id)["status"] == "suspended"


def test_evaluation_leaves_a_listed_general_listing_untouched(app, client, cast):
    listing_id = _listed_general(client, cast)
    before = (_detail(client, cast, listing_id), _trace(client, cast, listing_id))
    clock.advance(timedelta(days=400))
    _evaluate(app)
    assert (_detail(client, cast, listing_id), _trace(client, cast, listing_id)) == before
    assert before[0]["status"] == "listed"


def test_relisting_a_suspended_listing_needs_a_fresh_certification(app, client, cast):
    listing_id = _listed_sensitive(client, cast, valid_days=10)
    clock.advance(timedelta(days=11))
    _evaluate(app)

    refused = _relist(client, cast, listing_id)
    assert refused.status_code == 422
    assert refused.json["code"] == "certification_required"
    assert _detail(client, cast, listing_id)["status"] == "suspended"

    assert _certify(client, cast, listing_id, valid_until=_in(365)).status_code == 201
    relisted = _relist(client, cast, listing_id)
    assert relisted.status_code == 200, relisted.json
    assert relisted.json["status"] == "listed"
    assert relisted.json["status_reason"] == "Certification renewed"
    assert _actions(client, cast, listing_id)[-2:] == ["listing.certified", "listing.relisted"]


def test_evaluation_through_the_service_reports_what_it_suspended(app, client, cast):
    expiring = _listed_sensitive(client, cast, valid_days=5)
    lasting = _listed_sensitive(client, cast, valid_days=50)
    general = _listed_general(client, cast)
    clock.advance(timedelta(days=6))
    outcome = evaluate_listings(actor=SYSTEM, at=clock.now())
    assert outcome == {"suspended": 1, "flagged": 0, "skipped": 0, "failed": 0}
    assert [_detail(client, cast, i)["status"] for i in (expiring, lasting, general)] == [
        "suspended", "listed", "listed"]


# --- quality reports --------------------------------------------------------------------

def test_a_buyer_reports_on_a_listed_product_and_the_quality_summary_follows(client, cast):
    listing_id = _listed_general(client, cast)
    assert _detail(client, cast, listing_id)["quality"] == {"count": 0, "average": None}
    version = _detail(client, cast, listing_id)["version"]

    reported = _report(client, cast.buyer, listing_id, 4, "Two hours missing on 3 March")
    assert reported.status_code == 201, reported.json
    assert reported.json["score"] == 4
    assert reported.json["issue"] == "Two hours missing on 3 March"
    assert reported.json["buyer_id"] == cast.buyer.id
    assert reported.json["listing_id"] == listing_id

    for score in (5, 2):
        assert _report(client, make_member(Role.BUYER), listing_id, score).status_code == 201
    detail = client.get(f"{API}/{listing_id}", headers=cast.buyer.headers).json
    assert detail["quality"] == {"count": 3, "average": 3.67}
    # A report is not a merchant edit: the listing's version (ETag) stays.
    assert detail["version"] == version


@pytest.mark.parametrize("role", [Role.MERCHANT, Role.OPERATOR, Role.CERTIFIER,
                                  Role.REGULATOR])
def test_only_buyers_may_report_on_quality(client, cast, role):
    listing_id = _listed_general(client, cast)
    outsider = cast.merchant if role is Role.MERCHANT else make_member(role)
    refused = _report(client, outsider, listing_id, 1, "Rival says so")
    assert refused.status_code == 403
    assert refused.json["code"] == "forbidden"
    assert _detail(client, cast, listing_id)["quality"]["count"] == 0


@pytest.mark.parametrize("score", [0, 6, -1, 2.5, "good", None])
def test_a_quality_score_outside_one_to_five_is_refused(client, cast, score):
    listing_id = _listed_general(client, cast)
    refused = _report(client, cast.buyer, listing_id, score)
    assert refused.status_code == 422
    assert refused.json["code"] == "validation_error"
    assert "score" in refused.json["errors"]
    assert _detail(client, cast, listing_id)["quality"]["count"] == 0


@pytest.mark.parametrize("score", [1, 5])
def test_the_edge_scores_one_and_five_are_accepted(client, cast, score):
    listing_id = _listed_general(client, cast)
    assert _report(client, cast.buyer, listing_id, score).status_code == 201
    assert _detail(client, cast, listing_id)["quality"] == {"count": 1, "average": score}


def test_quality_reports_on_a_listing_that_is_not_listed_are_not_found(app, client, cast):
    pending = _submitted(client, cast)
    draft = _create(client, cast)
    suspended = _listed_sensitive(client, cast, valid_days=1)
    clock.advance(timedelta(days=2))
    _evaluate(app)
    for listing_id in (pending, draft, suspended, "00000000-0000-4000-8000-000000000000"):
        refused = _report(client, cast.buyer, listing_id, 3)
        assert refused.status_code == 404, listing_id
        assert refused.json["code"] == "listing_not_found"
    assert _detail(client, cast, suspended)["quality"]["count"] == 0


@pytest.mark.postgres_only
def test_concurrent_quality_reports_lose_no_count(app, client, cast):
    listing_id = _listed_general(client, cast)
    buyers = [make_member(Role.BUYER) for _ in range(12)]
    scores = [(n % 5) + 1 for n in range(len(buyers))]
    start = threading.Barrier(len(buyers))
    statuses: list[int] = []
    errors: list[BaseException] = []

    def report(buyer: Member, score: int) -> None:
        try:
            own_client = app.test_client()
            start.wait()
            statuses.append(_report(own_client, buyer, listing_id, score).status_code)
        except BaseException as error:  # surfaced in the main thread
            errors.append(error)

    threads = [threading.Thread(target=report, args=pair) for pair in zip(buyers, scores,
                                                                           strict=True)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors
    assert statuses == [201] * len(buyers)
    quality = _detail(client, cast, listing_id)["quality"]
    assert quality == {"count": len(buyers), "average": round(sum(scores) / len(buyers), 2)}
    assert _actions(client, cast, listing_id).count("listing.quality_reported") == len(buyers)
    verified = client.get("/api/v1/audit/verify", headers=cast.operator.headers)
    assert verified.json["valid"] is True


def _flagged_ids(client: FlaskClient, viewer: Member, flagged: bool) -> list[str]:
    response = client.get(f"{API}?flagged={str(flagged).lower()}", headers=viewer.headers)
    assert response.status_code == 200, response.json
    return [listing["id"] for listing in response.json]


def test_poor_quality_reports_get_a_listing_flagged_once_by_the_evaluation(app, client, cast):
    listing_id = _listed_general(client, cast)
    healthy = _listed_general(client, cast, title="Jiangsu rice yields 江苏水稻产量",
                              category="agriculture")
    for score in (1, 2, 3):
        assert _report(client, make_member(Role.BUYER), listing_id, score, "Gaps").status_code \
            == 201
        assert _report(client, make_member(Role.BUYER), healthy, 5).status_code == 201
    assert _detail(client, cast, listing_id)["review_flag"] is None

    _evaluate(app)
    detail = _detail(client, cast, listing_id)
    assert detail["status"] == "listed"  # flagged for review, still on the market
    assert "Poor quality" in detail["review_flag"]
    assert "2.0" in detail["review_flag"]
    assert _detail(client, cast, healthy)["review_flag"] is None
    assert _flagged_ids(client, cast.operator, True) == [listing_id]
    assert _flagged_ids(client, cast.operator, False) == [healthy]
    last = _trace(client, cast, listing_id)[-1]
    assert last["action"] == "listing.flagged"
    assert last["details"]["flag"] == detail["review_flag"]

    assert _report(client, make_member(Role.BUYER), listing_id, 1).status_code == 201
    _evaluate(app)
    assert _actions(client, cast, listing_id).count("listing.flagged") == 1
    assert _detail(client, cast, listing_id)["review_flag"] == detail["review_flag"]


@pytest.mark.parametrize("scores", [
    pytest.param((1, 1), id="too-few-reports"),
    pytest.param((2, 3, 2, 3), id="average-exactly-2.5"),
    pytest.param((1, 2, 5), id="average-2.67"),
])
def test_evaluation_does_not_flag_a_listing_without_enough_poor_reports(app, client, cast,
                                                                        scores):
    listing_id = _listed_general(client, cast)
    for score in scores:
        assert _report(client, make_member(Role.BUYER), listing_id, score).status_code == 201
    _evaluate(app)
    assert _detail(client, cast, listing_id)["review_flag"] is None
    assert "listing.flagged" not in _actions(client, cast, listing_id)
    assert _flagged_ids(client, cast.operator, True) == []


# --- trace ------------------------------------------------------------------------------

def test_the_trace_records_certification_quality_flag_suspension_and_relisting_in_order(
        app, client, cast):
    listing_id = _submitted(client, cast, classification="sensitive")
    assert _approve(client, cast, listing_id).status_code == 422  # refusals leave no record
    assert _certify(client, cast, listing_id, valid_until=_in(10)).status_code == 201
    assert _approve(client, cast, listing_id).status_code == 200
    buyers = [make_member(Role.BUYER) for _ in range(3)]
    for buyer in buyers:
        assert _report(client, buyer, listing_id, 1, "Stale data").status_code == 201
    _evaluate(app)  # flags it
    clock.advance(timedelta(days=11))
    _evaluate(app)  # suspends it
    assert _relist(client, cast, listing_id).status_code == 422
    assert _certify(client, cast, listing_id, valid_until=_in(90)).status_code == 201
    assert _relist(client, cast, listing_id).status_code == 200

    trace = _trace(client, cast, listing_id)
    assert [(e["action"], e["actor_id"]) for e in trace] == [
        ("listing.created", cast.merchant.id),
        ("listing.submitted", cast.merchant.id),
        ("listing.certified", cast.certifier.id),
        ("listing.reviewed", cast.operator.id),
        *[("listing.quality_reported", buyer.id) for buyer in buyers],
        ("listing.flagged", None),
        ("listing.suspended", None),
        ("listing.certified", cast.certifier.id),
        ("listing.relisted", cast.operator.id),
    ]
    assert [e["id"] for e in trace] == sorted(e["id"] for e in trace)
    assert [e["occurred_at"] for e in trace] == sorted(e["occurred_at"] for e in trace)
    assert all(len(e["payload_digest"]) == 64 for e in trace)
    certified = trace[2]["details"]
    assert certified["rating"] == "A"
    assert certified["scopes"] == ["compliance"]
    assert trace[4]["details"]["score"] == 1
    assert trace[-3]["details"]["status"] == "suspended"
    assert trace[-1]["details"]["status"] == "listed"
    assert client.get("/api/v1/audit/verify", headers=cast.operator.headers).json["valid"] is True
