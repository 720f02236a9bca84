"""The admission lists (正面引导清单 / 负面禁止清单) and the admission engine, through the API."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from app import clock
from app.audit import AuditEntry
from app.extensions import db
from app.parties.models import Role
from listings.models import AdmissionRule, Listing
from tests.factories import Member, make_member
from tests.listings.factories import listing_body
from tests.support import race

PROBLEM = "application/problem+json"
RULES = "/api/v1/admission-rules"
CHECK = "/api/v1/admission/check"


# --- helpers -------------------------------------------------------------------------------

def rule_body(list_: str = "negative", **criteria: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"list": list_, "name": f"{list_} rule",
                            "reason": "Set by the exchange for the test."}
    body.update(criteria)
    return body


def add_rule(client: FlaskClient, operator: Member, list_: str = "negative",
             **criteria: Any) -> dict[str, Any]:
    response = client.post(RULES, json=rule_body(list_, **criteria), headers=operator.headers)
    assert response.status_code == 201, response.json
    return response.json


def create_draft(client: FlaskClient, merchant: Member, **overrides: Any) -> str:
    response = client.post("/api/v1/listings", json=listing_body(merchant, **overrides),
                           headers=merchant.headers)
    assert response.status_code == 201, response.json
    return response.json["id"]


def submit(client: FlaskClient, merchant: Member, listing_id: str) -> Any:
    return client.post(f"/api/v1/listings/{listing_id}/submit", headers=merchant.headers)


def stored_listing(listing_id: str) -> Listing:
    """The listing as committed, read in a session of its own."""
    with Session(db.engine, expire_on_commit=False) as session:
        listing = session.get(Listing, uuid.UUID(listing_id))
        assert listing is not None
        session.expunge(listing)
        return listing


def audit_actions(listing_id: str) -> list[str]:
    with Session(db.engine) as session:
        return list(session.scalars(
            sa.select(AuditEntry.action)
            .where(AuditEntry.subject_type == "listings", AuditEntry.subject_id == listing_id)
            .order_by(AuditEntry.id)))


def row_counts() -> dict[str, int]:
    with Session(db.engine) as session:
        return {model.__tablename__: session.scalar(sa.select(sa.func.count()).select_from(model))
                for model in (Listing, AdmissionRule, AuditEntry)}


def cited(matched_rules: list[dict[str, Any]]) -> set[tuple[str, int]]:
    return {(match["rule_id"], match["version"]) for match in matched_rules}


def assert_prohibited(client: FlaskClient, merchant: Member, listing_id: str,
                      *expected: tuple[str, int]) -> dict[str, Any]:
    """Submit, expect 422 admission_prohibited citing the rules, and the rejection on record."""
    response = submit(client, merchant, listing_id)
    assert response.status_code == 422, response.json
    assert response.mimetype == PROBLEM
    problem = response.json
    assert problem["code"] == "admission_prohibited"
    assert problem["status"] == 422
    assert cited(problem["matched_rules"]) == set(expected)
    assert all(match["list"] == "negative" for match in problem["matched_rules"])
    listing = stored_listing(listing_id)
    assert listing.status.value == "rejected"
    assert listing.admission is not None
    assert listing.admission["decision"] == "prohibited"
    assert cited(listing.admission["matched_rules"]) == set(expected)
    return problem


def operator_and_merchant() -> tuple[Member, Member]:
    return make_member(Role.OPERATOR), make_member(Role.MERCHANT)


# --- built-in prohibitions ----------------------------------------------------------------

def test_core_data_is_prohibited_and_the_rejection_is_kept_with_its_decision(client):
    merchant = make_member(Role.MERCHANT)
    listing_id = create_draft(client, merchant, classification="core", delivery_mode="sandbox")

    problem = assert_prohibited(client, merchant, listing_id, ("builtin:core-data", 1))

    assert problem["matched_rules"][0]["builtin"] is True
    assert "classification" in problem["matched_rules"][0]["matched_on"]
    detail = client.get(f"/api/v1/listings/{listing_id}", headers=merchant.headers)
    assert detail.status_code == 200
    assert detail.json["status"] == "rejected"
    assert detail.json["admission"]["decision"] == "prohibited"
    assert cited(detail.json["admission"]["matched_rules"]) == {("builtin:core-data", 1)}
    assert detail.json["status_reason"]
    assert "listing.admission_prohibited" in audit_actions(listing_id)


def test_a_prohibited_attempt_appears_in_the_trace_with_the_rules_it_matched(client):
    operator, merchant = operator_and_merchant()
    listing_id = create_draft(client, merchant, classification="core", delivery_mode="sandbox")
    assert submit(client, merchant, listing_id).status_code == 422

    trace = client.get(f"/api/v1/listings/{listing_id}/trace", headers=operator.headers)

    assert trace.status_code == 200
    assert [entry["action"] for entry in trace.json] == ["listing.created",
                                                          "listing.admission_prohibited"]
    attempt = trace.json[-1]
    assert attempt["actor_id"] == merchant.id
    assert attempt["details"]["status"] == "rejected"
    assert cited(attempt["details"]["matched_rules"]) == {("builtin:core-data", 1)}
    assert attempt["id"] > trace.json[0]["id"]


def test_personal_information_neither_anonymized_nor_consented_is_prohibited(client):
    merchant = make_member(Role.MERCHANT)
    listing_id = create_draft(client, merchant, contains_personal_info=True, anonymized=False,
                              consent_basis=None)

    assert_prohibited(client, merchant, listing_id,
                      ("builtin:unprotected-personal-information", 1))
    assert "listing.admission_prohibited" in audit_actions(listing_id)


def test_a_blank_consent_basis_does_not_protect_personal_information(client):
    merchant = make_member(Role.MERCHANT)
    listing_id = create_draft(client, merchant, contains_personal_info=True, anonymized=False,
                              consent_basis="   ")

    assert_prohibited(client, merchant, listing_id,
                      ("builtin:unprotected-personal-information", 1))


@pytest.mark.parametrize("protection", [
    {"anonymized": True, "consent_basis": None},
    {"anonymized": False, "consent_basis": "Written consent of each data subject, PIPL art. 13"},
], ids=["anonymized", "consent_basis"])
def test_personal_information_anonymized_or_consented_is_not_prohibited(client, protection):
    merchant = make_member(Role.MERCHANT)
    listing_id = create_draft(client, merchant, contains_personal_info=True, **protection)

    response = submit(client, merchant, listing_id)

    assert response.status_code == 200, response.json
    assert response.json["status"] == "pending_review"
    assert response.json["admission"]["decision"] == "standard"
    assert response.json["admission"]["matched_rules"] == []


def test_important_data_delivered_by_download_is_prohibited(client):
    merchant = make_member(Role.MERCHANT)
    listing_id = create_draft(client, merchant, classification="important",
                              delivery_mode="download")

    problem = assert_prohibited(client, merchant, listing_id,
                                ("builtin:important-data-delivery", 1))
    assert set(problem["matched_rules"][0]["matched_on"]) == {"classification", "delivery_mode"}
    assert "listing.admission_prohibited" in audit_actions(listing_id)


@pytest.mark.parametrize("delivery_mode", ["sandbox", "api"])
def test_important_data_delivered_by_sandbox_or_api_passes_admission(client, delivery_mode):
    merchant = make_member(Role.MERCHANT)
    listing_id = create_draft(client, merchant, classification="important",
                              delivery_mode=delivery_mode)

    response = submit(client, merchant, listing_id)

    assert response.status_code == 200, response.json
    assert response.json["admission"]["decision"] == "standard"
    # Important data still needs a certification: a human decides.
    assert response.json["status"] == "pending_review"


CONSENTED = {"contains_personal_info": True, "anonymized": False,
             "consent_basis": "Written consent of each data subject, PIPL art. 13"}


def abroad(**changes: Any) -> dict[str, Any]:
    return {"purposes": ["research"], "term_days": 365, "territory": "cross_border",
            "resale": False, "derivatives": False, **changes}


@pytest.mark.parametrize("assessment", [None, "   "], ids=["none", "blank"])
def test_personal_information_leaving_the_territory_without_an_assessment_is_prohibited(
        client, assessment):
    merchant = make_member(Role.MERCHANT)
    listing_id = create_draft(client, merchant, **CONSENTED,
                              usage_scope=abroad(cross_border_assessment_ref=assessment))

    problem = assert_prohibited(client, merchant, listing_id,
                                ("builtin:cross-border-personal-information", 1))

    [match] = problem["matched_rules"]
    assert match["builtin"] is True
    assert set(match["matched_on"]) == {"contains_personal_info", "territory",
                                        "cross_border_assessment_ref"}
    assert "usage_scope.cross_border_assessment_ref" in match["reason"]
    assert match["name"] in problem["detail"]


def test_personal_information_leaving_the_territory_with_its_assessment_passes(client):
    merchant = make_member(Role.MERCHANT)
    scope = abroad(cross_border_assessment_ref="CAC 数据出境安全评估 2025-0117")
    listing_id = create_draft(client, merchant, **CONSENTED, usage_scope=scope)

    response = submit(client, merchant, listing_id)

    assert response.status_code == 200, response.json
    assert response.json["admission"]["decision"] == "standard"
    assert response.json["usage_scope"]["cross_border_assessment_ref"] == \
        "CAC 数据出境安全评估 2025-0117"


@pytest.mark.parametrize("overrides", [
    {**CONSENTED, "usage_scope": abroad(territory="domestic")},
    {"contains_personal_info": False, "usage_scope": abroad()},
], ids=["personal_information_at_home", "no_personal_information_abroad"])
def test_the_assessment_is_asked_only_of_personal_information_leaving(client, overrides):
    merchant = make_member(Role.MERCHANT)
    listing_id = create_draft(client, merchant, **overrides)

    response = submit(client, merchant, listing_id)

    assert response.status_code == 200, response.json
    assert response.json["admission"]["matched_rules"] == []


def test_the_dry_run_explains_the_missing_assessment(client):
    merchant = make_member(Role.MERCHANT)
    body = listing_body(merchant, **CONSENTED, usage_scope=abroad())

    response = client.post(CHECK, json=body, headers=merchant.headers)

    assert response.status_code == 200, response.json
    assert response.json["decision"] == "prohibited"
    assert cited(response.json["matched_rules"]) == {
        ("builtin:cross-border-personal-information", 1)}
    assert "Personal information leaving the territory" in response.json["explanation"]
    body["usage_scope"]["cross_border_assessment_ref"] = "CAC-2025-0117"
    assessed = client.post(CHECK, json=body, headers=merchant.headers)
    assert assessed.json["decision"] == "standard", assessed.json


def test_download_delivery_is_allowed_for_general_data(client):
    merchant = make_member(Role.MERCHANT)
    listing_id = create_draft(client, merchant, classification="general", delivery_mode="download")

    response = submit(client, merchant, listing_id)

    assert response.status_code == 200, response.json
    assert response.json["status"] == "pending_review"


def test_every_built_in_rule_a_listing_breaks_is_cited(client):
    merchant = make_member(Role.MERCHANT)
    listing_id = create_draft(client, merchant, classification="core", delivery_mode="download",
                              contains_personal_info=True)

    assert_prohibited(client, merchant, listing_id, ("builtin:core-data", 1),
                      ("builtin:unprotected-personal-information", 1))


# --- operator negative rules --------------------------------------------------------------

def test_a_negative_rule_by_category_prohibits_listings_of_that_category(client):
    operator, merchant = operator_and_merchant()
    rule = add_rule(client, operator, categories=["biometrics"])
    banned = create_draft(client, merchant, category="biometrics")
    other = create_draft(client, merchant, category="transport")

    problem = assert_prohibited(client, merchant, banned, (rule["id"], 1))

    assert problem["matched_rules"][0]["builtin"] is False
    assert problem["matched_rules"][0]["rule_key"] == rule["rule_key"]
    assert problem["matched_rules"][0]["matched_on"] == ["category"]
    assert submit(client, merchant, other).json["status"] == "pending_review"


def test_a_chinese_keyword_is_found_inside_a_chinese_title(client):
    operator, merchant = operator_and_merchant()
    rule = add_rule(client, operator, keywords=["人脸"])
    listing_id = create_draft(client, merchant, title="人脸识别数据集", tags=["视觉"],
                              description="Images for model training.")

    problem = assert_prohibited(client, merchant, listing_id, (rule["id"], 1))

    assert problem["matched_rules"][0]["matched_on"] == ["keywords"]


def test_a_keyword_is_found_in_the_tags(client):
    operator, merchant = operator_and_merchant()
    rule = add_rule(client, operator, keywords=["人脸"])
    listing_id = create_draft(client, merchant, tags=["交通", "人脸"])

    assert_prohibited(client, merchant, listing_id, (rule["id"], 1))


def test_an_english_keyword_matches_a_whole_word_in_any_case(client):
    operator, merchant = operator_and_merchant()
    rule = add_rule(client, operator, keywords=["face"])
    listing_id = create_draft(client, merchant, title="Street FACE images",
                              description="Pedestrian crossings.")

    assert_prohibited(client, merchant, listing_id, (rule["id"], 1))


def test_an_english_keyword_inside_another_word_does_not_match(client):
    operator, merchant = operator_and_merchant()
    add_rule(client, operator, keywords=["face"])
    listing_id = create_draft(client, merchant, title="Road surface temperatures",
                              description="Interface to surfaced sensor data, Facebook-free.")

    response = submit(client, merchant, listing_id)

    assert response.status_code == 200, response.json
    assert response.json["status"] == "pending_review"
    assert response.json["admission"]["decision"] == "standard"


def test_a_negative_rule_by_classification_prohibits_that_grade_only(client):
    operator, merchant = operator_and_merchant()
    rule = add_rule(client, operator, classifications=["sensitive"])
    assert rule["classifications"] == ["sensitive"]
    sensitive = create_draft(client, merchant, classification="sensitive")
    general = create_draft(client, merchant, classification="general")

    assert_prohibited(client, merchant, sensitive, (rule["id"], 1))
    assert submit(client, merchant, general).status_code == 200


def test_a_negative_rule_on_personal_information_prohibits_even_protected_personal_data(client):
    operator, merchant = operator_and_merchant()
    rule = add_rule(client, operator, contains_personal_info=True)
    personal = create_draft(client, merchant, contains_personal_info=True, anonymized=True)
    impersonal = create_draft(client, merchant, contains_personal_info=False)

    problem = assert_prohibited(client, merchant, personal, (rule["id"], 1))

    assert problem["matched_rules"][0]["matched_on"] == ["contains_personal_info"]
    assert submit(client, merchant, impersonal).status_code == 200


def test_a_negative_rule_on_cross_border_territory_prohibits_export_only(client):
    operator, merchant = operator_and_merchant()
    rule = add_rule(client, operator, territory="cross_border")
    scope = listing_body(merchant)["usage_scope"]
    abroad = create_draft(client, merchant, usage_scope={**scope, "territory": "cross_border"})
    domestic = create_draft(client, merchant)

    problem = assert_prohibited(client, merchant, abroad, (rule["id"], 1))

    assert problem["matched_rules"][0]["matched_on"] == ["territory"]
    assert submit(client, merchant, domestic).status_code == 200


def test_a_rule_with_several_criteria_matches_only_when_all_of_them_match(client):
    operator, merchant = operator_and_merchant()
    rule = add_rule(client, operator, categories=["health"], keywords=["病历"])
    both = create_draft(client, merchant, category="health", title="电子病历样本")
    category_only = create_draft(client, merchant, category="health", title="医院床位统计")
    keyword_only = create_draft(client, merchant, category="research", title="电子病历样本")

    problem = assert_prohibited(client, merchant, both, (rule["id"], 1))

    assert set(problem["matched_rules"][0]["matched_on"]) == {"category", "keywords"}
    for listing_id in (category_only, keyword_only):
        response = submit(client, merchant, listing_id)
        assert response.status_code == 200, response.json
        assert response.json["admission"]["decision"] == "standard"


def test_a_negative_rule_outweighs_a_positive_rule_that_also_matches(client):
    operator, merchant = operator_and_merchant()
    positive = add_rule(client, operator, "positive", categories=["transport"])
    negative = add_rule(client, operator, keywords=["人脸"])
    listing_id = create_draft(client, merchant, title="路口人脸抓拍")

    problem = assert_prohibited(client, merchant, listing_id, (negative["id"], 1))

    assert positive["id"] not in {match["rule_id"] for match in problem["matched_rules"]}


# --- positive rules and the fast track ----------------------------------------------------

def test_a_positive_rule_fast_tracks_a_general_listing_to_listed(client):
    operator, merchant = operator_and_merchant()
    rule = add_rule(client, operator, "positive", categories=["transport"], keywords=["交通"])
    listing_id = create_draft(client, merchant)

    response = submit(client, merchant, listing_id)

    assert response.status_code == 200, response.json
    assert response.json["status"] == "listed"
    assert response.json["listed_at"] is not None
    assert response.json["admission"]["decision"] == "encouraged"
    assert cited(response.json["admission"]["matched_rules"]) == {(rule["id"], 1)}
    assert stored_listing(listing_id).status.value == "listed"
    buyer = make_member(Role.BUYER)
    assert client.get(f"/api/v1/listings/{listing_id}", headers=buyer.headers).status_code == 200


def test_without_a_positive_match_a_listing_waits_for_review(client):
    operator, merchant = operator_and_merchant()
    add_rule(client, operator, "positive", categories=["agriculture"])
    listing_id = create_draft(client, merchant, category="transport")

    response = submit(client, merchant, listing_id)

    assert response.status_code == 200, response.json
    assert response.json["status"] == "pending_review"
    assert response.json["admission"]["decision"] == "standard"
    assert response.json["admission"]["matched_rules"] == []
    assert response.json["listed_at"] is None


def test_a_positive_match_on_an_uncertified_sensitive_listing_still_waits_for_review(client):
    operator, merchant = operator_and_merchant()
    rule = add_rule(client, operator, "positive", categories=["transport"])
    listing_id = create_draft(client, merchant, classification="sensitive")

    response = submit(client, merchant, listing_id)

    assert response.status_code == 200, response.json
    assert response.json["status"] == "pending_review"
    assert response.json["admission"]["decision"] == "encouraged"
    assert cited(response.json["admission"]["matched_rules"]) == {(rule["id"], 1)}
    assert "certification" in response.json["status_reason"]


# --- effective dates, retirement and versions ---------------------------------------------

def test_a_rule_whose_effective_from_is_in_the_future_is_ignored_until_then(client):
    operator, merchant = operator_and_merchant()
    starts = clock.now() + timedelta(days=2)
    rule = add_rule(client, operator, categories=["transport"],
                    effective_from=starts.isoformat())
    early = create_draft(client, merchant)
    late = create_draft(client, merchant)

    response = submit(client, merchant, early)
    assert response.status_code == 200, response.json
    assert response.json["admission"]["decision"] == "standard"

    clock.advance(timedelta(days=3))
    assert_prohibited(client, merchant, late, (rule["id"], 1))


def test_a_rule_whose_effective_to_has_passed_is_ignored(client):
    operator, merchant = operator_and_merchant()
    now = clock.now()
    add_rule(client, operator, categories=["transport"],
             effective_from=(now - timedelta(days=30)).isoformat(),
             effective_to=(now + timedelta(hours=1)).isoformat())
    listing_id = create_draft(client, merchant)

    clock.advance(timedelta(hours=2))
    response = submit(client, merchant, listing_id)

    assert response.status_code == 200, response.json
    assert response.json["status"] == "pending_review"
    assert response.json["admission"]["decision"] == "standard"


def test_a_rule_applies_until_its_effective_to(client):
    operator, merchant = operator_and_merchant()
    rule = add_rule(client, operator, categories=["transport"],
                    effective_to=(clock.now() + timedelta(days=1)).isoformat())
    listing_id = create_draft(client, merchant)

    assert_prohibited(client, merchant, listing_id, (rule["id"], 1))


def test_a_retired_rule_stops_applying_and_is_kept_in_the_history(client):
    operator, merchant = operator_and_merchant()
    rule = add_rule(client, operator, categories=["transport"])
    before = create_draft(client, merchant)
    after = create_draft(client, merchant)
    assert_prohibited(client, merchant, before, (rule["id"], 1))

    retired = client.delete(f"{RULES}/{rule['id']}", headers=operator.headers)

    assert retired.status_code == 204
    assert retired.data == b""
    response = submit(client, merchant, after)
    assert response.status_code == 200, response.json
    assert response.json["admission"]["decision"] == "standard"
    current = client.get(RULES, headers=merchant.headers)
    assert current.status_code == 200
    assert rule["id"] not in [r["id"] for r in current.json]
    history = client.get(RULES, query_string={"include_retired": "true"},
                         headers=merchant.headers)
    assert history.status_code == 200
    [kept] = [r for r in history.json if r["id"] == rule["id"]]
    assert kept["retired_at"] is not None
    # The earlier decision still names the retired rule.
    assert cited(stored_listing(before).admission["matched_rules"]) == {(rule["id"], 1)}


def test_retiring_a_rule_twice_is_harmless(client):
    operator, _ = operator_and_merchant()
    rule = add_rule(client, operator, categories=["transport"])

    first = client.delete(f"{RULES}/{rule['id']}", headers=operator.headers)
    second = client.delete(f"{RULES}/{rule['id']}", headers=operator.headers)

    assert (first.status_code, second.status_code) == (204, 204)
    with Session(db.engine) as session:
        assert session.scalar(sa.select(sa.func.count()).select_from(AdmissionRule)) == 1
        actions = list(session.scalars(sa.select(AuditEntry.action)
                                       .where(AuditEntry.subject_id == rule["id"])))
    assert actions.count("admission_rule.retired") == 1


def test_superseding_a_rule_retires_the_old_version_and_decisions_cite_the_new_one(client):
    operator, merchant = operator_and_merchant()
    old = add_rule(client, operator, categories=["biometrics"])
    assert old["version"] == 1

    new = add_rule(client, operator, categories=["transport"], supersedes=old["id"])

    assert new["rule_key"] == old["rule_key"]
    assert new["version"] == 2
    assert new["id"] != old["id"]
    history = {r["id"]: r for r in client.get(RULES, query_string={"include_retired": "true"},
                                              headers=operator.headers).json}
    assert history[old["id"]]["retired_at"] is not None
    assert history[new["id"]]["retired_at"] is None
    assert [r["id"] for r in client.get(RULES, headers=operator.headers).json] == [new["id"]]

    transport = create_draft(client, merchant, category="transport")
    biometrics = create_draft(client, merchant, category="biometrics")
    problem = assert_prohibited(client, merchant, transport, (new["id"], 2))
    assert problem["matched_rules"][0]["rule_key"] == old["rule_key"]
    assert submit(client, merchant, biometrics).status_code == 200


def test_a_retired_rule_cannot_be_superseded(client):
    operator, _ = operator_and_merchant()
    old = add_rule(client, operator, categories=["biometrics"])
    add_rule(client, operator, categories=["transport"], supersedes=old["id"])

    again = client.post(RULES, json=rule_body(categories=["energy"], supersedes=old["id"]),
                        headers=operator.headers)

    assert again.status_code == 409
    assert again.json["code"] == "invalid_transition"


def test_superseding_an_unknown_rule_is_not_found(client):
    operator, _ = operator_and_merchant()

    response = client.post(RULES, json=rule_body(categories=["x"], supersedes=str(uuid.uuid4())),
                           headers=operator.headers)

    assert response.status_code == 404
    assert response.json["code"] == "admission_rule_not_found"
    assert row_counts()["admission_rules"] == 0


# --- the dry run --------------------------------------------------------------------------

def test_the_dry_run_reports_a_prohibition_without_changing_anything(client):
    operator, merchant = operator_and_merchant()
    rule = add_rule(client, operator, keywords=["人脸"])
    before = row_counts()

    response = client.post(CHECK, json=listing_body(merchant, title="人脸识别数据集",
                                                    classification="core"),
                           headers=merchant.headers)

    assert response.status_code == 200, response.json
    assert response.json["decision"] == "prohibited"
    assert cited(response.json["matched_rules"]) == {("builtin:core-data", 1), (rule["id"], 1)}
    assert response.json["explanation"]
    assert row_counts() == before


def test_the_dry_run_reports_an_encouraged_listing_with_its_positive_rule(client):
    operator, merchant = operator_and_merchant()
    rule = add_rule(client, operator, "positive", territory="domestic", categories=["transport"])
    before = row_counts()

    response = client.post(CHECK, json=listing_body(merchant), headers=merchant.headers)

    assert response.status_code == 200, response.json
    assert response.json["decision"] == "encouraged"
    [match] = response.json["matched_rules"]
    assert (match["rule_id"], match["version"], match["list"]) == (rule["id"], 1, "positive")
    assert set(match["matched_on"]) == {"category", "territory"}
    assert row_counts() == before


def test_the_dry_run_reports_standard_when_no_rule_matches(client):
    operator, merchant = operator_and_merchant()
    add_rule(client, operator, "positive", categories=["agriculture"])
    before = row_counts()

    response = client.post(CHECK, json=listing_body(merchant, classification="important",
                                                    delivery_mode="sandbox"),
                           headers=merchant.headers)

    assert response.status_code == 200, response.json
    assert response.json == {**response.json, "decision": "standard", "matched_rules": []}
    assert row_counts() == before


def test_the_dry_run_applies_the_built_in_rules_to_the_body(client):
    merchant = make_member(Role.MERCHANT)

    response = client.post(CHECK, json=listing_body(merchant, classification="important",
                                                    delivery_mode="download",
                                                    contains_personal_info=True),
                           headers=merchant.headers)

    assert response.status_code == 200, response.json
    assert response.json["decision"] == "prohibited"
    assert cited(response.json["matched_rules"]) == {
        ("builtin:important-data-delivery", 1), ("builtin:unprotected-personal-information", 1)}


@pytest.mark.parametrize("role", [Role.BUYER, Role.OPERATOR])
def test_only_merchants_may_run_the_dry_run(client, role):
    member = make_member(role)

    response = client.post(CHECK, json=listing_body(member), headers=member.headers)

    assert response.status_code == 403
    assert response.json["code"] == "forbidden"


def test_the_dry_run_validates_the_listing_body(client):
    merchant = make_member(Role.MERCHANT)
    body = listing_body(merchant, classification="secret")
    del body["title"]

    response = client.post(CHECK, json=body, headers=merchant.headers)

    assert response.status_code == 422
    assert response.mimetype == PROBLEM
    assert {"title", "classification"} <= set(response.json["errors"])


# --- managing rules: authorization and validation -----------------------------------------

def test_an_operator_creates_a_rule_with_a_key_a_first_version_and_an_audit_entry(client):
    operator = make_member(Role.OPERATOR)

    response = client.post(RULES, json=rule_body(
        "negative", categories=["biometrics"], keywords=["人脸", "face"],
        classifications=["sensitive", "important"], contains_personal_info=True,
        territory="cross_border"), headers=operator.headers)

    assert response.status_code == 201, response.json
    rule = response.json
    assert rule["list"] == "negative"
    assert rule["version"] == 1
    assert uuid.UUID(rule["rule_key"])
    assert rule["categories"] == ["biometrics"]
    assert rule["keywords"] == ["人脸", "face"]
    assert rule["classifications"] == ["sensitive", "important"]
    assert rule["contains_personal_info"] is True
    assert rule["territory"] == "cross_border"
    assert rule["effective_from"] is not None
    assert rule["effective_to"] is None
    assert rule["retired_at"] is None
    with Session(db.engine) as session:
        actions = list(session.scalars(sa.select(AuditEntry.action)
                                       .where(AuditEntry.subject_id == rule["id"])))
    assert actions == ["admission_rule.created"]


@pytest.mark.parametrize("role", [Role.MERCHANT, Role.BUYER])
def test_only_operators_may_create_rules(client, role):
    member = make_member(role)

    response = client.post(RULES, json=rule_body(categories=["transport"]),
                           headers=member.headers)

    assert response.status_code == 403
    assert response.mimetype == PROBLEM
    assert response.json["code"] == "forbidden"
    assert row_counts()["admission_rules"] == 0


def test_an_anonymous_request_cannot_create_a_rule(client):
    response = client.post(RULES, json=rule_body(categories=["transport"]))

    assert response.status_code == 401
    assert response.json["code"] == "unauthorized"
    assert row_counts()["admission_rules"] == 0


@pytest.mark.parametrize("role", [Role.MERCHANT, Role.BUYER])
def test_only_operators_may_retire_rules(client, role):
    operator = make_member(Role.OPERATOR)
    rule = add_rule(client, operator, categories=["transport"])
    member = make_member(role)

    response = client.delete(f"{RULES}/{rule['id']}", headers=member.headers)

    assert response.status_code == 403
    assert [r["id"] for r in client.get(RULES, headers=operator.headers).json] == [rule["id"]]


def test_an_anonymous_request_cannot_retire_or_read_rules(client):
    operator = make_member(Role.OPERATOR)
    rule = add_rule(client, operator, categories=["transport"])

    assert client.delete(f"{RULES}/{rule['id']}").status_code == 401
    assert client.get(RULES).status_code == 401
    assert [r["id"] for r in client.get(RULES, headers=operator.headers).json] == [rule["id"]]


def test_retiring_an_unknown_rule_is_not_found(client):
    operator = make_member(Role.OPERATOR)

    response = client.delete(f"{RULES}/{uuid.uuid4()}", headers=operator.headers)

    assert response.status_code == 404
    assert response.mimetype == PROBLEM
    assert response.json["code"] == "admission_rule_not_found"


@pytest.mark.parametrize("criteria", [{}, {"categories": [], "keywords": []},
                                      {"contains_personal_info": None, "territory": None}],
                         ids=["none", "empty_lists", "nulls"])
def test_a_rule_without_any_criterion_is_refused(client, criteria):
    operator = make_member(Role.OPERATOR)

    response = client.post(RULES, json=rule_body(**criteria), headers=operator.headers)

    assert response.status_code == 422
    assert response.mimetype == PROBLEM
    assert response.json["code"] == "validation_error"
    assert response.json["errors"]
    assert row_counts()["admission_rules"] == 0


def test_a_rule_on_personal_information_being_absent_is_a_real_criterion(client):
    operator = make_member(Role.OPERATOR)

    response = client.post(RULES, json=rule_body("positive", contains_personal_info=False),
                           headers=operator.headers)

    assert response.status_code == 201, response.json
    assert response.json["contains_personal_info"] is False


def test_a_rule_ending_before_it_starts_is_refused(client):
    operator = make_member(Role.OPERATOR)
    now = clock.now()

    response = client.post(RULES, json=rule_body(
        categories=["transport"], effective_from=(now + timedelta(days=2)).isoformat(),
        effective_to=(now + timedelta(days=1)).isoformat()), headers=operator.headers)

    assert response.status_code == 422
    assert response.json["code"] == "validation_error"
    assert "effective_to" in response.json["errors"]
    assert row_counts()["admission_rules"] == 0


def test_a_rule_ending_before_now_without_a_start_is_refused(client):
    operator = make_member(Role.OPERATOR)

    response = client.post(RULES, json=rule_body(
        categories=["transport"], effective_to=(clock.now() - timedelta(days=1)).isoformat()),
        headers=operator.headers)

    assert response.status_code == 422
    assert "effective_to" in response.json["errors"]


@pytest.mark.parametrize("field", ["effective_from", "effective_to"])
def test_naive_datetimes_in_a_rule_are_refused(client, field):
    operator = make_member(Role.OPERATOR)

    response = client.post(RULES, json=rule_body(categories=["transport"],
                                                 **{field: "2030-01-01T00:00:00"}),
                           headers=operator.headers)

    assert response.status_code == 422
    assert response.mimetype == PROBLEM
    assert field in response.json["errors"]
    assert row_counts()["admission_rules"] == 0


@pytest.mark.parametrize("body", [
    {"list": "grey", "categories": ["transport"]},
    {"classifications": ["secret"]},
    {"territory": "offshore"},
    {"categories": ["transport"], "severity": "high"},
], ids=["unknown_list", "unknown_classification", "unknown_territory", "unknown_field"])
def test_a_rule_with_an_unknown_value_or_field_is_refused(client, body):
    operator = make_member(Role.OPERATOR)

    response = client.post(RULES, json={**rule_body(), **body}, headers=operator.headers)

    assert response.status_code == 422
    assert response.json["code"] == "validation_error"
    assert row_counts()["admission_rules"] == 0


def test_rules_are_listed_by_list_with_pagination(client):
    operator, merchant = operator_and_merchant()
    positive = add_rule(client, operator, "positive", categories=["agriculture"])
    negative = add_rule(client, operator, "negative", categories=["biometrics"])
    second_positive = add_rule(client, operator, "positive", keywords=["气象"])

    only_positive = client.get(RULES, query_string={"list": "positive"}, headers=merchant.headers)
    only_negative = client.get(RULES, query_string={"list": "negative"}, headers=merchant.headers)
    everything = client.get(RULES, headers=merchant.headers)

    assert only_positive.status_code == 200
    assert [r["id"] for r in only_positive.json] == [positive["id"], second_positive["id"]]
    assert all(r["list"] == "positive" for r in only_positive.json)
    assert [r["id"] for r in only_negative.json] == [negative["id"]]
    assert len(everything.json) == 3
    page = client.get(RULES, query_string={"page": 2, "page_size": 2}, headers=merchant.headers)
    assert [r["id"] for r in page.json] == [second_positive["id"]]
    assert json.loads(page.headers["X-Pagination"])["total"] == 3


def test_listing_rules_by_an_unknown_list_is_refused(client):
    member = make_member(Role.BUYER)

    response = client.get(RULES, query_string={"list": "grey"}, headers=member.headers)

    assert response.status_code == 422


# --- after a rejection --------------------------------------------------------------------

def test_a_rejected_listing_is_edited_back_to_draft_and_resubmitted_once_fixed(client):
    operator, merchant = operator_and_merchant()
    rule = add_rule(client, operator, keywords=["人脸"])
    listing_id = create_draft(client, merchant, title="人脸识别数据集",
                              contains_personal_info=True)
    assert_prohibited(client, merchant, listing_id, (rule["id"], 1),
                      ("builtin:unprotected-personal-information", 1))

    edited = client.patch(f"/api/v1/listings/{listing_id}", headers=merchant.headers, json={
        "title": "车辆识别数据集", "anonymized": True})

    assert edited.status_code == 200, edited.json
    assert edited.json["status"] == "draft"
    resubmitted = submit(client, merchant, listing_id)
    assert resubmitted.status_code == 200, resubmitted.json
    assert resubmitted.json["status"] == "pending_review"
    assert resubmitted.json["admission"]["decision"] == "standard"
    assert audit_actions(listing_id) == ["listing.created", "listing.admission_prohibited",
                                         "listing.updated", "listing.submitted"]


def test_a_rejected_listing_resubmitted_unchanged_is_rejected_again(client):
    merchant = make_member(Role.MERCHANT)
    listing_id = create_draft(client, merchant, classification="core")
    assert_prohibited(client, merchant, listing_id, ("builtin:core-data", 1))

    assert_prohibited(client, merchant, listing_id, ("builtin:core-data", 1))

    assert audit_actions(listing_id).count("listing.admission_prohibited") == 2


def test_another_merchant_cannot_submit_someone_elses_listing(client):
    merchant = make_member(Role.MERCHANT)
    intruder = make_member(Role.MERCHANT)
    listing_id = create_draft(client, merchant, classification="core")

    response = submit(client, intruder, listing_id)

    assert response.status_code == 404
    assert stored_listing(listing_id).status.value == "draft"
    assert stored_listing(listing_id).admission is None



# --- concurrency (PostgreSQL) -------------------------------------------------------------

@pytest.mark.postgres_only
def test_concurrent_supersessions_of_one_rule_make_exactly_one_new_version(app):
    operator = make_member(Role.OPERATOR)
    old = add_rule(app.test_client(), operator, categories=["biometrics"])

    responses = race(app, 8, lambda client, n: client.post(
        RULES, json=rule_body(categories=[f"sector-{n}"], supersedes=old["id"]),
        headers=operator.headers))

    statuses = sorted(response.status_code for response in responses)
    assert statuses == [201] + [409] * 7, [r.get_data(as_text=True) for r in responses]
    assert {r.json["code"] for r in responses if r.status_code == 409} == {"invalid_transition"}
    with Session(db.engine) as session:
        versions = sorted(session.scalars(sa.select(AdmissionRule.version)))
    assert versions == [1, 2]


@pytest.mark.postgres_only
def test_concurrent_retirements_of_one_rule_are_recorded_once(app):
    operator = make_member(Role.OPERATOR)
    rule = add_rule(app.test_client(), operator, categories=["biometrics"])

    responses = race(app, 8, lambda client, n: client.delete(f"{RULES}/{rule['id']}",
                                                             headers=operator.headers))

    assert [response.status_code for response in responses] == [204] * 8
    with Session(db.engine) as session:
        actions = list(session.scalars(sa.select(AuditEntry.action)
                                       .where(AuditEntry.subject_id == rule["id"])))
    assert actions == ["admission_rule.created", "admission_rule.retired"]
