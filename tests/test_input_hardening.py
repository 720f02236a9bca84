"""Hostile or absurd input is refused with a clear 4xx, never a 500."""

from __future__ import annotations

import json
import uuid

import pytest
import sqlalchemy as sa

from app.extensions import db
from app.idempotency import IdempotencyKey
from app.parties.models import Party, Role
from listings.models import Listing
from orders.models import Payment
from settlement.models import PayoutAccount
from tests.factories import PartyBodyFactory, make_member
from tests.listings.factories import listing_body
from tests.orders.factories import listed_product, order_body

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


# --- input the databases or the JSON parser cannot take --------------------------------------

PARTIES = "/api/v1/parties"
JSON = {"Content-Type": "application/json"}


def _raw_party_body(name_json: str) -> str:
    """A registration body whose name is the raw JSON text given."""
    return json.dumps({**PartyBodyFactory(), "name": "?"}).replace('"?"', name_json)


def _stored(model: type) -> int:
    db.session.rollback()
    return db.session.scalar(sa.select(sa.func.count()).select_from(model))


@pytest.mark.parametrize("number", ["1" * 4301, "-" + "9" * 5000, "1" * 100_000],
                         ids=["4301-digits", "negative-5000-digits", "100000-digits"])
def test_an_integer_too_long_to_convert_is_a_malformed_body_not_a_500(client, number):
    response = client.post(PARTIES, data=_raw_party_body(number), headers=JSON)

    assert response.status_code == 400, response.get_data(as_text=True)
    assert response.mimetype == PROBLEM
    assert response.json["code"] == "malformed_json"
    assert _stored(Party) == 0


def test_an_integer_too_long_to_convert_with_an_idempotency_key_is_malformed(client):
    operator = make_member(Role.OPERATOR)
    response = client.post(f"/api/v1/orders/{uuid.uuid4()}/payments/confirm",
                           data='{"reference": ' + "7" * 5000 + "}",
                           headers={**JSON, **operator.headers, "Idempotency-Key": "k-1"})

    assert response.status_code == 400, response.get_data(as_text=True)
    assert response.json["code"] == "malformed_json"
    assert _stored(IdempotencyKey) == 0


def test_an_integer_too_long_to_convert_in_a_query_is_a_422(client):
    operator = make_member(Role.OPERATOR)
    response = client.get(f"{PARTIES}?page={'1' * 5000}", headers=operator.headers)

    assert response.status_code == 422
    assert set(response.json["errors"]) == {"page"}


# json.dumps writes a lone surrogate as its \\udXXX escape, as a hostile client would.
@pytest.mark.parametrize(("field", "value"), [
    ("name", "\udc80"),
    ("name", "Acme \ud800 Co."),
    ("name", "\udfff\ud800"),
    ("roles", ["buyer", "\udc80"]),
], ids=["lone-low", "lone-high-inside", "reversed-pair", "in-a-list"])
def test_a_lone_surrogate_in_a_body_is_a_422_and_stores_nothing(client, field, value):
    response = client.post(PARTIES, data=json.dumps({**PartyBodyFactory(), field: value}),
                           headers=JSON)

    assert response.status_code == 422, response.get_data(as_text=True)
    assert response.mimetype == PROBLEM
    assert response.json["code"] == "validation_error"
    assert _stored(Party) == 0


@pytest.mark.parametrize(("extra", "named"), [
    ({"description": "Daily data \udc80"}, "description"),
    ({"source": {"origin": "collected", "description": "Sensors \udc80",
                 "legal_basis": "Own collection"}}, "source"),
    ({"\udc80": 1}, "_schema"),
], ids=["free-text", "nested-object", "object-key"])
def test_a_lone_surrogate_anywhere_in_a_listing_is_a_422_naming_where(client, extra, named):
    merchant = make_member(Role.MERCHANT)
    response = client.post("/api/v1/listings",
                           data=json.dumps({**listing_body(merchant), **extra}),
                           headers={**JSON, **merchant.headers})

    assert response.status_code == 422, response.get_data(as_text=True)
    assert named in response.json["errors"]
    assert _stored(Listing) == 0


def test_a_properly_paired_surrogate_is_an_ordinary_character(client):
    response = client.post(PARTIES, data=_raw_party_body('"Emoji \\ud83d\\ude00 Co."'),
                           headers=JSON)

    assert response.status_code == 201, response.get_data(as_text=True)
    assert response.json["name"] == "Emoji \U0001F600 Co."


@pytest.fixture
def unpaid_order(client):
    merchant = make_member(Role.MERCHANT)
    buyer = make_member(Role.BUYER)
    listing = listed_product(client, merchant)
    placed = client.post("/api/v1/orders", json=order_body(listing), headers=buyer.headers)
    assert placed.status_code == 201, placed.json
    return placed.json


@pytest.mark.parametrize("length", [201, 350, 500])
def test_a_payment_reference_longer_than_its_column_is_a_422(client, unpaid_order, length):
    operator = make_member(Role.OPERATOR)
    response = client.post(f"/api/v1/orders/{unpaid_order['id']}/payments/confirm",
                           json={"reference": "R" * length},
                           headers={**operator.headers, "Idempotency-Key": f"pay-{length}"})

    assert response.status_code == 422, response.get_data(as_text=True)
    assert set(response.json["errors"]) == {"reference"}
    assert _stored(Payment) == 0
    assert _stored(IdempotencyKey) == 0


def test_a_payment_reference_as_long_as_its_column_is_taken(client, unpaid_order):
    operator = make_member(Role.OPERATOR)
    response = client.post(f"/api/v1/orders/{unpaid_order['id']}/payments/confirm",
                           json={"reference": "R" * 200}, headers=operator.headers)

    assert response.status_code == 200, response.get_data(as_text=True)
    assert _stored(Payment) == 1


@pytest.mark.parametrize(("field", "value"), [
    ("account_number", "6222 0000 1234\n"),
    ("account_number", "6222\n0000"),
    ("stripe_account_id", "acct_1AbC\n"),
    ("stripe_account_id", "acct_1AbC\r\n"),
], ids=["account-trailing-newline", "account-inner-newline", "stripe-trailing-newline",
        "stripe-trailing-crlf"])
def test_an_account_with_a_newline_is_a_422_and_stores_nothing(client, field, value):
    merchant = make_member(Role.MERCHANT)
    body = {"method": "bank_file", "bank_name": "Bank of Shanghai", "account_name": "Payee",
            "account_number": "6222 0000 1234"} if field == "account_number" else {
            "method": "stripe_connect", "stripe_account_id": "acct_1AbC"}
    response = client.put(f"/api/v1/parties/{merchant.id}/payout-account",
                          json={**body, field: value}, headers=merchant.headers)

    assert response.status_code == 422, response.get_data(as_text=True)
    assert set(response.json["errors"]) == {field}
    assert _stored(PayoutAccount) == 0


@pytest.mark.parametrize("key", ["pay\x00-1", "\x00", "pay-1\x1b[2J"],
                         ids=["nul-inside", "nul-alone", "escape-sequence"])
def test_an_idempotency_key_with_control_characters_is_a_422_naming_the_header(
        client, unpaid_order, key):
    operator = make_member(Role.OPERATOR)
    response = client.post(f"/api/v1/orders/{unpaid_order['id']}/payments/confirm",
                           json={"reference": "BANK-1"},
                           headers={**operator.headers, "Idempotency-Key": key})

    assert response.status_code == 422, response.get_data(as_text=True)
    assert response.mimetype == PROBLEM
    assert set(response.json["errors"]) == {"Idempotency-Key"}
    assert _stored(Payment) == 0
    assert _stored(IdempotencyKey) == 0
