"""Downloads under a licence: its buyer and beneficiaries get a short-lived link to the file
delivered through the exchange while the licence is in force, and nobody else; a link stops
the moment its licence does."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from app import clock
from app.extensions import db
from app.parties.models import Role
from app.scheduler import run_job
from listings.downloads import DownloadLog
from tests.factories import Member, make_member
from tests.licenses.helpers import API, DOWNLOAD, Licensing, agency
from tests.listings.test_downloads import fetch
from tests.orders.factories import Market
from tests.storage import Store, sha256, upload
from tests.support import ok, problem

DATA = b"segment_id,vehicles\n" + b"S00001,412\n" * 2048


@pytest.fixture
def trade(market: Market) -> Licensing:
    return Licensing(market)


def delivered_file(trade: Licensing, buyer: Member | None = None, **body: Any) -> dict[str, Any]:
    """A download product bought, and delivered as a file the exchange holds: its licence."""
    listing = trade.listing(**DOWNLOAD)
    artifact = ok(upload(trade.client, trade.market.merchant, listing["id"], DATA), 201)
    order = trade.order(listing, buyer, **body)
    trade.pay(order)
    ok(trade.client.post(f"{API}/orders/{order['id']}/deliver",
                         headers=trade.market.merchant.headers,
                         json={"artifact_id": artifact["id"]}))
    return trade.license(order["license_id"])


def download(client: FlaskClient, license_id: str, member: Member) -> Any:
    return client.get(f"{API}/licenses/{license_id}/download", headers=member.headers)


def test_the_buyer_downloads_the_delivered_file_through_a_logged_link(
        trade: Licensing, store: Store) -> None:
    licence = delivered_file(trade)
    assert licence["verified_delivery"] is True

    answer = download(trade.client, licence["id"], trade.market.buyer)

    assert answer.status_code == 303
    status, content, _ = fetch(trade.client, store, answer.headers["Location"])
    assert (status, sha256(content)) == (200, sha256(DATA))
    [logged] = db.session.scalars(select(DownloadLog)).all()
    assert (str(logged.license_id), str(logged.party_id), logged.sha256) == (
        licence["id"], trade.market.buyer.id, sha256(DATA))


def test_a_beneficiary_of_a_joint_purchase_downloads_too(trade: Licensing,
                                                         file_store: Store) -> None:
    beneficiary = agency()
    licence = delivered_file(trade, beneficiaries=[beneficiary.id])

    answer = download(trade.client, licence["id"], beneficiary)

    assert answer.status_code == 303
    status, content, _ = fetch(trade.client, file_store, answer.headers["Location"])
    assert (status, content) == (200, DATA)


def test_a_stranger_the_merchant_and_an_overseer_get_no_link(trade: Licensing,
                                                            file_store: Store) -> None:
    licence = delivered_file(trade)

    problem(download(trade.client, licence["id"], make_member(Role.BUYER)), 404)
    problem(download(trade.client, licence["id"], trade.market.merchant), 403)
    problem(download(trade.client, licence["id"], trade.market.operator), 403)
    assert db.session.scalars(select(DownloadLog)).all() == []


def test_an_expired_licence_gives_no_link(app: Flask, trade: Licensing,
                                          file_store: Store) -> None:
    licence = delivered_file(trade)
    clock.advance(timedelta(days=366))
    assert run_job(app, "expire_licenses")

    problem(download(trade.client, licence["id"], trade.market.buyer), 403, "license_inactive")


def test_revocation_stops_a_link_already_issued_in_the_same_second(
        trade: Licensing, file_store: Store) -> None:
    licence = delivered_file(trade)
    link = download(trade.client, licence["id"], trade.market.buyer).headers["Location"]
    ok(trade.post(licence["id"], "revoke", trade.market.operator,
                  json={"reason": "Resold beyond its scope", "fault_party": "buyer",
                        "kind": "resale_beyond_scope"}))

    problem(trade.client.get(link), 403, "license_inactive")
    problem(download(trade.client, licence["id"], trade.market.buyer), 403, "license_inactive")


def test_suspension_stops_a_link_and_reinstatement_lets_a_new_one_work(
        trade: Licensing, file_store: Store) -> None:
    licence = delivered_file(trade)
    link = download(trade.client, licence["id"], trade.market.buyer).headers["Location"]
    ok(trade.post(licence["id"], "suspend", trade.market.regulator,
                  json={"reason": "Under investigation"}))
    problem(trade.client.get(link), 403, "license_inactive")

    ok(trade.post(licence["id"], "reinstate", trade.market.regulator,
                  json={"reason": "Cleared"}))
    again = download(trade.client, licence["id"], trade.market.buyer).headers["Location"]
    assert trade.client.get(again).status_code == 200


def test_data_delivered_outside_the_exchange_has_nothing_to_download(trade: Licensing) -> None:
    listing = trade.listing(**DOWNLOAD)
    _, licence = trade.delivered(listing)
    assert licence["verified_delivery"] is False

    problem(download(trade.client, licence["id"], trade.market.buyer), 409,
            "nothing_to_download")


def test_an_api_licence_is_not_downloaded(trade: Licensing) -> None:
    _, licence = trade.delivered()

    problem(download(trade.client, licence["id"], trade.market.buyer), 409,
            "delivery_mode_mismatch")


def test_a_pending_licence_gives_no_link(trade: Licensing) -> None:
    order = trade.order(trade.listing(**DOWNLOAD))

    problem(download(trade.client, order["license_id"], trade.market.buyer), 403,
            "license_inactive")
