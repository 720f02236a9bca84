"""Idempotency-Key on a POST that changes state: replay, conflict, scope, expiry, failures,
and (on PostgreSQL) concurrent retries that must act exactly once.

No money endpoint exists yet, so a test-only route is registered on its own application:
`POST /api/v1/test-payments`, decorated like the real ones will be, writing an audit entry
per payment so that the effect can be counted in the database.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask, current_app
from flask.testing import FlaskClient
from flask.views import MethodView
from marshmallow import fields, validate
from werkzeug.test import TestResponse

from app import audit, clock
from app.api import Blueprint, Schema
from app.db import unit_of_work
from app.errors import PROBLEM_MIMETYPE, DomainError
from app.extensions import db
from app.idempotency import (
    HEADER,
    MAX_KEY_LENGTH,
    IdempotencyKey,
    idempotent,
    purge_expired_keys,
    request_fingerprint,
)
from app.log.keys import log_verifier
from app.log.verification import verify_log
from app.parties.auth import current_party, require_role
from app.parties.models import Role
from tests.conftest import app_with_blueprints, empty_tables
from tests.factories import make_member
from tests.support import problem_code, race, seal_log

PAYMENTS = "/api/v1/test-payments"
EFFECT = "test_payment.created"
BODY = {"order_ref": "order-1", "amount": 12_300, "currency": "CNY"}
TTL = timedelta(hours=24)


class PaymentDeclined(DomainError):
    status, code, title = 402, "payment_declined", "The payment was declined"


class PaymentFlagged(DomainError):
    """A refusal whose record survives (like a prohibited listing's credit finding)."""

    status, code, title = 422, "payment_flagged", "The payment was flagged and refused"
    keeps_changes = True


FLAGGED = "test_payment.flagged"


class Budget:
    """How many of the next payments fail on purpose; thread-safe, so racing requests share it."""

    def __init__(self, count: int = 0) -> None:
        self._count = count
        self._lock = threading.Lock()

    def take(self) -> bool:
        with self._lock:
            if self._count <= 0:
                return False
            self._count -= 1
            return True


class PaymentBodySchema(Schema):
    order_ref = fields.String(required=True, validate=validate.Length(min=1, max=64))
    amount = fields.Integer(required=True, strict=True, validate=validate.Range(min=1))
    currency = fields.String(load_default="CNY", validate=validate.OneOf(["CNY"]))


class PaymentSchema(Schema):
    id = fields.UUID()
    payer_id = fields.UUID()
    order_ref = fields.String()
    amount = fields.Integer()
    currency = fields.String()
    created_at = fields.DateTime()


def _payments_blueprint() -> Blueprint:
    blp = Blueprint("test_payments", __name__, url_prefix=PAYMENTS,
                    description="Test-only payments exercising Idempotency-Key")

    @blp.route("")
    class Payments(MethodView):
        @require_role()
        @idempotent
        @blp.arguments(PaymentBodySchema)
        @blp.response(201, PaymentSchema)
        def post(self, body: dict[str, Any]) -> Any:
            """Take a test payment."""
            config = current_app.config
            payer = current_party()
            payment = {"id": uuid.uuid4(), "payer_id": payer.id, "created_at": clock.now(),
                       **body}
            with unit_of_work() as session:
                if config["TEST_PAYMENTS_FLAGS"].take():
                    audit.record(session, actor_id=payer.id, action=FLAGGED,
                                 subject=payment["id"], subject_type="test_payment",
                                 details={"order_ref": body["order_ref"]})
                    raise PaymentFlagged("Flagged by the fraud rules.")
                audit.record(session, actor_id=payer.id, action=EFFECT, subject=payment["id"],
                             subject_type="test_payment",
                             details={"order_ref": body["order_ref"], "amount": body["amount"]})
                # Slow enough, when a test asks, for concurrent retries to overlap.
                time.sleep(config["TEST_PAYMENTS_DELAY_SECONDS"])
                if config["TEST_PAYMENTS_DECLINES"].take():
                    raise PaymentDeclined("The card issuer said no.")
                if config["TEST_PAYMENTS_CRASHES"].take():
                    raise RuntimeError("the payment provider's SDK blew up")
            return payment, {"Location": f"{PAYMENTS}/{payment['id']}"}

    return blp


@pytest.fixture(scope="module")
def payments_app(backend: str, migrated_app: Flask) -> Iterator[Flask]:
    """The application plus the test-payments route, on the migrated database of `backend`."""
    with app_with_blueprints(backend, _payments_blueprint()) as app:
        yield app


@pytest.fixture
def app(payments_app: Flask) -> Iterator[Flask]:
    """No app context is held: each request gets its own session, as in production."""
    payments_app.config.update(TEST_PAYMENTS_DELAY_SECONDS=0.0, TEST_PAYMENTS_DECLINES=Budget(),
                               TEST_PAYMENTS_CRASHES=Budget(), TEST_PAYMENTS_FLAGS=Budget())
    yield payments_app
    empty_tables(payments_app)
    clock.reset()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@dataclass(frozen=True)
class Payer:
    id: uuid.UUID
    headers: dict[str, str]


def new_payer(app: Flask) -> Payer:
    with app.app_context():
        member = make_member(Role.BUYER)
        payer = Payer(member.party.id, member.headers)
        db.session.remove()
    return payer


def pay(client: FlaskClient, payer: Payer, body: Any = BODY, *, key: str | None = None,
        path: str = PAYMENTS) -> TestResponse:
    headers = dict(payer.headers)
    if key is not None:
        headers[HEADER] = key
    if isinstance(body, str | bytes):
        return client.post(path, data=body, headers={**headers,
                                                     "Content-Type": "application/json"})
    return client.post(path, json=body, headers=headers)


def _scalar(app: Flask, stmt: Any) -> Any:
    # A connection of its own: only what was committed counts.
    with app.app_context(), db.engine.connect() as connection:
        return connection.scalar(stmt)


def effects(app: Flask, action: str = EFFECT) -> int:
    """Payments that really happened (their audit entries were committed), or other
    recorded actions."""
    count = sa.select(sa.func.count()).select_from(audit.AuditEntry.__table__).where(
        audit.AuditEntry.action == action)
    return _scalar(app, count)


def stored_keys(app: Flask) -> list[str]:
    with app.app_context(), db.engine.connect() as connection:
        return sorted(connection.scalars(sa.select(IdempotencyKey.key)))


def is_replay(response: TestResponse) -> bool:
    return response.headers.get("Idempotent-Replayed") == "true"


# --- replay and conflict ---------------------------------------------------------------------

def test_same_key_and_body_replays_the_first_response_byte_for_byte_and_acts_once(app, client):
    payer = new_payer(app)

    first = pay(client, payer, key="pay-1")
    second = pay(client, payer, key="pay-1")

    assert first.status_code == 201, first.get_data(as_text=True)
    assert not is_replay(first)
    assert second.status_code == 201
    assert is_replay(second)
    assert second.get_data() == first.get_data()
    assert second.headers["Content-Type"] == first.headers["Content-Type"]
    assert second.headers["Location"] == first.headers["Location"]
    assert effects(app) == 1
    assert stored_keys(app) == ["pay-1"]


def test_every_retry_replays_the_same_payment(app, client):
    payer = new_payer(app)
    first = pay(client, payer, key="pay-1")

    retries = [pay(client, payer, key="pay-1") for _ in range(3)]

    assert {retry.get_data() for retry in retries} == {first.get_data()}
    assert all(is_replay(retry) for retry in retries)
    assert effects(app) == 1


def test_same_body_with_fields_in_another_order_and_spacing_is_the_same_request(app, client):
    payer = new_payer(app)
    first = pay(client, payer, '{"order_ref":"order-1","amount":12300,"currency":"CNY"}',
                key="pay-1")

    second = pay(client, payer, '{ "currency": "CNY",\n  "amount": 12300, "order_ref": "order-1" }',
                 key="pay-1")

    assert first.status_code == 201
    assert is_replay(second)
    assert second.get_data() == first.get_data()
    assert effects(app) == 1


@pytest.mark.parametrize("other_body", [
    {**BODY, "amount": BODY["amount"] + 1},
    {**BODY, "order_ref": "order-2"},
    {"order_ref": "order-1", "amount": 12_300},  # currency left to its default: not the same
], ids=["amount", "order", "field-omitted"])
def test_same_key_with_a_different_body_is_a_409_and_does_nothing(app, client, other_body):
    payer = new_payer(app)
    first = pay(client, payer, key="pay-1")

    reused = pay(client, payer, other_body, key="pay-1")

    assert reused.status_code == 409
    assert problem_code(reused) == "idempotency_key_reused"
    assert effects(app) == 1
    # The key still stands for the first request.
    again = pay(client, payer, key="pay-1")
    assert is_replay(again)
    assert again.get_data() == first.get_data()


def test_same_key_with_another_query_string_is_another_request(app, client):
    payer = new_payer(app)
    pay(client, payer, key="pay-1")

    reused = pay(client, payer, key="pay-1", path=f"{PAYMENTS}?channel=mobile")

    assert reused.status_code == 409
    assert problem_code(reused) == "idempotency_key_reused"
    assert effects(app) == 1


def test_same_key_used_by_two_parties_is_two_independent_requests(app, client):
    alice, bob = new_payer(app), new_payer(app)

    alice_first = pay(client, alice, key="pay-1")
    bob_first = pay(client, bob, key="pay-1")

    assert alice_first.status_code == bob_first.status_code == 201
    assert not is_replay(bob_first)
    assert alice_first.json["payer_id"] == str(alice.id)
    assert bob_first.json["payer_id"] == str(bob.id)
    assert effects(app) == 2
    # Each party's retry replays its own payment, never the other's.
    assert pay(client, alice, key="pay-1").get_data() == alice_first.get_data()
    assert pay(client, bob, key="pay-1").get_data() == bob_first.get_data()
    assert effects(app) == 2


def test_without_an_idempotency_key_every_request_runs(app, client):
    payer = new_payer(app)

    first = pay(client, payer)
    second = pay(client, payer)

    assert first.status_code == second.status_code == 201
    assert not is_replay(first) and not is_replay(second)
    assert first.json["id"] != second.json["id"]
    assert effects(app) == 2
    assert stored_keys(app) == []


# --- the key itself --------------------------------------------------------------------------

@pytest.mark.parametrize("key", ["", "k" * (MAX_KEY_LENGTH + 1)], ids=["empty", "too-long"])
def test_empty_or_over_long_key_is_a_422_naming_the_header(app, client, key):
    payer = new_payer(app)

    response = pay(client, payer, key=key)

    assert response.status_code == 422
    assert problem_code(response) == "validation_error"
    assert HEADER in response.json["errors"]
    assert effects(app) == 0
    assert stored_keys(app) == []


def test_key_of_the_maximum_length_is_accepted_and_replayed(app, client):
    payer = new_payer(app)
    key = "k" * MAX_KEY_LENGTH

    first = pay(client, payer, key=key)
    second = pay(client, payer, key=key)

    assert first.status_code == 201
    assert is_replay(second)
    assert effects(app) == 1


def test_unauthenticated_request_with_a_key_is_a_401_and_stores_nothing(app, client):
    response = client.post(PAYMENTS, json=BODY, headers={HEADER: "pay-1"})

    assert response.status_code == 401
    assert problem_code(response) == "unauthorized"
    assert effects(app) == 0
    assert stored_keys(app) == []


def test_key_row_without_a_stored_response_is_never_replayed_as_an_empty_answer(app, client):
    payer = new_payer(app)
    with app.app_context():
        with unit_of_work() as session:
            session.add(IdempotencyKey(party_id=payer.id, key="pay-1", created_at=clock.now(),
                                       request_fingerprint=_fingerprint_of(app, payer, BODY)))
        db.session.remove()

    response = pay(client, payer, key="pay-1")

    assert response.status_code == 409
    assert problem_code(response) == "idempotency_key_in_progress"
    assert effects(app) == 0


def _fingerprint_of(app: Flask, payer: Payer, body: Any) -> str:
    with app.test_request_context(PAYMENTS, method="POST", json=body, headers=payer.headers):
        return request_fingerprint()


# --- expiry ----------------------------------------------------------------------------------

def test_key_older_than_24_hours_is_forgotten_and_the_request_runs_again(app, client):
    payer = new_payer(app)
    first = pay(client, payer, key="pay-1")

    clock.advance(TTL + timedelta(seconds=1))
    second = pay(client, payer, key="pay-1")

    assert second.status_code == 201
    assert not is_replay(second)
    assert second.json["id"] != first.json["id"]
    assert effects(app) == 2
    assert stored_keys(app) == ["pay-1"]
    # From now on the key stands for the second request.
    third = pay(client, payer, key="pay-1")
    assert is_replay(third)
    assert third.get_data() == second.get_data()
    assert effects(app) == 2


def test_expired_key_may_be_used_for_a_different_request(app, client):
    payer = new_payer(app)
    pay(client, payer, key="pay-1")

    clock.advance(TTL + timedelta(seconds=1))
    other = pay(client, payer, {**BODY, "amount": 1}, key="pay-1")

    assert other.status_code == 201
    assert other.json["amount"] == 1
    assert effects(app) == 2


def test_key_just_under_24_hours_old_is_still_replayed(app, client):
    payer = new_payer(app)
    first = pay(client, payer, key="pay-1")

    clock.advance(TTL - timedelta(minutes=1))
    second = pay(client, payer, key="pay-1")
    reused = pay(client, payer, {**BODY, "amount": 1}, key="pay-1")

    assert is_replay(second)
    assert second.get_data() == first.get_data()
    assert reused.status_code == 409
    assert effects(app) == 1


def test_purge_deletes_only_keys_past_their_ttl(app, client):
    payer = new_payer(app)
    pay(client, payer, key="old")
    clock.advance(timedelta(hours=20))
    recent = pay(client, payer, key="recent")
    clock.advance(timedelta(hours=5))  # "old" is 25 h old, "recent" 5 h

    with app.app_context():
        with unit_of_work() as session:
            purged = purge_expired_keys(session)
        db.session.remove()

    assert purged == 1
    assert stored_keys(app) == ["recent"]
    assert pay(client, payer, key="recent").get_data() == recent.get_data()
    assert not is_replay(pay(client, payer, key="old"))
    assert effects(app) == 3


def test_purge_with_nothing_expired_deletes_nothing(app, client):
    payer = new_payer(app)
    pay(client, payer, key="pay-1")
    pay(client, payer, key="pay-2")

    with app.app_context():
        with unit_of_work() as session:
            purged = purge_expired_keys(session)
        db.session.remove()

    assert purged == 0
    assert stored_keys(app) == ["pay-1", "pay-2"]


# --- failures do not burn the key ------------------------------------------------------------

@pytest.mark.parametrize("invalid_body", [
    {**BODY, "amount": -5},
    {**BODY, "amount": "12300"},
    {**BODY, "tip": 100},
    "{not json",
], ids=["negative-amount", "amount-as-string", "unknown-field", "malformed-json"])
def test_request_refused_by_validation_stores_no_key_so_the_key_can_be_used(
        app, client, invalid_body):
    payer = new_payer(app)

    refused = pay(client, payer, invalid_body, key="pay-1")
    assert refused.status_code in (400, 422)
    assert refused.mimetype == PROBLEM_MIMETYPE
    assert stored_keys(app) == []
    assert effects(app) == 0

    corrected = pay(client, payer, key="pay-1")
    assert corrected.status_code == 201
    assert not is_replay(corrected)
    assert effects(app) == 1


def test_domain_error_in_the_view_rolls_back_key_and_effect_so_a_retry_runs(app, client):
    app.config["TEST_PAYMENTS_DECLINES"] = Budget(1)
    payer = new_payer(app)

    declined = pay(client, payer, key="pay-1")
    assert declined.status_code == 402
    assert problem_code(declined) == "payment_declined"
    assert stored_keys(app) == []
    assert effects(app) == 0

    retried = pay(client, payer, key="pay-1")
    assert retried.status_code == 201
    assert not is_replay(retried)
    assert effects(app) == 1
    assert stored_keys(app) == ["pay-1"]


def test_a_refusal_that_keeps_its_record_stores_its_answer_with_the_key(app, client):
    # keeps_changes commits the unit of work on error: the key must not commit without an
    # answer (every retry would be told "in progress" until the key expires).
    app.config["TEST_PAYMENTS_FLAGS"] = Budget(1)
    payer = new_payer(app)

    flagged = pay(client, payer, key="pay-1")
    assert flagged.status_code == 422
    assert problem_code(flagged) == "payment_flagged"
    assert effects(app, FLAGGED) == 1
    assert stored_keys(app) == ["pay-1"]

    retried = pay(client, payer, key="pay-1")
    assert retried.status_code == 422, retried.get_data(as_text=True)
    assert is_replay(retried)
    assert retried.mimetype == PROBLEM_MIMETYPE
    assert retried.get_data() == flagged.get_data()
    assert effects(app, FLAGGED) == 1  # the refusal acted once
    assert effects(app) == 0

    fresh = pay(client, payer, key="pay-2")
    assert fresh.status_code == 201
    assert effects(app) == 1


def test_unexpected_error_in_the_view_stores_no_key_so_a_retry_runs(app, client):
    app.config["TEST_PAYMENTS_CRASHES"] = Budget(1)
    payer = new_payer(app)

    crashed = pay(client, payer, key="pay-1")
    assert crashed.status_code == 500
    assert problem_code(crashed) == "internal_error"
    assert stored_keys(app) == []
    assert effects(app) == 0

    retried = pay(client, payer, key="pay-1")
    assert retried.status_code == 201
    assert not is_replay(retried)
    assert effects(app) == 1


def test_too_deeply_nested_body_with_a_key_is_malformed_json_not_a_server_error(app, client):
    payer = new_payer(app)

    response = pay(client, payer, "[" * 100_000, key="pay-1")

    assert response.status_code == 400
    assert problem_code(response) == "malformed_json"
    assert stored_keys(app) == []


def test_the_audit_log_stays_valid_through_replays_and_rollbacks(app, client):
    app.config["TEST_PAYMENTS_DECLINES"] = Budget(1)
    payer = new_payer(app)
    pay(client, payer, key="pay-1")  # declined, rolled back
    pay(client, payer, key="pay-1")  # runs
    pay(client, payer, key="pay-1")  # replayed

    with app.app_context():
        seal_log()
        report = verify_log(db.session(), log_verifier())
        db.session.remove()

    assert report.valid
    assert effects(app) == 1


# --- documentation ---------------------------------------------------------------------------

def test_openapi_documents_the_key_header_and_the_409(client):
    operation = client.get("/openapi.json").json["paths"][PAYMENTS]["post"]

    headers = [p for p in operation["parameters"] if p["in"] == "header" and p["name"] == HEADER]
    assert len(headers) == 1
    assert headers[0]["schema"]["maxLength"] == MAX_KEY_LENGTH
    assert not headers[0]["required"]
    assert {"201", "401", "409", "422"} <= set(operation["responses"])


# --- concurrency (PostgreSQL) ----------------------------------------------------------------

@pytest.mark.postgres_only
@pytest.mark.parametrize("threads", [2, 8, 8, 8], ids=["2-threads", "8-a", "8-b", "8-c"])
def test_concurrent_requests_with_one_key_act_exactly_once(app, threads):
    app.config["TEST_PAYMENTS_DELAY_SECONDS"] = 0.5
    payer = new_payer(app)

    responses = race(app, threads, lambda client, _: pay(client, payer, key="pay-1"))

    assert effects(app) == 1
    assert stored_keys(app) == ["pay-1"]
    statuses = [response.status_code for response in responses]
    assert set(statuses) <= {201, 409}, [r.get_data(as_text=True) for r in responses]
    created = [response for response in responses if response.status_code == 201]
    assert len([response for response in created if not is_replay(response)]) == 1
    assert len({response.get_data() for response in created}) == 1
    assert all(problem_code(response) == "idempotency_key_in_progress"
               for response in responses if response.status_code == 409)


@pytest.mark.postgres_only
def test_request_waiting_past_the_lock_timeout_is_told_in_progress_and_replayed_later(app):
    app.config.update(TEST_PAYMENTS_DELAY_SECONDS=1.5)
    lock_timeout = app.config["IDEMPOTENCY_LOCK_TIMEOUT_MS"]
    app.config["IDEMPOTENCY_LOCK_TIMEOUT_MS"] = 100
    try:
        payer = new_payer(app)
        responses = race(app, 4, lambda client, _: pay(client, payer, key="pay-1"))
    finally:
        app.config["IDEMPOTENCY_LOCK_TIMEOUT_MS"] = lock_timeout

    originals = [r for r in responses if r.status_code == 201 and not is_replay(r)]
    in_progress = [r for r in responses if r.status_code == 409]
    assert len(originals) == 1
    assert len(in_progress) == 3
    assert {problem_code(r) for r in in_progress} == {"idempotency_key_in_progress"}
    # Once the first has finished, retrying the same request replays it.
    app.config["TEST_PAYMENTS_DELAY_SECONDS"] = 0.0
    retried = pay(app.test_client(), payer, key="pay-1")
    assert is_replay(retried)
    assert retried.get_data() == originals[0].get_data()
    assert effects(app) == 1


@pytest.mark.postgres_only
def test_request_waiting_on_a_key_whose_first_request_fails_then_runs_itself(app):
    # The first request declines after holding the key; the waiting one must then run,
    # not replay a response that never existed nor fail the way the first one did.
    app.config.update(TEST_PAYMENTS_DELAY_SECONDS=0.5, TEST_PAYMENTS_DECLINES=Budget(1))
    payer = new_payer(app)

    responses = race(app, 2, lambda client, _: pay(client, payer, key="pay-1"))

    assert sorted(response.status_code for response in responses) == [201, 402]
    created = next(response for response in responses if response.status_code == 201)
    assert not is_replay(created)
    assert effects(app) == 1
    assert stored_keys(app) == ["pay-1"]


@pytest.mark.postgres_only
def test_concurrent_requests_with_one_key_and_different_bodies_act_once(app):
    app.config["TEST_PAYMENTS_DELAY_SECONDS"] = 0.5
    payer = new_payer(app)
    start = threading.Barrier(2)

    def one(body: dict[str, Any]) -> TestResponse:
        client = app.test_client()
        start.wait()
        return pay(client, payer, body, key="pay-1")

    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = [pool.submit(one, {**BODY, "amount": amount}) for amount in (100, 200)]
        responses = [future.result(timeout=60) for future in futures]

    assert sorted(response.status_code for response in responses) == [201, 409]
    conflict = next(response for response in responses if response.status_code == 409)
    assert problem_code(conflict) == "idempotency_key_reused"
    assert effects(app) == 1
