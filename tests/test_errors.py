"""Every error answers RFC 9457 problem+json with a stable code: never HTML, never a 500
for a client's mistake, and a failed write stores nothing."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from flask.views import MethodView
from werkzeug.test import TestResponse

from app.api import Blueprint
from app.db import unit_of_work
from app.errors import PROBLEM_MIMETYPE
from app.extensions import db
from app.parties.models import Party, PartyKind, Role
from tests.conftest import app_with_blueprints, empty_tables
from tests.factories import PartyBodyFactory, make_member, new_credit_code

PARTIES = "/api/v1/parties"
MAX_CONTENT_LENGTH = 1024 * 1024
JSON_HEADERS = {"Content-Type": "application/json"}


def assert_problem(response: TestResponse, status: int, code: str) -> dict[str, Any]:
    """The response is RFC 9457 problem+json with this status and code; returns the body."""
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == PROBLEM_MIMETYPE
    body = json.loads(response.get_data(as_text=True))
    assert {"type", "title", "status", "detail", "code"} <= body.keys()
    assert body["status"] == status
    assert body["code"] == code
    assert body["type"] == f"/problems/{code}"
    assert isinstance(body["title"], str) and body["title"]
    assert isinstance(body["detail"], str) and body["detail"]
    assert b"<html" not in response.get_data().lower()
    return body


def stored_parties(app: Flask) -> int:
    """Parties committed to the database, read on a connection of its own."""
    with app.app_context(), db.engine.connect() as connection:
        return connection.scalar(sa.select(sa.func.count()).select_from(Party.__table__))


# --- malformed bodies ------------------------------------------------------------------------

@pytest.mark.parametrize("raw", [
    b"{bad",
    b'{"name": "Acme",}',
    b'{"name": ',
    b"{'name': 'Acme'}",
    b'{"name": "\xff\xfe"}',
], ids=["garbage", "trailing-comma", "truncated", "single-quotes", "invalid-utf8"])
def test_malformed_json_body_is_a_400_malformed_json_problem(app, client, raw):
    response = client.post(PARTIES, data=raw, headers=JSON_HEADERS)

    assert_problem(response, 400, "malformed_json")
    assert stored_parties(app) == 0


def test_json_nested_too_deeply_for_the_parser_is_malformed_not_a_server_error(app, client):
    response = client.post(PARTIES, data="[" * 100_000, headers=JSON_HEADERS)

    assert_problem(response, 400, "malformed_json")
    assert stored_parties(app) == 0


@pytest.mark.parametrize(("field", "value"), [
    ("roles", "buyer"),
    ("name", 12345),
    ("kind", ["enterprise"]),
    ("credit_code", {"code": "x"}),
    ("roles", [["buyer"]]),
    ("roles", ["buyer", "emperor"]),
    ("kind", "multinational"),
])
def test_wrong_type_is_a_422_with_errors_keyed_by_that_field_alone(app, client, field, value):
    body = {**PartyBodyFactory(), field: value}

    response = client.post(PARTIES, json=body)

    problem = assert_problem(response, 422, "validation_error")
    assert list(problem["errors"]) == [field]
    messages = problem["errors"][field]
    assert messages and all(isinstance(message, str) and message for message in messages)
    assert stored_parties(app) == 0


def test_several_wrong_fields_are_reported_together_flat_not_grouped_by_location(app, client):
    body = {**PartyBodyFactory(), "roles": "buyer", "name": 7}

    response = client.post(PARTIES, json=body)

    problem = assert_problem(response, 422, "validation_error")
    assert set(problem["errors"]) == {"roles", "name"}
    assert "json" not in problem["errors"]
    assert stored_parties(app) == 0


def test_missing_required_fields_are_named_in_the_422(app, client):
    response = client.post(PARTIES, json={"name": "Acme"})

    problem = assert_problem(response, 422, "validation_error")
    assert set(problem["errors"]) == {"credit_code", "kind", "roles"}
    assert stored_parties(app) == 0


def test_unknown_field_is_a_422_naming_it_rather_than_being_dropped(app, client):
    body = {**PartyBodyFactory(), "nickname": "Acme", "is_admin": True}

    response = client.post(PARTIES, json=body)

    problem = assert_problem(response, 422, "validation_error")
    assert set(problem["errors"]) == {"nickname", "is_admin"}
    assert stored_parties(app) == 0


@pytest.mark.parametrize("payload", [
    [],
    [{"name": "Acme"}],
    "Acme Co.",
    42,
    True,
    None,
], ids=["empty-array", "array-of-object", "string", "number", "boolean", "null"])
def test_json_that_is_not_an_object_is_a_422(app, client, payload):
    response = client.post(PARTIES, data=json.dumps(payload), headers=JSON_HEADERS)

    problem = assert_problem(response, 422, "validation_error")
    assert problem["errors"]
    assert stored_parties(app) == 0


def test_a_rule_broken_in_the_service_is_a_422_with_its_own_code_and_stores_nothing(app, client):
    code = new_credit_code()
    wrong_check_character = "0" if code[-1] != "0" else "1"
    body = {**PartyBodyFactory(), "credit_code": code[:17] + wrong_check_character}

    response = client.post(PARTIES, json=body)

    problem = assert_problem(response, 422, "invalid_credit_code")
    assert "credit_code" in problem["errors"]
    assert stored_parties(app) == 0


# --- size limit ------------------------------------------------------------------------------

def _body_of_size(size: int) -> bytes:
    """A valid party registration padded with a long name to exactly `size` bytes."""
    body = {**PartyBodyFactory(), "name": ""}
    skeleton = json.dumps(body).encode()
    body["name"] = "x" * (size - len(skeleton))
    raw = json.dumps(body).encode()
    assert len(raw) == size
    return raw


def test_body_over_max_content_length_is_a_413_payload_too_large(app, client):
    response = client.post(PARTIES, data=_body_of_size(MAX_CONTENT_LENGTH + 1),
                           headers=JSON_HEADERS)

    assert_problem(response, 413, "payload_too_large")
    assert stored_parties(app) == 0


def test_body_at_max_content_length_is_read_and_validated_not_refused_as_too_large(app, client):
    response = client.post(PARTIES, data=_body_of_size(MAX_CONTENT_LENGTH), headers=JSON_HEADERS)

    problem = assert_problem(response, 422, "validation_error")
    assert list(problem["errors"]) == ["name"]  # 200 characters at most
    assert stored_parties(app) == 0


def test_streamed_body_over_the_limit_is_a_413_not_silently_truncated(app, client):
    # Chunked uploads carry no Content-Length, so the limit is met while reading. The body
    # is valid JSON padded with whitespace: its first MiB alone would parse and register.
    raw = json.dumps(PartyBodyFactory()).encode() + b" " * MAX_CONTENT_LENGTH

    response = client.post(
        PARTIES, input_stream=io.BytesIO(raw),
        headers={**JSON_HEADERS, "Transfer-Encoding": "chunked"},
        environ_overrides={"wsgi.input_terminated": True})

    assert_problem(response, 413, "payload_too_large")
    assert stored_parties(app) == 0


def test_streamed_body_under_the_limit_is_accepted(app, client):
    raw = json.dumps(PartyBodyFactory()).encode()

    response = client.post(
        PARTIES, input_stream=io.BytesIO(raw),
        headers={**JSON_HEADERS, "Transfer-Encoding": "chunked"},
        environ_overrides={"wsgi.input_terminated": True})

    assert response.status_code == 201, response.get_data(as_text=True)
    assert stored_parties(app) == 1


# --- routing ---------------------------------------------------------------------------------

@pytest.mark.parametrize("path", [
    "/api/v1/nothing-here",
    "/api/v1/parties/",
    "/nothing-here",
    "/docs/assets/no-such-file.js",
])
def test_unknown_route_is_a_404_not_found_problem(client, path):
    assert_problem(client.get(path), 404, "not_found")


def test_wrong_method_is_a_405_problem_with_an_allow_header(app, client):
    response = client.delete(PARTIES)

    assert_problem(response, 405, "method_not_allowed")
    allowed = {method.strip() for method in response.headers["Allow"].split(",")}
    assert "POST" in allowed
    assert "DELETE" not in allowed
    assert stored_parties(app) == 0


def test_wrong_method_on_an_ops_route_also_lists_what_is_allowed(client):
    response = client.put("/healthz")

    assert_problem(response, 405, "method_not_allowed")
    assert "GET" in response.headers["Allow"]


@pytest.mark.parametrize(("method", "path"), [
    ("GET", "/api/v1/parties/not-a-uuid"),
    ("GET", "/api/v1/parties/12345"),
    ("GET", "/api/v1/parties/not-a-uuid/api-keys"),
    ("POST", "/api/v1/parties/not-a-uuid/api-keys"),
    ("DELETE", "/api/v1/parties/00000000-0000-0000-0000-000000000000/api-keys/nope"),
])
def test_non_uuid_id_in_a_path_is_a_404(app, client, method, path):
    member = make_member()
    before = stored_parties(app)

    response = client.open(path, method=method, headers=member.headers)

    assert_problem(response, 404, "not_found")
    assert stored_parties(app) == before


def test_unknown_uuid_is_a_404_problem_for_a_caller_allowed_to_look(client):
    member = make_member(Role.OPERATOR)

    response = client.get("/api/v1/parties/00000000-0000-0000-0000-000000000000",
                          headers=member.headers)

    assert_problem(response, 404, "not_found")


# --- authentication --------------------------------------------------------------------------

def test_missing_key_is_a_401_problem_with_a_bearer_challenge(client):
    response = client.get("/api/v1/parties/me")

    assert_problem(response, 401, "unauthorized")
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize("header", ["Bearer dx_not-a-real-key", "Basic dXNlcjpwYXNz", "Bearer "])
def test_bad_credentials_on_a_write_are_a_401_and_store_nothing(app, client, header):
    response = client.post(PARTIES, json=PartyBodyFactory(), headers={"Authorization": header})

    assert_problem(response, 401, "unauthorized")
    assert stored_parties(app) == 0


# --- unexpected exceptions -------------------------------------------------------------------

SECRET = "connection string postgres://admin:hunter2@db"


def _crashing_blueprint() -> Blueprint:
    blp = Blueprint("crashing", __name__, url_prefix="/api/v1/crash")

    def half_written_party() -> Party:
        return Party(name="Half-written Co.", credit_code=new_credit_code(),
                     kind=PartyKind.ENTERPRISE, roles=["buyer"])

    @blp.route("/runtime-error")
    class Runtime(MethodView):
        def get(self) -> Any:
            raise RuntimeError(SECRET)

    @blp.route("/key-error")
    class Key(MethodView):
        def post(self) -> Any:
            return {}["missing"]

    @blp.route("/inside-unit-of-work")
    class InsideUnitOfWork(MethodView):
        def post(self) -> Any:
            with unit_of_work() as session:
                session.add(half_written_party())
                session.flush()
                raise RuntimeError(SECRET)

    @blp.route("/outside-unit-of-work")
    class OutsideUnitOfWork(MethodView):
        def post(self) -> Any:
            # A route that breaks the house rule: flushed, never committed, then crashes.
            session = db.session()
            session.add(half_written_party())
            session.flush()
            raise RuntimeError(SECRET)

    return blp


@pytest.fixture(scope="module")
def crashing_app(backend: str, migrated_app: Flask) -> Iterator[Flask]:
    """The application plus routes that fail in unplanned ways (registered before any request)."""
    with app_with_blueprints(backend, _crashing_blueprint()) as app:
        yield app


@pytest.fixture
def crashing_client(crashing_app: Flask) -> Iterator[FlaskClient]:
    # No app context is held: each request gets its own, as in production.
    yield crashing_app.test_client()
    empty_tables(crashing_app)


@pytest.mark.parametrize(("method", "path"), [
    ("GET", "/api/v1/crash/runtime-error"),
    ("POST", "/api/v1/crash/key-error"),
])
def test_unexpected_exception_is_a_500_internal_error_problem_revealing_nothing(
        crashing_client, method, path):
    response = crashing_client.open(path, method=method)

    body = assert_problem(response, 500, "internal_error")
    text = response.get_data(as_text=True)
    assert "hunter2" not in text
    assert "Traceback" not in text
    assert "missing" not in body["detail"]


@pytest.mark.parametrize("path", [
    "/api/v1/crash/inside-unit-of-work",
    "/api/v1/crash/outside-unit-of-work",
])
def test_unexpected_exception_after_a_flush_leaves_nothing_stored(
        crashing_app, crashing_client, path):
    response = crashing_client.post(path)

    assert_problem(response, 500, "internal_error")
    assert stored_parties(crashing_app) == 0


def test_app_still_serves_requests_after_a_crash(crashing_app, crashing_client):
    crashing_client.post("/api/v1/crash/outside-unit-of-work")

    response = crashing_client.post(PARTIES, json=PartyBodyFactory())

    assert response.status_code == 201, response.get_data(as_text=True)
    assert stored_parties(crashing_app) == 1
