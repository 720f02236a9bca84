"""The CSV exports (the regulators' blacklist, the operator's payout bank file) escape text
that a spreadsheet would run as a formula, keep amounts as numbers, and the blacklist is
streamed rather than built whole."""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from app import clock, csv_export
from app.extensions import db
from app.parties.models import Party, Role
from tests.conftest import empty_tables, make_app
from tests.credit.api import CREDIT, record
from tests.factories import Member, PartyBodyFactory, make_member
from tests.orders.factories import listed_product, order_body

HOSTILE = {
    "hyperlink": '=HYPERLINK("http://x","y")',
    "plus-dde": "+cmd|' /C calc'!A0",
    "minus": "-2+3+cmd|' /C calc'!A0",
    "at-sum": "@SUM(1+1)*cmd|' /C calc'!A0",
}


def parse(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def register(client: FlaskClient, name: str, role: Role) -> Member:
    """A party registered through the API under the name given."""
    response = client.post("/api/v1/parties",
                           json={**PartyBodyFactory(), "name": name, "roles": [role.value]})
    assert response.status_code == 201, response.json
    party = db.session.get(Party, uuid.UUID(response.json["id"]))
    assert party is not None
    return Member(party, response.json["api_key"])


# --- the one helper --------------------------------------------------------------------------

@pytest.mark.parametrize("text", [*HOSTILE.values(), "\t=1+1", "\r=1+1", "-", "=", "@"])
def test_text_that_could_start_a_formula_is_escaped_with_a_quote(text):
    [line] = csv_export.lines([[text]])

    assert line.startswith('"')  # quoted
    assert next(csv.reader([line])) == ["'" + text]


@pytest.mark.parametrize("text", ["Acme Co.", "华信数据有限公司", " =not a formula", "a=b", "",
                                  "'"])
def test_ordinary_text_is_left_as_it_is(text):
    assert next(csv.reader(csv_export.lines([[text]]))) == [text]


def test_numbers_stay_bare_numbers_negative_ones_too():
    [line] = csv_export.lines([[-500, 12_300, 0, "-500", None]])

    assert line == "-500,12300,0,\"'-500\",\"\"\r\n"


# --- the regulators' blacklist ---------------------------------------------------------------

@pytest.mark.parametrize("name", HOSTILE.values(), ids=HOSTILE.keys())
def test_a_blacklisted_partys_name_is_escaped_in_the_blacklist_csv(client, name):
    regulator = make_member(Role.REGULATOR)
    merchant = register(client, name, Role.MERCHANT)
    record(client, regulator, merchant, "data_tampering", "severe")

    exported = client.get(f"{CREDIT}/blacklist", headers={**regulator.headers,
                                                           "Accept": "text/csv"})

    assert exported.status_code == 200
    [row] = parse(exported.get_data(as_text=True))
    assert row["party_id"] == merchant.id
    assert row["name"] == "'" + name
    assert row["credit_code"] == merchant.party.credit_code  # not escaped: no formula


def test_the_blacklist_csv_is_streamed_not_built_whole(client):
    regulator = make_member(Role.REGULATOR)
    for _ in range(3):
        record(client, regulator, make_member(Role.MERCHANT), "data_tampering", "severe")

    exported = client.get(f"{CREDIT}/blacklist", headers={**regulator.headers,
                                                           "Accept": "text/csv"})

    assert exported.status_code == 200
    # A body built in memory is sent with its length; a streamed one is not.
    assert "Content-Length" not in exported.headers
    assert len(parse(exported.get_data(as_text=True))) == 3


# --- the operator's payout bank file ---------------------------------------------------------

@pytest.fixture(scope="module")
def bank_app(migrated_app: Flask, backend: str,
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flask]:
    app = make_app(backend, PAYOUT_FILE_DIR=str(tmp_path_factory.mktemp("payouts")))
    yield app
    with app.app_context():
        db.engine.dispose()


@pytest.fixture
def bank_client(bank_app: Flask) -> Iterator[FlaskClient]:
    with bank_app.app_context():
        yield bank_app.test_client()
        db.session.remove()
    empty_tables(bank_app)
    clock.reset()


def ok(response: Any, status: int = 200) -> Any:
    assert response.status_code == status, response.json
    return response.json


def bank_file_of(client: FlaskClient, merchant: Member) -> list[dict[str, str]]:
    """The merchant sells one licence, is paid, delivers; the buyer accepts; a settlement run
    puts the merchant's money in a bank batch: its file, parsed."""
    operator, buyer = make_member(Role.OPERATOR), make_member(Role.BUYER)
    listing = listed_product(client, merchant)
    order = ok(client.post("/api/v1/orders", json=order_body(listing), headers=buyer.headers),
               201)
    ok(client.post(f"/api/v1/orders/{order['id']}/payments/confirm",
                   json={"reference": "BANK-001"}, headers=operator.headers))
    ok(client.post(f"/api/v1/orders/{order['id']}/deliver", headers=merchant.headers,
                   json={"delivery_ref": "file-1", "checksum": "sha256:00"}))
    ok(client.post(f"/api/v1/orders/{order['id']}/accept", headers=buyer.headers))
    ok(client.post("/api/v1/settlement/runs", json={}, headers=operator.headers), 201)
    [payout] = ok(client.get("/api/v1/payouts", headers=operator.headers))
    download = client.get(f"/api/v1/payout-batches/{payout['batch_id']}/file",
                          headers=operator.headers)
    assert download.status_code == 200
    rows = parse(download.get_data(as_text=True))
    assert [row["payout_id"] for row in rows] == [payout["id"]]
    assert int(rows[0]["amount_fen"]) == payout["amount"] > 0
    return rows


@pytest.mark.parametrize("hostile", HOSTILE.values(), ids=HOSTILE.keys())
def test_payee_bank_and_account_names_are_escaped_in_the_bank_file(bank_client, hostile):
    merchant = register(bank_client, hostile, Role.MERCHANT)
    ok(bank_client.put(f"/api/v1/parties/{merchant.id}/payout-account", headers=merchant.headers,
                       json={"method": "bank_file", "bank_name": hostile + " Bank",
                             "account_name": "\t" + hostile, "account_number": "6222 0000 1234"}))

    [row] = bank_file_of(bank_client, merchant)

    assert row["payee_name"] == "'" + hostile
    assert row["bank_name"] == "'" + hostile + " Bank"
    assert row["account_name"] == "'\t" + hostile
    assert row["account_number"] == "6222 0000 1234"
    assert row["currency"] == "CNY"
