"""Listings through the HTTP API: create, edit, lifecycle, visibility, search and trace."""

from __future__ import annotations

import json
import threading
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from app.audit import AuditEntry
from app.db import unit_of_work
from app.parties.models import Role
from listings.models import Listing
from tests.factories import Member, make_member
from tests.listings.factories import listing_body

# As _problem: several tests name the body it returns `problem`.
from tests.support import problem as _problem

LISTINGS = "/api/v1/listings"
PROBLEM = "application/problem+json"


# --- helpers -------------------------------------------------------------------------------

def _url(listing_id: str, step: str = "") -> str:
    return f"{LISTINGS}/{listing_id}" + (f"/{step}" if step else "")


def _create(client: FlaskClient, merchant: Member, **overrides: Any) -> dict[str, Any]:
    response = client.post(LISTINGS, json=listing_body(merchant, **overrides),
                           headers=merchant.headers)
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def _submit(client: FlaskClient, merchant: Member, listing_id: str) -> dict[str, Any]:
    response = client.post(_url(listing_id, "submit"), headers=merchant.headers)
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def _review(client: FlaskClient, operator: Member, listing_id: str, decision: str,
            reason: str = "Checked the source and the rights") -> TestResponse:
    return client.post(_url(listing_id, "review"), headers=operator.headers,
                       json={"decision": decision, "reason": reason})


def _step(client: FlaskClient, actor: Member, listing_id: str, step: str,
          reason: str | None = "Routine market supervision") -> TestResponse:
    body = {} if reason is None else {"reason": reason}
    return client.post(_url(listing_id, step), headers=actor.headers, json=body)


def _pending(client: FlaskClient, merchant: Member, **overrides: Any) -> dict[str, Any]:
    listing = _create(client, merchant, **overrides)
    submitted = _submit(client, merchant, listing["id"])
    assert submitted["status"] == "pending_review"
    return submitted


def _listed(client: FlaskClient, merchant: Member, operator: Member,
            **overrides: Any) -> dict[str, Any]:
    listing = _pending(client, merchant, **overrides)
    approved = _review(client, operator, listing["id"], "approve")
    assert approved.status_code == 200, approved.get_json()
    assert approved.json["status"] == "listed"
    return approved.get_json()


def _rejected(client: FlaskClient, merchant: Member, operator: Member) -> dict[str, Any]:
    listing = _pending(client, merchant)
    rejected = _review(client, operator, listing["id"], "reject", "Source not documented")
    assert rejected.status_code == 200, rejected.get_json()
    assert rejected.json["status"] == "rejected"
    return rejected.get_json()


def _in_status(client: FlaskClient, status: str, merchant: Member,
               operator: Member) -> dict[str, Any]:
    """A listing of the merchant's brought to the status through the API."""
    if status == "draft":
        return _create(client, merchant)
    if status == "pending_review":
        return _pending(client, merchant)
    if status == "rejected":
        return _rejected(client, merchant, operator)
    listing = _listed(client, merchant, operator)
    if status == "listed":
        return listing
    step = {"suspended": "suspend", "delisted": "delist"}[status]
    moved = _step(client, operator, listing["id"], step)
    assert moved.status_code == 200, moved.get_json()
    assert moved.json["status"] == status
    return moved.get_json()


def _stored(listing_id: str) -> Listing | None:
    with unit_of_work() as session:
        return session.get(Listing, uuid.UUID(listing_id), populate_existing=True)


def _listing_count() -> int:
    with unit_of_work() as session:
        return session.scalar(sa.select(sa.func.count()).select_from(Listing))


def _audit_rows(listing_id: str) -> list[AuditEntry]:
    with unit_of_work() as session:
        return list(session.scalars(
            sa.select(AuditEntry).where(AuditEntry.subject_type == "listings",
                                        AuditEntry.subject_id == listing_id)
            .order_by(AuditEntry.id)))


def _actions(listing_id: str) -> list[str]:
    return [row.action for row in _audit_rows(listing_id)]


def _pagination(response: TestResponse) -> dict[str, Any]:
    return json.loads(response.headers["X-Pagination"])


def _titles(response: TestResponse) -> set[str]:
    assert response.status_code == 200, response.get_json()
    return {listing["title"] for listing in response.get_json()}


@pytest.fixture
def merchant(app: Flask) -> Member:
    return make_member(Role.MERCHANT)


@pytest.fixture
def operator(app: Flask) -> Member:
    return make_member(Role.OPERATOR)


# --- create --------------------------------------------------------------------------------

def test_merchant_creates_a_draft_that_echoes_every_contract_field(client, merchant):
    holder, processor, collector = (make_member(Role.MERCHANT) for _ in range(3))
    body = listing_body(
        merchant,
        title="长三角企业信用摘要 Yangtze delta enterprise credit summaries",
        description="Quarterly credit summaries of 40,000 enterprises, 季度更新.",
        category="finance",
        tags=["credit", "信用"],
        classification="sensitive",
        contains_personal_info=True,
        anonymized=True,
        consent_basis="Written consent of each sole proprietor, 2024 campaign",
        source={"origin": "purchased", "description": "Bought from the credit bureau",
                "legal_basis": "Data purchase contract 2024-88", "authorization": None},
        rights={"holder_id": holder.id, "processor_ids": [processor.id],
                "operator_id": merchant.id},
        usage_scope={"purposes": ["credit_assessment"], "term_days": 180,
                     "territory": "cross_border", "resale": True, "derivatives": False,
                     "cross_border_assessment_ref": "CAC 数据出境安全评估 2024-0031"},
        delivery_mode="sandbox",
        price_model="per_call",
        unit_price=250,
        currency="CNY",
        licenses_available=None,
        revenue_shares=[
            {"party_id": collector.id, "role": "collector", "basis": "contribution",
             "weight": 2.5, "invested_amount": 0},
            {"party_id": holder.id, "role": "holder", "basis": "investment", "weight": 1,
             "invested_amount": 5_000_000},
        ],
    )

    response = client.post(LISTINGS, json=body, headers=merchant.headers)

    assert response.status_code == 201, response.get_json()
    created = response.get_json()
    for name, value in body.items():
        assert created[name] == value, name
    assert created["licenses_available"] is None  # null: unlimited
    assert created["status"] == "draft"
    assert created["merchant_id"] == merchant.id
    assert created["version"] == 1
    assert uuid.UUID(created["id"])
    assert response.headers["ETag"] == '"1"'
    detail = client.get(_url(created["id"]), headers=merchant.headers)
    assert detail.status_code == 200
    assert {name: detail.json[name] for name in body} == body
    stored = _stored(created["id"])
    assert stored is not None and stored.unit_price == 250 and stored.licenses_available is None


def test_omitted_optional_fields_take_their_documented_defaults(client, merchant):
    body = listing_body(merchant)
    for optional in ("tags", "contains_personal_info", "anonymized", "consent_basis",
                     "currency", "licenses_available", "revenue_shares"):
        del body[optional]
    del body["rights"]["processor_ids"]

    response = client.post(LISTINGS, json=body, headers=merchant.headers)

    assert response.status_code == 201, response.get_json()
    created = response.get_json()
    assert created["tags"] == [] and created["revenue_shares"] == []
    assert created["currency"] == "CNY"
    assert created["licenses_available"] is None
    assert created["consent_basis"] is None
    assert created["contains_personal_info"] is False and created["anonymized"] is False
    assert created["rights"]["processor_ids"] == []


def test_a_buyer_cannot_create_a_listing(client, merchant):
    buyer = make_member(Role.BUYER)
    response = client.post(LISTINGS, json=listing_body(buyer), headers=buyer.headers)
    _problem(response, 403, "forbidden")
    assert _listing_count() == 0


def test_an_anonymous_request_cannot_create_a_listing(client, merchant):
    response = client.post(LISTINGS, json=listing_body(merchant))
    _problem(response, 401, "unauthorized")
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert _listing_count() == 0


def test_a_merchant_without_the_operation_right_cannot_list_the_product(client, merchant):
    other = make_member(Role.MERCHANT)
    body = listing_body(merchant, rights={"holder_id": merchant.id, "processor_ids": [],
                                          "operator_id": other.id})

    response = client.post(LISTINGS, json=body, headers=merchant.headers)

    problem = _problem(response, 422, "operation_right_required")
    assert "rights.operator_id" in problem["errors"]
    assert _listing_count() == 0


@pytest.mark.parametrize("where", ["holder_id", "processor_ids", "revenue_shares"])
def test_an_unknown_party_named_in_rights_or_revenue_shares_is_refused(client, merchant, where):
    ghost = str(uuid.uuid4())
    rights = {"holder_id": merchant.id, "processor_ids": [], "operator_id": merchant.id}
    shares: list[dict[str, Any]] = []
    if where == "holder_id":
        rights["holder_id"] = ghost
    elif where == "processor_ids":
        rights["processor_ids"] = [ghost]
    else:
        shares = [{"party_id": ghost, "role": "processor", "basis": "contribution", "weight": 1}]

    response = client.post(LISTINGS, json=listing_body(merchant, rights=rights,
                                                       revenue_shares=shares),
                           headers=merchant.headers)

    problem = _problem(response, 422, "unknown_party")
    assert problem["missing"] == [ghost]
    assert _listing_count() == 0


@pytest.mark.parametrize("field, value", [
    ("status", "listed"),
    ("merchant_id", str(uuid.uuid4())),
    ("id", str(uuid.uuid4())),
    ("version", 7),
    ("created_at", "2024-01-01T00:00:00+00:00"),
    ("admission", {"decision": "encouraged"}),
    ("colour", "blue"),
])
def test_unknown_and_server_owned_fields_on_create_are_refused_and_nothing_is_stored(
        client, merchant, field, value):
    body = listing_body(merchant, **{field: value})

    response = client.post(LISTINGS, json=body, headers=merchant.headers)

    problem = _problem(response, 422, "validation_error")
    assert field in problem["errors"]
    assert _listing_count() == 0
    listed = client.get(LISTINGS, headers=merchant.headers)
    assert listed.get_json() == []


def test_an_unknown_field_inside_a_nested_object_is_refused(client, merchant):
    body = listing_body(merchant)
    body["usage_scope"]["exclusive"] = True

    response = client.post(LISTINGS, json=body, headers=merchant.headers)

    problem = _problem(response, 422, "validation_error")
    assert "usage_scope" in problem["errors"]
    assert _listing_count() == 0


def _set(body: dict[str, Any], path: str, value: Any) -> None:
    *parents, leaf = path.split(".")
    target: Any = body
    for part in parents:
        target = target[int(part)] if isinstance(target, list) else target[part]
    target[leaf] = value


@pytest.mark.parametrize("path, value", [
    ("classification", "top_secret"),
    ("delivery_mode", "email"),
    ("price_model", "auction"),
    ("currency", "USD"),
    ("source.origin", "scraped"),
    ("usage_scope.territory", "offshore"),
    ("usage_scope.purposes", []),
    ("unit_price", -1),
    ("unit_price", 0),
    ("unit_price", 12.5),
    ("unit_price", 12.0),
    ("unit_price", "1200"),
    ("unit_price", None),
    ("licenses_available", 0),
    ("licenses_available", 2.5),
    ("usage_scope.term_days", 30.5),
    ("rights.holder_id", "not-a-uuid"),
    ("revenue_shares.0.role", "shareholder"),
    ("revenue_shares.0.basis", "luck"),
    ("revenue_shares.0.weight", 0),
    ("revenue_shares.0.invested_amount", -5),
    ("revenue_shares.0.invested_amount", 99.99),
    ("title", ""),
])
def test_invalid_values_on_create_are_refused(client, merchant, path, value):
    body = listing_body(merchant, revenue_shares=[
        {"party_id": merchant.id, "role": "holder", "basis": "investment", "weight": 1,
         "invested_amount": 100}])
    _set(body, path, value)

    response = client.post(LISTINGS, json=body, headers=merchant.headers)

    problem = _problem(response, 422, "validation_error")
    assert path.split(".")[0] in problem["errors"]
    assert _listing_count() == 0


def test_a_missing_required_field_is_named_in_the_problem(client, merchant):
    body = listing_body(merchant)
    del body["unit_price"], body["rights"]

    response = client.post(LISTINGS, json=body, headers=merchant.headers)

    problem = _problem(response, 422, "validation_error")
    assert {"unit_price", "rights"} <= set(problem["errors"])


def test_malformed_json_on_create_is_a_bad_request(client, merchant):
    response = client.post(LISTINGS, data='{"title": "Traffic",', headers={
        **merchant.headers, "Content-Type": "application/json"})
    _problem(response, 400, "malformed_json")
    assert _listing_count() == 0


# --- edit ----------------------------------------------------------------------------------

def test_a_patch_changes_only_the_fields_it_names(client, merchant):
    created = _create(client, merchant)

    response = client.patch(_url(created["id"]), headers=merchant.headers,
                            json={"title": "Hangzhou traffic flows 杭州交通流量",
                                  "unit_price": 99_000})

    assert response.status_code == 200, response.get_json()
    edited = response.get_json()
    assert edited["title"] == "Hangzhou traffic flows 杭州交通流量"
    assert edited["unit_price"] == 99_000
    assert edited["version"] == 2
    assert response.headers["ETag"] == '"2"'
    untouched = {k: v for k, v in created.items()
                 if k not in {"title", "unit_price", "version", "updated_at"}}
    assert {k: edited[k] for k in untouched} == untouched
    detail = client.get(_url(created["id"]), headers=merchant.headers).get_json()
    assert detail["title"] == edited["title"] and detail["description"] == created["description"]
    assert _actions(created["id"]) == ["listing.created", "listing.updated"]
    assert _audit_rows(created["id"])[-1].details["fields"] == ["title", "unit_price"]


def test_a_patch_to_a_price_of_zero_is_refused(client, merchant):
    """Every order of a listing is paid: a zero price would have no payment to take."""
    created = _create(client, merchant)

    response = client.patch(_url(created["id"]), headers=merchant.headers,
                            json={"unit_price": 0})

    problem = _problem(response, 422, "validation_error")
    assert "unit_price" in problem["errors"]
    stored = _stored(created["id"])
    assert (stored.unit_price, stored.version) == (created["unit_price"], 1)


def test_a_patch_replaces_a_nested_object_whole(client, merchant):
    created = _create(client, merchant)
    scope = {"purposes": ["insurance_pricing"], "term_days": None, "territory": "domestic",
             "resale": False, "derivatives": False, "cross_border_assessment_ref": None}

    response = client.patch(_url(created["id"]), headers=merchant.headers,
                            json={"usage_scope": scope, "licenses_available": None})

    assert response.status_code == 200, response.get_json()
    assert response.json["usage_scope"] == scope
    assert response.json["licenses_available"] is None
    assert response.json["rights"] == created["rights"]


def test_a_patch_with_a_partial_nested_object_is_refused(client, merchant):
    created = _create(client, merchant)

    response = client.patch(_url(created["id"]), headers=merchant.headers,
                            json={"rights": {"holder_id": merchant.id}})

    problem = _problem(response, 422, "validation_error")
    assert "rights" in problem["errors"]
    assert _stored(created["id"]).version == 1


def test_a_rejected_listing_can_be_edited_and_returns_to_draft(client, merchant, operator):
    rejected = _rejected(client, merchant, operator)

    response = client.patch(_url(rejected["id"]), headers=merchant.headers,
                            json={"description": "Now with the sensor licence attached."})

    assert response.status_code == 200, response.get_json()
    assert response.json["status"] == "draft"
    assert response.json["description"] == "Now with the sensor licence attached."


@pytest.mark.parametrize("status", ["pending_review", "listed", "suspended", "delisted"])
def test_a_listing_past_draft_cannot_be_edited(client, merchant, operator, status):
    listing = _in_status(client, status, merchant, operator)

    response = client.patch(_url(listing["id"]), headers=merchant.headers,
                            json={"unit_price": 1})

    _problem(response, 409, "invalid_transition")
    stored = _stored(listing["id"])
    assert stored.unit_price == listing["unit_price"]
    assert stored.version == listing["version"]


@pytest.mark.parametrize("role", [Role.MERCHANT, Role.BUYER, Role.OPERATOR])
def test_only_the_owner_can_patch_a_listing(client, merchant, role):
    created = _create(client, merchant)
    other = make_member(role)

    response = client.patch(_url(created["id"]), headers=other.headers,
                            json={"title": "Hijacked"})

    _problem(response, 404, "listing_not_found")
    assert _stored(created["id"]).title == created["title"]


def test_a_patch_of_an_unknown_listing_is_not_found(client, merchant):
    response = client.patch(_url(str(uuid.uuid4())), headers=merchant.headers,
                            json={"title": "Nothing"})
    _problem(response, 404, "listing_not_found")


def test_a_patch_with_a_stale_if_match_fails_its_precondition(client, merchant):
    created = _create(client, merchant)
    first = client.patch(_url(created["id"]), headers={**merchant.headers, "If-Match": '"1"'},
                         json={"title": "First edit"})
    assert first.status_code == 200, first.get_json()

    second = client.patch(_url(created["id"]), headers={**merchant.headers, "If-Match": '"1"'},
                          json={"title": "Second edit"})

    problem = _problem(second, 412, "precondition_failed")
    assert problem["current_version"] == 2
    stored = _stored(created["id"])
    assert (stored.title, stored.version) == ("First edit", 2)


@pytest.mark.parametrize("etag", ['"1"', 'W/"1"'])
def test_a_patch_with_the_current_if_match_succeeds(client, merchant, etag):
    created = _create(client, merchant)

    response = client.patch(_url(created["id"]), headers={**merchant.headers, "If-Match": etag},
                            json={"category": "logistics"})

    assert response.status_code == 200, response.get_json()
    assert response.json["category"] == "logistics"
    assert response.headers["ETag"] == '"2"'


def test_a_patch_with_a_stale_body_version_conflicts(client, merchant):
    created = _create(client, merchant)
    assert client.patch(_url(created["id"]), headers=merchant.headers,
                        json={"title": "First edit", "version": 1}).status_code == 200

    response = client.patch(_url(created["id"]), headers=merchant.headers,
                            json={"title": "Second edit", "version": 1})

    problem = _problem(response, 409, "version_conflict")
    assert problem["current_version"] == 2
    assert _stored(created["id"]).title == "First edit"


@pytest.mark.parametrize("version", [1.5, "1", True])
def test_a_patch_body_version_must_be_a_whole_number(client, merchant, version):
    created = _create(client, merchant)

    response = client.patch(_url(created["id"]), headers=merchant.headers,
                            json={"title": "Edit", "version": version})

    problem = _problem(response, 422, "validation_error")
    assert "version" in problem["errors"]
    assert _stored(created["id"]).title == created["title"]


@pytest.mark.parametrize("if_match", ["1", "abc", '"v1"', '"1", "2"', ""])
def test_a_malformed_if_match_is_a_bad_request(client, merchant, if_match):
    created = _create(client, merchant)

    response = client.patch(_url(created["id"]),
                            headers={**merchant.headers, "If-Match": if_match},
                            json={"title": "Edit"})

    _problem(response, 400, "bad_request")
    assert _stored(created["id"]).title == created["title"]


@pytest.mark.parametrize("field, value", [
    ("status", "listed"),
    ("merchant_id", str(uuid.uuid4())),
    ("id", str(uuid.uuid4())),
    ("listed_at", "2024-01-01T00:00:00+00:00"),
    ("colour", "blue"),
])
def test_server_owned_and_unknown_fields_in_a_patch_are_refused(client, merchant, field, value):
    created = _create(client, merchant)

    response = client.patch(_url(created["id"]), headers=merchant.headers,
                            json={field: value, "title": "Sneaky"})

    problem = _problem(response, 422, "validation_error")
    assert field in problem["errors"]
    stored = _stored(created["id"])
    assert (stored.status.value, stored.title, stored.version) == ("draft", created["title"], 1)


def test_a_patch_cannot_give_the_operation_right_to_another_party(client, merchant):
    created = _create(client, merchant)
    other = make_member(Role.MERCHANT)

    response = client.patch(_url(created["id"]), headers=merchant.headers, json={
        "rights": {"holder_id": merchant.id, "processor_ids": [], "operator_id": other.id}})

    _problem(response, 422, "operation_right_required")
    assert _stored(created["id"]).rights.operator_id == merchant.party.id


@pytest.mark.parametrize("where", ["holder_id", "processor_ids", "revenue_shares"])
def test_a_patch_naming_an_unknown_party_is_refused(client, merchant, where):
    created = _create(client, merchant)
    ghost = str(uuid.uuid4())
    if where == "revenue_shares":
        changes: dict[str, Any] = {"revenue_shares": [
            {"party_id": ghost, "role": "collector", "basis": "contribution", "weight": 1}]}
    else:
        rights = {"holder_id": merchant.id, "processor_ids": [], "operator_id": merchant.id}
        rights[where] = [ghost] if where == "processor_ids" else ghost
        changes = {"rights": rights}

    response = client.patch(_url(created["id"]), headers=merchant.headers, json=changes)

    problem = _problem(response, 422, "unknown_party")
    assert problem["missing"] == [ghost]
    stored = _stored(created["id"])
    assert stored.version == 1 and stored.rights.holder_id == merchant.party.id
    assert stored.revenue_shares == []


@pytest.mark.postgres_only
def test_concurrent_edits_of_one_draft_let_exactly_one_win(app, client, merchant):
    created = _create(client, merchant)
    editors = 8
    start = threading.Barrier(editors)
    results: dict[int, TestResponse] = {}
    errors: list[BaseException] = []

    def edit(n: int) -> None:
        try:
            own_client = app.test_client()
            start.wait()
            results[n] = own_client.patch(
                _url(created["id"]), headers={**merchant.headers, "If-Match": '"1"'},
                json={"title": f"Edit number {n}", "unit_price": 1_000 + n})
        except BaseException as error:  # surfaced in the main thread
            errors.append(error)

    workers = [threading.Thread(target=edit, args=(n,)) for n in range(editors)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)

    assert not errors
    assert len(results) == editors
    winners = [n for n, response in results.items() if response.status_code == 200]
    assert len(winners) == 1, {n: r.status_code for n, r in results.items()}
    losers = [response for n, response in results.items() if n != winners[0]]
    for response in losers:
        assert response.status_code in (409, 412), response.get_json()
        assert response.get_json()["code"] in ("version_conflict", "precondition_failed")
    winner = winners[0]
    stored = _stored(created["id"])
    assert (stored.title, stored.unit_price, stored.version) == (
        f"Edit number {winner}", 1_000 + winner, 2)
    assert results[winner].get_json()["title"] == f"Edit number {winner}"
    assert _actions(created["id"]) == ["listing.created", "listing.updated"]


# --- visibility ----------------------------------------------------------------------------

@pytest.mark.parametrize("status", ["draft", "pending_review", "rejected", "suspended",
                                    "delisted"])
def test_an_unlisted_listing_is_hidden_from_other_merchants_and_buyers(
        client, merchant, operator, status):
    listing = _in_status(client, status, merchant, operator)

    for outsider in (make_member(Role.MERCHANT), make_member(Role.BUYER),
                     make_member(Role.CERTIFIER)):
        response = client.get(_url(listing["id"]), headers=outsider.headers)
        _problem(response, 404, "listing_not_found")
    for insider in (merchant, operator, make_member(Role.REGULATOR)):
        response = client.get(_url(listing["id"]), headers=insider.headers)
        assert response.status_code == 200, response.get_json()
        assert response.json["status"] == status


def test_a_listed_listing_is_visible_to_every_authenticated_party(client, merchant, operator):
    listing = _listed(client, merchant, operator)

    for role in Role:
        response = client.get(_url(listing["id"]), headers=make_member(role).headers)
        assert response.status_code == 200, (role, response.get_json())
        assert response.json["id"] == listing["id"]
        assert response.json["status"] == "listed"
        assert response.headers["ETag"] == f'"{response.json["version"]}"'
    _problem(client.get(_url(listing["id"])), 401, "unauthorized")


def test_an_unknown_listing_is_not_found(client, operator):
    _problem(client.get(_url(str(uuid.uuid4())), headers=operator.headers), 404,
             "listing_not_found")


# --- lifecycle -----------------------------------------------------------------------------

def test_an_operator_approves_a_pending_listing_with_a_reason(client, merchant, operator):
    listing = _pending(client, merchant)

    response = _review(client, operator, listing["id"], "approve", "Rights chain verified")

    assert response.status_code == 200, response.get_json()
    assert response.json["status"] == "listed"
    assert response.json["status_reason"] == "Rights chain verified"
    assert response.json["listed_at"] is not None
    reviewed = _audit_rows(listing["id"])[-1]
    assert reviewed.action == "listing.reviewed"
    assert reviewed.actor_id == operator.party.id
    # The approval re-ran admission under the rules in force, and says what it decided.
    assert reviewed.details == {"status": "listed", "decision": "approve",
                                "reason": "Rights chain verified",
                                "admission": {"decision": "standard",
                                              "explanation": response.json["admission"][
                                                  "explanation"],
                                              "matched_rules": []}}


def test_an_operator_rejects_a_pending_listing_with_a_reason(client, merchant, operator):
    listing = _pending(client, merchant)

    response = _review(client, operator, listing["id"], "reject", "Legal basis missing")

    assert response.status_code == 200, response.get_json()
    assert response.json["status"] == "rejected"
    assert response.json["status_reason"] == "Legal basis missing"
    reviewed = _audit_rows(listing["id"])[-1]
    assert (reviewed.action, reviewed.actor_id) == ("listing.reviewed", operator.party.id)
    assert reviewed.details["decision"] == "reject"


@pytest.mark.parametrize("body", [
    {"decision": "approve"},
    {"decision": "approve", "reason": ""},
    {"decision": "maybe", "reason": "Unsure"},
    {"reason": "No decision"},
])
def test_a_review_needs_a_valid_decision_and_a_reason(client, merchant, operator, body):
    listing = _pending(client, merchant)

    response = client.post(_url(listing["id"], "review"), headers=operator.headers, json=body)

    _problem(response, 422, "validation_error")
    assert _stored(listing["id"]).status.value == "pending_review"
    assert _actions(listing["id"])[-1] == "listing.submitted"


@pytest.mark.parametrize("role", [Role.MERCHANT, Role.REGULATOR, Role.BUYER])
def test_only_an_operator_can_review(client, merchant, role):
    listing = _pending(client, merchant)
    actor = merchant if role is Role.MERCHANT else make_member(role)

    response = _review(client, actor, listing["id"], "approve")

    _problem(response, 403, "forbidden")
    assert _stored(listing["id"]).status.value == "pending_review"


def test_an_operator_suspends_and_relists_a_listed_listing(client, merchant, operator):
    listing = _listed(client, merchant, operator)

    suspended = _step(client, operator, listing["id"], "suspend", "Complaint under review")
    assert suspended.status_code == 200, suspended.get_json()
    assert suspended.json["status"] == "suspended"
    assert suspended.json["status_reason"] == "Complaint under review"
    assert suspended.headers["ETag"] == f'"{suspended.json["version"]}"'

    relisted = _step(client, operator, listing["id"], "relist", "Complaint dismissed")
    assert relisted.status_code == 200, relisted.get_json()
    assert relisted.json["status"] == "listed"
    assert relisted.json["status_reason"] == "Complaint dismissed"

    rows = _audit_rows(listing["id"])[-2:]
    assert [(r.action, r.actor_id, r.details["reason"]) for r in rows] == [
        ("listing.suspended", operator.party.id, "Complaint under review"),
        ("listing.relisted", operator.party.id, "Complaint dismissed")]


@pytest.mark.parametrize("step", ["suspend", "relist"])
def test_a_merchant_cannot_suspend_or_relist_even_its_own_listing(client, merchant, operator,
                                                                  step):
    listing = _in_status(client, "listed" if step == "suspend" else "suspended", merchant,
                         operator)

    response = _step(client, merchant, listing["id"], step)

    _problem(response, 403, "forbidden")
    assert _stored(listing["id"]).status.value == listing["status"]


@pytest.mark.parametrize("status", ["listed", "suspended", "pending_review"])
def test_the_owner_delists_its_listing(client, merchant, operator, status):
    listing = _in_status(client, status, merchant, operator)

    response = _step(client, merchant, listing["id"], "delist", "Product retired")

    assert response.status_code == 200, response.get_json()
    assert response.json["status"] == "delisted"
    assert response.json["status_reason"] == "Product retired"
    delisted = _audit_rows(listing["id"])[-1]
    assert (delisted.action, delisted.actor_id) == ("listing.delisted", merchant.party.id)
    assert delisted.details == {"status": "delisted", "reason": "Product retired"}


def test_an_operator_delists_a_merchants_listing(client, merchant, operator):
    listing = _listed(client, merchant, operator)

    response = _step(client, operator, listing["id"], "delist", "Repeated quality complaints")

    assert response.status_code == 200, response.get_json()
    assert response.json["status"] == "delisted"
    delisted = _audit_rows(listing["id"])[-1]
    assert (delisted.action, delisted.actor_id) == ("listing.delisted", operator.party.id)


def test_another_merchant_cannot_delist_a_listing(client, merchant, operator):
    listing = _listed(client, merchant, operator)
    other = make_member(Role.MERCHANT)

    response = _step(client, other, listing["id"], "delist", "Competitor")

    _problem(response, 404, "listing_not_found")
    assert _stored(listing["id"]).status.value == "listed"
    assert _actions(listing["id"])[-1] == "listing.reviewed"


@pytest.mark.parametrize("status, actor, step", [
    ("draft", "operator", "suspend"),
    ("pending_review", "operator", "suspend"),
    ("draft", "operator", "relist"),
    ("listed", "operator", "relist"),
    ("draft", "merchant", "delist"),
    ("rejected", "merchant", "delist"),
    ("delisted", "operator", "delist"),
    ("delisted", "operator", "suspend"),
    ("draft", "operator", "approve"),
    ("listed", "operator", "approve"),
    ("listed", "operator", "reject"),
    ("rejected", "operator", "approve"),
    ("pending_review", "merchant", "submit"),
    ("listed", "merchant", "submit"),
])
def test_an_invalid_transition_conflicts_and_changes_nothing(client, merchant, operator,
                                                            status, actor, step):
    listing = _in_status(client, status, merchant, operator)
    before = _actions(listing["id"])
    member = operator if actor == "operator" else merchant

    if step in ("approve", "reject"):
        response = _review(client, member, listing["id"], step)
    elif step == "submit":
        response = client.post(_url(listing["id"], "submit"), headers=member.headers)
    else:
        response = _step(client, member, listing["id"], step)

    problem = _problem(response, 409, "invalid_transition")
    assert problem["status"] == 409
    stored = _stored(listing["id"])
    assert (stored.status.value, stored.version) == (status, listing["version"])
    assert _actions(listing["id"]) == before


@pytest.mark.parametrize("step, status", [("suspend", "listed"), ("relist", "suspended"),
                                          ("delist", "listed")])
@pytest.mark.parametrize("reason", [None, ""])
def test_a_lifecycle_step_needs_a_reason(client, merchant, operator, step, status, reason):
    listing = _in_status(client, status, merchant, operator)

    response = _step(client, operator, listing["id"], step, reason)

    problem = _problem(response, 422, "validation_error")
    assert "reason" in problem["errors"]
    assert _stored(listing["id"]).status.value == status


@pytest.mark.parametrize("step", ["review", "suspend", "relist", "delist"])
def test_a_lifecycle_step_on_an_unknown_listing_is_not_found(client, operator, step):
    body = {"reason": "Check"} | ({"decision": "approve"} if step == "review" else {})
    response = client.post(_url(str(uuid.uuid4()), step), headers=operator.headers, json=body)
    _problem(response, 404, "listing_not_found")


# --- search --------------------------------------------------------------------------------

TRAFFIC = "Shanghai road traffic flows 上海道路交通流量"
WEATHER = "Beijing weather observations 北京气象观测"
CREDIT = "Enterprise credit summaries 企业信用摘要"
FARM = "Farm yields 农业产量"


@pytest.fixture
def catalog(client, operator) -> dict[str, Member]:
    """Four listed products of two merchants, a draft of each and a pending one."""
    first, second = make_member(Role.MERCHANT), make_member(Role.MERCHANT)
    _listed(client, first, operator, title=TRAFFIC,
            description="Hourly vehicle counts on arterial roads.", category="transport",
            classification="general", unit_price=120_000)
    _listed(client, first, operator, title=WEATHER,
            description="Hourly temperature and rainfall, 每小时降雨量.", category="weather",
            classification="open", unit_price=5_000)
    _listed(client, second, operator, title=CREDIT,
            description="Quarterly credit ratings of listed companies.", category="finance",
            classification="general", unit_price=300_000)
    _listed(client, second, operator, title=FARM,
            description="County-level grain yields per season.", category="agriculture",
            classification="open", unit_price=80_000)
    _create(client, first, title="Traffic draft 交通草稿", category="transport", unit_price=1_000)
    _create(client, second, title="Grid load draft 电网负荷", category="energy",
            unit_price=50_000)
    _pending(client, second, title="Pending port throughput 港口吞吐量", category="transport",
             unit_price=70_000)
    return {"first": first, "second": second}


LISTED = {TRAFFIC, WEATHER, CREDIT, FARM}


@pytest.mark.parametrize("query, expected", [
    ({"category": "transport"}, {TRAFFIC}),
    ({"category": "mining"}, set()),
    ({"q": "traffic"}, {TRAFFIC}),
    ({"q": "TRAFFIC Shanghai"}, {TRAFFIC}),
    ({"q": "交通流量"}, {TRAFFIC}),
    ({"q": "降雨量"}, {WEATHER}),
    ({"q": "hourly"}, {TRAFFIC, WEATHER}),
    ({"q": "hourly rainfall"}, {WEATHER}),
    ({"q": "traffic rainfall"}, set()),
    ({"q": "100%"}, set()),
    # Two-character words (a character-pair index serves them on PostgreSQL).
    ({"q": "交通"}, {TRAFFIC}),
    ({"q": "气象"}, {WEATHER}),
    ({"q": "小时"}, {WEATHER}),  # in the description
    ({"q": "HO"}, {TRAFFIC, WEATHER}),  # "Hourly", ignoring case
    ({"q": "0%"}, set()),
    ({"q": "交通 hourly"}, {TRAFFIC}),
    ({"classification": "open"}, {WEATHER, FARM}),
    ({"status": "listed"}, LISTED),
    ({"status": "draft"}, set()),
    ({"status": "pending_review"}, set()),
    ({"merchant_id": "second"}, {CREDIT, FARM}),
    ({"min_price": 100_000}, {TRAFFIC, CREDIT}),
    ({"max_price": 80_000}, {WEATHER, FARM}),
    ({"min_price": 80_000, "max_price": 120_000}, {TRAFFIC, FARM}),
    ({"category": "transport", "q": "上海", "classification": "general", "max_price": 120_000},
     {TRAFFIC}),
    ({}, LISTED),
])
def test_search_filters_the_listed_catalog(client, catalog, query, expected):
    if "merchant_id" in query:
        query = {**query, "merchant_id": catalog[query["merchant_id"]].id}
    buyer = make_member(Role.BUYER)

    response = client.get(LISTINGS, headers=buyer.headers, query_string=query)

    assert _titles(response) == expected
    assert _pagination(response)["total"] == len(expected)


def test_non_owners_see_only_listed_listings(client, catalog):
    for viewer in (make_member(Role.BUYER), make_member(Role.MERCHANT),
                   make_member(Role.CERTIFIER)):
        response = client.get(LISTINGS, headers=viewer.headers, query_string={"page_size": 100})
        assert _titles(response) == LISTED
        assert {listing["status"] for listing in response.get_json()} == {"listed"}


def test_the_owner_sees_its_own_unlisted_listings_too(client, catalog):
    first, second = catalog["first"], catalog["second"]

    assert _titles(client.get(LISTINGS, headers=first.headers)) == LISTED | {
        "Traffic draft 交通草稿"}
    assert _titles(client.get(LISTINGS, headers=second.headers)) == LISTED | {
        "Grid load draft 电网负荷", "Pending port throughput 港口吞吐量"}
    drafts = client.get(LISTINGS, headers=second.headers, query_string={"status": "draft"})
    assert _titles(drafts) == {"Grid load draft 电网负荷"}
    others = client.get(LISTINGS, headers=first.headers,
                        query_string={"merchant_id": second.id})
    assert _titles(others) == {CREDIT, FARM}


@pytest.mark.parametrize("role", [Role.OPERATOR, Role.REGULATOR])
def test_overseers_see_every_listing(client, catalog, role):
    overseer = make_member(role)
    everything = LISTED | {"Traffic draft 交通草稿", "Grid load draft 电网负荷",
                           "Pending port throughput 港口吞吐量"}

    assert _titles(client.get(LISTINGS, headers=overseer.headers)) == everything
    drafts = client.get(LISTINGS, headers=overseer.headers, query_string={"status": "draft"})
    assert _titles(drafts) == {"Traffic draft 交通草稿", "Grid load draft 电网负荷"}


def test_search_pages_through_results_with_an_x_pagination_header(client, merchant):
    ids = {_create(client, merchant, title=f"Sensor batch {n}")["id"] for n in range(23)}

    pages = []
    for page in (1, 2, 3):
        response = client.get(LISTINGS, headers=merchant.headers,
                              query_string={"page": page, "page_size": 10})
        assert response.status_code == 200, response.get_json()
        assert _pagination(response) == {
            **_pagination(response), "total": 23, "total_pages": 3, "page": page,
            "page_size": 10}
        pages.append(response.get_json())

    assert [len(page) for page in pages] == [10, 10, 3]
    seen = [listing["id"] for page in pages for listing in page]
    assert len(seen) == len(set(seen)) and set(seen) == ids
    created = [listing["created_at"] for page in pages for listing in page]
    assert created == sorted(created, reverse=True)  # newest first
    beyond = client.get(LISTINGS, headers=merchant.headers,
                        query_string={"page": 4, "page_size": 10})
    assert beyond.status_code == 200 and beyond.get_json() == []
    assert _pagination(beyond)["total"] == 23


def test_search_defaults_to_pages_of_twenty(client, merchant):
    for n in range(21):
        _create(client, merchant, title=f"Meter {n}")

    response = client.get(LISTINGS, headers=merchant.headers)

    assert len(response.get_json()) == 20
    pagination = _pagination(response)
    assert (pagination["page"], pagination["page_size"], pagination["total"],
            pagination["total_pages"]) == (1, 20, 21, 2)


@pytest.mark.parametrize("query", [
    {"page_size": 101},
    {"page_size": 0},
    {"page": 0},
    {"min_price": -1},
    {"min_price": 10, "max_price": 5},
    {"classification": "secret"},
    {"status": "archived"},
    {"merchant_id": "not-a-uuid"},
    {"q": ""},
])
def test_invalid_search_parameters_are_refused(client, merchant, query):
    response = client.get(LISTINGS, headers=merchant.headers, query_string=query)
    problem = _problem(response, 422, "validation_error")
    assert problem["errors"]


def test_a_page_of_a_hundred_is_allowed(client, merchant):
    _create(client, merchant)
    response = client.get(LISTINGS, headers=merchant.headers, query_string={"page_size": 100})
    assert response.status_code == 200
    assert _pagination(response)["page_size"] == 100
    assert len(response.get_json()) == 1


def test_an_anonymous_search_is_unauthorized(client):
    _problem(client.get(LISTINGS), 401, "unauthorized")


# --- trace ---------------------------------------------------------------------------------

def _full_life(client: FlaskClient, merchant: Member, operator: Member,
               certifier: Member) -> str:
    listing = _create(client, merchant)
    listing_id = listing["id"]
    edited = client.patch(_url(listing_id), headers={**merchant.headers, "If-Match": '"1"'},
                          json={"unit_price": 110_000})
    assert edited.status_code == 200, edited.get_json()
    assert _submit(client, merchant, listing_id)["status"] == "pending_review"
    assert _review(client, operator, listing_id, "approve").status_code == 200
    certified = client.post(_url(listing_id, "certifications"), headers=certifier.headers, json={
        "rating": "AA", "scopes": ["compliance", "quality"], "report_ref": "CERT-2025-0042",
        "valid_until": (datetime.now(UTC) + timedelta(days=365)).isoformat()})
    assert certified.status_code == 201, certified.get_json()
    for actor, step in ((operator, "suspend"), (operator, "relist"), (merchant, "delist")):
        response = _step(client, actor, listing_id, step)
        assert response.status_code == 200, response.get_json()
    return listing_id


@pytest.mark.parametrize("viewer", ["owner", "operator", "regulator"])
def test_the_trace_shows_the_whole_ordered_history_with_actors_and_hashes(
        client, merchant, operator, viewer):
    certifier = make_member(Role.CERTIFIER)
    listing_id = _full_life(client, merchant, operator, certifier)
    member = {"owner": merchant, "operator": operator,
              "regulator": make_member(Role.REGULATOR)}[viewer]

    response = client.get(_url(listing_id, "trace"), headers=member.headers)

    assert response.status_code == 200, response.get_json()
    trace = response.get_json()
    assert [(entry["action"], entry["actor_id"]) for entry in trace] == [
        ("listing.created", merchant.id),
        ("listing.updated", merchant.id),
        ("listing.submitted", merchant.id),
        ("listing.reviewed", operator.id),
        ("listing.certified", certifier.id),
        ("listing.suspended", operator.id),
        ("listing.relisted", operator.id),
        ("listing.delisted", merchant.id),
    ]
    rows = _audit_rows(listing_id)
    assert [(e["id"], e["payload_digest"]) for e in trace] == [
        (row.id, row.payload_digest) for row in rows]
    for entry, row in zip(trace, rows, strict=True):
        assert datetime.fromisoformat(entry["occurred_at"]) == row.occurred_at
        assert datetime.fromisoformat(entry["occurred_at"]).utcoffset() is not None
        assert row.content_intact()
    occurred = [datetime.fromisoformat(entry["occurred_at"]) for entry in trace]
    assert occurred == sorted(occurred)
    assert trace[4]["details"]["rating"] == "AA"
    assert trace[-1]["details"]["status"] == "delisted"


@pytest.mark.parametrize("status", ["draft", "listed"])
@pytest.mark.parametrize("role", [Role.MERCHANT, Role.BUYER, Role.CERTIFIER])
def test_the_trace_is_hidden_from_other_parties(client, merchant, operator, status, role):
    listing = _in_status(client, status, merchant, operator)

    response = client.get(_url(listing["id"], "trace"), headers=make_member(role).headers)

    body = _problem(response, 404, "listing_not_found")
    assert "hash" not in json.dumps(body)


def test_the_trace_of_an_unknown_listing_is_not_found(client, operator):
    _problem(client.get(_url(str(uuid.uuid4()), "trace"), headers=operator.headers), 404,
             "listing_not_found")

