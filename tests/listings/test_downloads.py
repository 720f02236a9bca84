"""Download links: issued by `download_for` (logged), served signed by the service itself for
the filesystem store and presigned by the store for S3."""

from __future__ import annotations

import urllib.request
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from app import clock
from app.db import unit_of_work
from app.extensions import db
from listings.artifacts import Artifact
from listings.downloads import DownloadLog, download_for, download_requested
from listings.errors import DownloadLinkInvalid
from tests.orders.factories import Market, listed_product
from tests.storage import Store, sha256, upload
from tests.support import ok, problem

API = "/api/v1"
DATA = bytes(range(256)) * 64  # 16 KiB


@pytest.fixture
def artifact(market: Market, client: FlaskClient, store: Store) -> dict[str, Any]:
    listing = listed_product(client, market.merchant)
    stored: dict[str, Any] = ok(upload(client, market.merchant, listing["id"], DATA,
                                       "flows 六月.csv"), 201)
    return stored


@pytest.fixture
def file_artifact(market: Market, client: FlaskClient, file_store: Store) -> dict[str, Any]:
    listing = listed_product(client, market.merchant)
    stored: dict[str, Any] = ok(upload(client, market.merchant, listing["id"], DATA), 201)
    return stored


def issue(app: Flask, artifact_id: str, party_id: str, license_id: uuid.UUID | None = None) -> str:
    """A link as the licence's download issues it (in a request, as there)."""
    with app.test_request_context(), unit_of_work() as session:
        artifact = session.get(Artifact, uuid.UUID(artifact_id))
        assert artifact is not None
        return download_for(session, artifact=artifact, party_id=uuid.UUID(party_id),
                            license_id=license_id)


def fetch(client: FlaskClient, store: Store, url: str) -> tuple[int, bytes, Any]:
    """Follow a link as the buyer's client would: the service's own, or the S3 store's."""
    if store.kind == "s3":
        with urllib.request.urlopen(url) as answer:
            return answer.status, answer.read(), answer.headers
    response = client.get(url)
    return response.status_code, response.get_data(), response.headers


def test_a_link_serves_the_artifacts_bytes_and_its_issue_is_logged(
        app: Flask, market: Market, client: FlaskClient, store: Store,
        artifact: dict[str, Any]) -> None:
    license_id = uuid.uuid4()

    url = issue(app, artifact["id"], market.buyer.id, license_id)

    status, content, headers = fetch(client, store, url)
    assert (status, sha256(content)) == (200, artifact["sha256"])
    assert headers["Content-Disposition"].startswith("attachment;")
    assert "filename*=UTF-8''flows%20%E5%85%AD%E6%9C%88.csv" in headers["Content-Disposition"]
    [logged] = db.session.scalars(select(DownloadLog)).all()
    assert (str(logged.artifact_id), str(logged.party_id), logged.license_id, logged.sha256) == (
        artifact["id"], market.buyer.id, license_id, artifact["sha256"])
    ttl = app.config["DOWNLOAD_URL_TTL_SECONDS"]
    assert abs(logged.issued_at - clock.now()) < timedelta(seconds=5)
    assert logged.expires_at - logged.issued_at == timedelta(seconds=ttl)
    if store.kind == "s3":
        assert parse_qs(urlsplit(url).query)["X-Amz-Expires"] == [str(ttl)]
    trace = ok(client.get(f"{API}/listings/{artifact['listing_id']}/trace",
                          headers=market.merchant.headers))
    downloaded = [entry for entry in trace if entry["action"] == "artifact.downloaded"]
    assert [entry["actor_id"] for entry in downloaded] == [market.buyer.id]


def test_each_link_issued_is_logged(app: Flask, market: Market, artifact: dict[str, Any]) -> None:
    for _ in range(3):
        issue(app, artifact["id"], market.buyer.id)
    logged = db.session.scalars(select(DownloadLog)).all()
    assert len(logged) == 3 and {entry.license_id for entry in logged} == {None}


def test_a_signed_link_works_until_it_expires(app: Flask, market: Market, client: FlaskClient,
                                              file_artifact: dict[str, Any]) -> None:
    url = issue(app, file_artifact["id"], market.buyer.id)
    ttl = app.config["DOWNLOAD_URL_TTL_SECONDS"]

    clock.advance(timedelta(seconds=ttl - 1))
    assert client.get(url).status_code == 200
    clock.advance(timedelta(seconds=2))
    problem(client.get(url), 403, "download_link_expired")


def _altered(url: str, **changes: str | None) -> str:
    parts = urlsplit(url)
    query = {name: values[0] for name, values in parse_qs(parts.query).items()}
    for name, value in changes.items():
        if value is None:
            query.pop(name, None)
        else:
            query[name] = value
    return f"{parts.path}?{urlencode(query)}"


@pytest.mark.parametrize("change", ["sig", "expires", "party", "license", "no license",
                                    "artifact", "no sig", "nothing signed"])
def test_an_altered_link_is_refused(app: Flask, market: Market, client: FlaskClient,
                                    file_artifact: dict[str, Any], change: str) -> None:
    url = issue(app, file_artifact["id"], market.buyer.id, uuid.uuid4())
    query = parse_qs(urlsplit(url).query)
    other = listed_product(client, market.merchant)
    other_artifact = ok(upload(client, market.merchant, other["id"], b"other rows"), 201)
    altered = {
        "sig": _altered(url, sig=query["sig"][0][::-1]),
        "expires": _altered(url, expires=str(int(query["expires"][0]) + 3600)),
        "party": _altered(url, party=market.merchant.id),
        "license": _altered(url, license=str(uuid.uuid4())),
        "no license": _altered(url, license=None),
        "artifact": _altered(url).replace(file_artifact["id"], other_artifact["id"]),
        "no sig": _altered(url, sig=None),
        "nothing signed": urlsplit(url).path,
    }[change]

    problem(client.get(altered), 403, "download_link_invalid")
    assert client.get(url).status_code == 200


def test_a_signed_link_honours_ranges_and_revalidation(app: Flask, market: Market,
                                                       client: FlaskClient,
                                                       file_artifact: dict[str, Any]) -> None:
    url = issue(app, file_artifact["id"], market.buyer.id)

    part = client.get(url, headers={"Range": "bytes=1000-1999"})
    assert (part.status_code, part.get_data()) == (206, DATA[1000:2000])
    whole = client.get(url)
    assert whole.headers["ETag"] == f'"{file_artifact["sha256"]}"'
    assert whole.headers["Cache-Control"] == "private, no-store"
    again = client.get(url, headers={"If-None-Match": whole.headers["ETag"]})
    assert again.status_code == 304


@pytest.fixture
def refusing_receiver() -> Iterator[list[dict[str, Any]]]:
    """A receiver of download_requested refusing every link (as one for revoked licences)."""
    seen: list[dict[str, Any]] = []

    def refuse(session: Any, **link: Any) -> None:
        seen.append(link)
        raise DownloadLinkInvalid("The licence of this link has been revoked.")

    download_requested.connect(refuse)
    yield seen
    download_requested.disconnect(refuse)


def test_a_receiver_of_download_requested_refuses_a_link_at_once(
        app: Flask, market: Market, client: FlaskClient, file_artifact: dict[str, Any],
        refusing_receiver: list[dict[str, Any]]) -> None:
    license_id = uuid.uuid4()
    url = issue(app, file_artifact["id"], market.buyer.id, license_id)

    problem(client.get(url), 403, "download_link_invalid")

    [link] = refusing_receiver
    assert (link["party_id"], link["license_id"]) == (uuid.UUID(market.buyer.id), license_id)
    assert str(link["artifact"].id) == file_artifact["id"]
