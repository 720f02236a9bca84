"""Schema fuzzing: schemathesis drives every operation of the app's own OpenAPI document.

The document is read from the app (GET /openapi.json, in process) and every operation in it is
a test item, run once per role (anonymous, buyer, merchant, operator, regulator, certifier) and
per backend (SQLite, and PostgreSQL with TEST_DATABASE_URL). Cases go to the Flask app through
its WSGI interface, no server. Before each role's run the tables are emptied and seeded through
the API with a little real data: one party per role (a merchant qualified, a certifier
accredited), a listed product with its certification and an artifact, a draft and a draft
whose holder was asked to consent, an admission rule, a guide price, an open demand, orders
(unpaid, paid, completed and settled, disputed) and their licences, a settlement run with its
bank payout batch, a credit event with an objection, a penalty and a spare API key per party.
Half the time a well-formed id drawn for a path parameter or a top-level body field (`listing_id`,
`party_id`...) is swapped for the id of a seeded object of that name, so object routes reach
existing objects and not only 404. The role's API key is schemathesis' bearerAuth credential
(an auth provider, not a fixed header), so the negative cases that leave the credential out
really do; the fuzzed role's own key is never revoked.

Size. A fixed-seed sample runs with the suite: FUZZ_EXAMPLES cases (default 3) generated per
operation and role by the fuzzing phase, positive and negative, derandomized (FUZZ_SEED), no
example database. `make fuzz` runs FUZZ_EXAMPLES=100 and adds schemathesis' coverage phase
(FUZZ_COVERAGE=1: boundary values, missing required fields and headers, unexpected methods).

Checks. All of schemathesis' checks that apply to a single response: not_a_server_error,
status_code_conformance, content_type_conformance, response_headers_conformance,
response_schema_conformance, negative_data_rejection, missing_required_header, ignored_auth,
and in the coverage phase unsupported_method and allow_header_conformance (a 405 names the
allowed methods in `Allow`: app.errors keeps werkzeug's header, so that check stays on).
Ours, problem_details: every 4xx/5xx is application/problem+json with a `code`, and an
X-Pagination header is the JSON object the contract names.

The `default` response flask-smorest adds to every operation is removed from the document the
fuzzer reads (not from the served one, where it stands for errors no route names, such as 500
or a rate limiter's 429): with it, status_code_conformance could never fail, since `default`
matches any status. Each status an operation can answer must be named.

Disabled, and why:
- positive_data_acceptance (a schema-valid request must not get 400/422): the document cannot
  express the business rules a valid-looking body still breaks, and the contract answers them
  with 422: credit code check digits, dates that must be in the future, `commitment` that
  must be true, min_price above max_price, purposes outside the listing's usage scope, admission
  and price-band refusals, an unsigned Stripe webhook (400). The check would flag the API for
  enforcing its rules.
Enabled but idle here: use_after_free and ensure_resource_availability need the stateful
phase, which `schema.parametrize` does not run (it is the CLI runner's and the state machine's);
object_level_authorization needs several identities configured in schemathesis itself, whereas
this module runs one role at a time.
"""

from __future__ import annotations

import copy
import json
import os
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from io import BytesIO
from typing import Any

import pytest
import schemathesis
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import strategies as st

from app import clock
from app.extensions import db
from app.parties.models import Role
from tests.conftest import empty_tables, make_app
from tests.factories import Member, make_member
from tests.listings.factories import listing_body
from tests.orders.factories import listed_product, order_body
from tests.support import ok

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "3"))
COVERAGE = os.environ.get("FUZZ_COVERAGE", "0") == "1"
SEED = int(os.environ.get("FUZZ_SEED", "20240611"))
ROLES = ("anonymous", "buyer", "merchant", "operator", "regulator", "certifier")
PROBLEM = "application/problem+json"
API = "/api/v1"


@dataclass
class World:
    members: dict[str, Member]
    ids: dict[str, list[str]] = field(default_factory=dict)
    own_keys: dict[str, str] = field(default_factory=dict)  # role -> id of the key in use

    def add(self, name: str, value: Any) -> None:
        self.ids.setdefault(name, []).append(str(value))


def keyed(member: Member) -> dict[str, str]:
    return {**member.headers, "Idempotency-Key": uuid.uuid4().hex}


def seed(client: FlaskClient) -> World:
    merchant, buyer = make_member(Role.MERCHANT), make_member(Role.BUYER)
    operator, regulator = make_member(Role.OPERATOR), make_member(Role.REGULATOR)
    certifier = make_member(Role.CERTIFIER)
    world = World({"buyer": buyer, "merchant": merchant, "operator": operator,
                   "regulator": regulator, "certifier": certifier})
    for role, member in world.members.items():
        world.add("party_id", member.id)
        [own] = ok(client.get(f"{API}/parties/{member.id}/api-keys", headers=member.headers))
        world.own_keys[role] = own["id"]
        spare = ok(client.post(f"{API}/parties/{member.id}/api-keys", headers=member.headers), 201)
        world.add("key_id", spare["id"])

    listing = listed_product(client, merchant)
    world.add("listing_id", listing["id"])
    artifact = ok(client.post(f"{API}/listings/{listing['id']}/artifacts", headers=merchant.headers,
                              data={"file": (BytesIO(b"segment_id,vehicles\nS1,412\n"),
                                             "flows.csv")}), 201)
    world.add("artifact_id", artifact["id"])
    world.add("certification_id", ok(client.post(
        f"{API}/listings/{listing['id']}/certifications", headers=certifier.headers,
        json={"rating": "AA", "scopes": ["quality"], "report_ref": "seed",
              "valid_until": (clock.now() + timedelta(days=365)).isoformat()}), 201)["id"])
    draft = ok(client.post(f"{API}/listings", json=listing_body(merchant, title="A draft"),
                           headers=merchant.headers), 201)
    world.add("listing_id", draft["id"])
    # A draft naming the buyer as its holder, submitted once: the buyer is asked to consent.
    named = ok(client.post(f"{API}/listings", headers=merchant.headers, json=listing_body(
        merchant, title="A draft naming its holder", rights={
            "holder_id": buyer.id, "processor_ids": [], "operator_id": merchant.id})), 201)
    world.add("listing_id", named["id"])
    assert client.post(f"{API}/listings/{named['id']}/submit",
                       headers=merchant.headers).status_code == 409
    for consent in ok(client.get(f"{API}/consents", headers=buyer.headers)):
        world.add("consent_id", consent["id"])

    world.add("rule_id", ok(client.post(f"{API}/admission-rules", headers=operator.headers, json={
        "list": "negative", "name": "No leaked ledgers", "reason": "seed",
        "keywords": ["leaked-ledger"]}), 201)["id"])
    ok(client.post(f"{API}/guide-prices", headers=operator.headers, json={
        "category": "transport", "reference_price": 110_000, "floor_pct": 50,
        "ceiling_pct": 50, "binding": False}), 201)
    world.add("demand_id", ok(client.post(f"{API}/demands", headers=buyer.headers, json={
        "category": "transport", "purpose": "research", "max_unit_price": 200_000}), 201)["id"])

    ok(client.put(f"{API}/parties/{merchant.id}/payout-account", headers=merchant.headers,
                  json={"method": "bank_file", "bank_name": "Bank of Shanghai",
                        "account_name": "Merchant", "account_number": "6222 0000 1234"}))

    def order() -> str:
        placed = ok(client.post(f"{API}/orders", json=order_body(listing),
                                headers=buyer.headers), 201)
        world.add("order_id", placed["id"])
        world.add("license_id", placed["license_id"])
        return placed["id"]

    def paid(*, delivered: bool = True) -> str:
        order_id = order()
        ok(client.post(f"{API}/orders/{order_id}/payments/confirm", headers=keyed(operator),
                       json={"reference": f"BANK-{order_id[:8]}"}))
        if delivered:
            ok(client.post(f"{API}/orders/{order_id}/deliver", headers=merchant.headers,
                           json={"delivery_ref": "s3://deliveries/1", "checksum": "sha256:00"}))
        return order_id

    order()  # pending payment
    paid(delivered=False)  # its cancellation refunds it
    ok(client.post(f"{API}/orders/{paid()}/accept", headers=buyer.headers))  # completed
    disputed = ok(client.post(f"{API}/orders/{paid()}/disputes", headers=buyer.headers,
                              json={"reason": "Half of the rows are empty."}), 201)
    world.add("dispute_id", disputed["id"])

    run = ok(client.post(f"{API}/settlement/runs", json={}, headers=keyed(operator)), 201)
    world.add("run_id", run["id"])
    for payout in ok(client.get(f"{API}/payouts", headers=operator.headers)):
        if payout.get("batch_id"):
            world.add("batch_id", payout["batch_id"])

    event = ok(client.post(f"{API}/credit/events", headers=regulator.headers, json={
        "party_id": merchant.id, "kind": "late_delivery", "severity": "minor",
        "description": "Delivered two days late", "evidence_ref": "case-1"}), 201)
    world.add("event_id", event["id"])
    objection = ok(client.post(f"{API}/credit/events/{event['id']}/objections",
                               headers=merchant.headers,
                               json={"reason": "It was on time", "evidence_ref": "receipt-1"}),
                   201)
    world.add("objection_id", objection["id"])
    penalty = ok(client.post(f"{API}/credit/penalties", headers=operator.headers,
                             json={"party_id": regulator.id, "kind": "warning", "days": 30}), 201)
    world.add("penalty_id", penalty["id"])
    return world


@pytest.fixture(scope="session")
def fuzz_app(migrated_app: Flask, backend: str,
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flask]:
    """The application on this backend's migrated database, payout files kept in a tmp dir."""
    app = make_app(backend, PAYOUT_FILE_DIR=str(tmp_path_factory.mktemp("fuzz-payouts")),
                   ARTIFACT_STORAGE=f"file://{tmp_path_factory.mktemp('fuzz-artifacts')}",
                   RATE_LIMITS_ENABLED=False)
    yield app
    with app.app_context():
        db.engine.dispose()


# Ids of the seeded objects by parameter name, read by the hooks below while cases are drawn;
# the API key of the role being fuzzed ("" for anonymous) and its id.
KNOWN: dict[str, list[str]] = {}
ACTOR = {"key": "", "key_id": ""}
STATUSES: Counter[tuple[str, str, int]] = Counter()  # (backend, role, status): cases answered


@pytest.fixture(scope="module", params=ROLES)
def role(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(scope="module")
def world(fuzz_app: Flask, role: str, backend: str) -> Iterator[World]:
    """Fresh data for each role's run: tables emptied and seeded, emptied again afterwards."""
    empty_tables(fuzz_app)
    with fuzz_app.app_context():
        seeded = seed(fuzz_app.test_client())
        KNOWN.clear()
        KNOWN.update(seeded.ids)
        if role != "anonymous":
            ACTOR.update(key=seeded.members[role].key, key_id=seeded.own_keys[role])
        yield seeded
        db.session.remove()
    KNOWN.clear()
    ACTOR.update(key="", key_id="")
    empty_tables(fuzz_app)
    clock.reset()
    database = backend.split(":")[0].split("+")[0]
    statuses = {code: n for (on, who, code), n in sorted(STATUSES.items())
                if (on, who) == (database, role)}
    print(f"\nfuzz {database} {role}: {sum(statuses.values())} cases, statuses {statuses}")


def strip_default_responses(document: dict[str, Any]) -> dict[str, Any]:
    document = copy.deepcopy(document)
    for operations in document["paths"].values():
        for method, operation in operations.items():
            if method != "parameters":
                operation["responses"].pop("default", None)
    return document


DOCUMENT_APP = make_app("sqlite://")  # serves the document; cases go to each backend's app


def _document() -> dict[str, Any]:
    return strip_default_responses(DOCUMENT_APP.test_client().get("/openapi.json").get_json())


schema = schemathesis.openapi.from_dict(_document(), config=schemathesis.Config.from_dict({
    "seed": SEED,
    "generation": {"max-examples": EXAMPLES, "deterministic": True, "database": "none",
                   "mode": "all"},
    "phases": {"coverage": {"enabled": COVERAGE}},
    "checks": {"positive_data_acceptance": {"enabled": False}},
}))
schema.app = DOCUMENT_APP  # in-process WSGI transport; each call names the backend's app


@schema.auth(refresh_interval=None)
class RoleKey:
    """The fuzzed role's API key, given to schemathesis as the bearerAuth credential (not as a
    plain header), so its negative cases that leave the credential out really leave it out."""

    def get(self, case: Any, context: Any) -> str:
        return ACTOR["key"]

    def set(self, case: Any, key: str, context: Any) -> None:
        if key:
            case.headers["Authorization"] = f"Bearer {key}"
        else:  # anonymous: no credential at all, not a generated one
            case.headers.pop("Authorization", None)


def _is_uuid(value: Any) -> bool:
    try:
        uuid.UUID(value)
    except (TypeError, ValueError, AttributeError):
        return False
    return True


def _sometimes_known(name: str, value: Any) -> st.SearchStrategy[Any]:
    """The drawn value, or (half the time) the id of a seeded object of that name. Only a
    well-formed id is swapped, so a value a negative case broke on purpose stays broken."""
    known = KNOWN.get(name)
    if not known or not _is_uuid(value):
        return st.just(value)
    return st.one_of(st.just(value), st.sampled_from(known))


def _with_known_ids(values: Any) -> st.SearchStrategy[Any]:
    if not isinstance(values, dict):
        return st.just(values)
    return st.fixed_dictionaries({name: _sometimes_known(name, value)
                                  for name, value in values.items()})


@schema.hook
def flatmap_path_parameters(context: Any, path_parameters: Any) -> st.SearchStrategy[Any]:
    return _with_known_ids(path_parameters)


@schema.hook
def flatmap_body(context: Any, body: Any) -> st.SearchStrategy[Any]:
    return _with_known_ids(body)


def _spare_own_key(case: Any) -> None:
    """The fuzzer may learn the id of the role's own key from GET .../api-keys; revoking it
    would turn the rest of the role's run anonymous, so a spare key is revoked instead."""
    parameters = case.path_parameters or {}
    if ACTOR["key_id"] and parameters.get("key_id") == ACTOR["key_id"]:
        parameters["key_id"] = KNOWN["key_id"][0]


def problem_details(ctx: Any, response: Any, case: Any) -> bool | None:
    """Every 4xx/5xx is RFC 9457 problem+json carrying a stable `code`; a paginated answer's
    X-Pagination is the JSON object the contract names."""
    pagination = response.headers.get("x-pagination")
    if pagination:
        metadata = json.loads(pagination[0])
        assert {"total", "total_pages", "page", "page_size"} <= set(metadata), metadata
        assert all(isinstance(value, int) for value in metadata.values()), metadata
    if response.status_code < 400:
        return None
    content_type = response.headers.get("content-type", [""])[0]
    assert content_type.split(";")[0].strip() == PROBLEM, (
        f"{response.status_code} answered as {content_type!r}, not {PROBLEM}")
    body = response.json()
    assert isinstance(body, dict) and isinstance(body.get("code"), str) and body["code"], (
        f"{response.status_code} problem without a code: {body!r}")
    return True


@schema.parametrize()
def test_every_operation_conforms_to_its_document(case: Any, world: World, role: str,
                                                 fuzz_app: Flask, backend: str) -> None:
    _spare_own_key(case)
    response = case.call_and_validate(app=fuzz_app, additional_checks=[problem_details])
    STATUSES[backend.split(":")[0].split("+")[0], role, response.status_code] += 1
