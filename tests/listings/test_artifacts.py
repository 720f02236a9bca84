"""Artifacts: a merchant's data files, streamed to storage and hashed by the exchange.

Every test here runs against both stores (a directory, and a bucket on moto's S3 server, over
real HTTP) on both databases.
"""

from __future__ import annotations

import tracemalloc
from collections.abc import Iterator
from io import BytesIO
from pathlib import Path
from typing import IO

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from app.audit import AuditEntry
from app.extensions import db
from app.parties.models import Role
from app.storage import PART_BYTES
from app.uploads import READ_BYTES
from listings.artifacts import Artifact
from tests.factories import make_member
from tests.listings.factories import listing_body
from tests.orders.factories import Market, listed_product
from tests.storage import (
    BOUNDARY,
    Store,
    multipart_body,
    random_chunks,
    sha256,
    upload,
)
from tests.support import ok, problem

API = "/api/v1"
ROWS = b"segment_id,hour,vehicles\n" + b"".join(
    f"S{n:05d},2026-06-01T{n % 24:02d}:00,{n * 7 % 500}\n".encode() for n in range(2000))


def artifact_count() -> int:
    return db.session.scalar(select(func.count()).select_from(Artifact)) or 0


def test_an_upload_is_stored_under_the_sha256_and_size_the_exchange_computes(
        market: Market, client: FlaskClient, store: Store) -> None:
    listing = listed_product(client, market.merchant)

    stored = ok(upload(client, market.merchant, listing["id"], ROWS, "flows-2026-06.csv"), 201)

    assert (stored["sha256"], stored["size"]) == (sha256(ROWS), len(ROWS))
    assert (stored["filename"], stored["content_type"]) == ("flows-2026-06.csv", "text/csv")
    assert stored["listing_id"] == listing["id"] and stored["uploaded_at"]
    assert list(store.objects().values()) == [ROWS]
    listed = ok(client.get(f"{API}/listings/{listing['id']}/artifacts",
                           headers=market.merchant.headers))
    assert [item["id"] for item in listed] == [stored["id"]]
    trace = ok(client.get(f"{API}/listings/{listing['id']}/trace",
                          headers=market.merchant.headers))
    uploaded = [entry for entry in trace if entry["action"] == "artifact.uploaded"]
    assert len(uploaded) == 1 and uploaded[0]["actor_id"] == market.merchant.id


def test_a_file_of_several_parts_is_hashed_whole(market: Market, client: FlaskClient,
                                                 store: Store, tmp_path: Path) -> None:
    """Larger than an S3 part (a multipart upload there) and not a whole number of reads."""
    listing = listed_product(client, market.merchant)
    data = b"".join(random_chunks(2 * PART_BYTES + READ_BYTES + 17))

    stored = ok(upload(client, market.merchant, listing["id"], data, "big.bin"), 201)

    assert (stored["sha256"], stored["size"]) == (sha256(data), len(data))
    assert list(store.objects().values()) == [data]


def test_a_file_beyond_the_limit_is_refused_with_413_and_nothing_is_stored(
        app: Flask, market: Market, client: FlaskClient, store: Store,
        monkeypatch: pytest.MonkeyPatch) -> None:
    listing = listed_product(client, market.merchant)
    limit = PART_BYTES + READ_BYTES  # past one S3 part: a multipart upload begun, then aborted
    monkeypatch.setitem(app.config, "ARTIFACT_MAX_BYTES", limit)
    entries = db.session.scalar(select(func.count()).select_from(AuditEntry))

    # Found while it streams: the body's length is within the limit's allowance for headers.
    refused = upload(client, market.merchant, listing["id"], b"x" * (limit + 1))
    body = problem(refused, 413, "payload_too_large")
    assert body["max_bytes"] == limit
    # Announced by Content-Length: refused before anything is read.
    problem(upload(client, market.merchant, listing["id"], b"x" * (limit + 100_000)), 413,
            "payload_too_large")

    assert store.objects() == {}
    assert artifact_count() == 0
    assert db.session.scalar(select(func.count()).select_from(AuditEntry)) == entries
    exactly = ok(upload(client, market.merchant, listing["id"], b"x" * limit), 201)
    assert exactly["size"] == limit


def test_only_the_listings_merchant_may_upload_or_list_its_artifacts(
        market: Market, client: FlaskClient, store: Store) -> None:
    listing = listed_product(client, market.merchant)
    other_merchant = make_member(Role.MERCHANT)
    draft = ok(client.post(f"{API}/listings", json=listing_body(market.merchant),
                           headers=market.merchant.headers), 201)

    problem(upload(client, other_merchant, listing["id"], ROWS), 404, "listing_not_found")
    problem(upload(client, market.buyer, listing["id"], ROWS), 403)
    problem(client.get(f"{API}/listings/{listing['id']}/artifacts",
                       headers=other_merchant.headers), 404)
    problem(client.get(f"{API}/listings/{listing['id']}/artifacts",
                       headers=market.operator.headers), 404)
    assert store.objects() == {} and artifact_count() == 0
    # A draft takes files too: the data is ready before the product is on the market.
    ok(upload(client, market.merchant, draft["id"], ROWS), 201)


def _raw(client: FlaskClient, market: Market, listing_id: str, body: bytes,
         content_type: str = f"multipart/form-data; boundary={BOUNDARY}") -> object:
    return client.post(f"{API}/listings/{listing_id}/artifacts", data=body,
                       headers={**market.merchant.headers, "Content-Type": content_type})


def _part(name: str, content: bytes, filename: str | None = "rows.csv") -> bytes:
    disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
    return (f"--{BOUNDARY}\r\nContent-Disposition: {disposition}\r\n\r\n".encode() + content
            + b"\r\n")


END = f"--{BOUNDARY}--\r\n".encode()


@pytest.mark.parametrize("case, body, content_type, status, code, field", [
    ("json", b'{"file": "rows"}', "application/json", 415, "unsupported_media_type", None),
    ("no boundary", _part("file", ROWS) + END, "multipart/form-data", 415,
     "unsupported_media_type", None),
    ("no file", END, None, 422, "validation_error", "file"),
    ("a field first", _part("sha256", b"0" * 64, None) + _part("file", ROWS) + END, None, 422,
     "validation_error", "sha256"),
    ("a field after the file", _part("file", ROWS) + _part("size", b"1", None) + END, None,
     422, "validation_error", "size"),
    ("two files", _part("file", ROWS) + _part("file", ROWS) + END, None, 422,
     "validation_error", "file"),
    ("text, not a file", _part("file", ROWS, None) + END, None, 422, "validation_error",
     "file"),
    ("an empty file", _part("file", b"") + END, None, 422, "empty_artifact", "file"),
    ("cut short", _part("file", ROWS), None, 400, "malformed_multipart", None),
    ("no boundary up front", b"x" * 300_000 + _part("file", ROWS) + END, None, 400,
     "malformed_multipart", None),
    ("headers never end", f"--{BOUNDARY}\r\nContent-Disposition: form-data".encode()
     + b"; x=y" * 100_000, None, 413, "payload_too_large", None),
])
def test_a_body_that_is_not_one_nonempty_file_is_refused_and_nothing_is_stored(
        market: Market, client: FlaskClient, store: Store, case: str, body: bytes,
        content_type: str | None, status: int, code: str, field: str | None) -> None:
    listing = listed_product(client, market.merchant)

    refused = _raw(client, market, listing["id"], body,
                   *([content_type] if content_type else []))

    answer = problem(refused, status, code)  # type: ignore[arg-type]
    if field is not None:
        assert field in answer["errors"], answer
    assert store.objects() == {}
    assert artifact_count() == 0


class WatchedStream:
    """A request body that notes, at each read, whether the service holds a transaction."""

    def __init__(self, body: IO[bytes]) -> None:
        self.body = body
        self.in_transaction: list[bool] = []

    def read(self, size: int = -1) -> bytes:
        self.in_transaction.append(db.session().in_transaction())
        return self.body.read(size)

    def tell(self) -> int:
        return self.body.tell()

    def seek(self, offset: int, whence: int = 0) -> int:
        return self.body.seek(offset, whence)


def test_no_database_transaction_is_open_while_the_file_streams(
        market: Market, client: FlaskClient, store: Store, tmp_path: Path) -> None:
    """A long upload holds no connection (nor, on PostgreSQL, the log's sealer) while it runs."""
    listing = listed_product(client, market.merchant)
    length = multipart_body(tmp_path / "body", random_chunks(4 * READ_BYTES))
    with open(tmp_path / "body", "rb") as body:
        stream = WatchedStream(body)
        answer = client.post(f"{API}/listings/{listing['id']}/artifacts", input_stream=stream,
                             content_length=length, headers=market.merchant.headers,
                             content_type=f"multipart/form-data; boundary={BOUNDARY}")
    ok(answer, 201)
    assert len(stream.in_transaction) >= 4
    assert not any(stream.in_transaction)


MIB = 1024 * 1024


@pytest.fixture
def fifty_megabytes(tmp_path: Path) -> Iterator[tuple[Path, int]]:
    path = tmp_path / "body"
    yield path, multipart_body(path, random_chunks(50 * MIB))


def test_a_50_mb_upload_keeps_under_10_mb_of_python_memory(
        market: Market, client: FlaskClient, store: Store,
        fifty_megabytes: tuple[Path, int]) -> None:
    """Peak Python allocation in the service while 50 MB stream through it (tracemalloc,
    started once the store's client exists: building boto3's is not the upload's cost)."""
    listing = listed_product(client, market.merchant)
    ok(upload(client, market.merchant, listing["id"], ROWS), 201)
    path, length = fifty_megabytes

    with open(path, "rb") as body:
        tracemalloc.start()
        try:
            answer = client.post(f"{API}/listings/{listing['id']}/artifacts",
                                 input_stream=body, content_length=length,
                                 headers=market.merchant.headers,
                                 content_type=f"multipart/form-data; boundary={BOUNDARY}")
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()

    stored = ok(answer, 201)
    assert stored["size"] == 50 * MIB
    print(f"\n50 MB upload to {store.kind}: peak Python allocation {peak / MIB:.1f} MiB")
    assert peak < 10 * MIB, f"{peak / MIB:.1f} MiB"


def test_the_store_holds_nothing_when_the_record_fails_to_commit(
        market: Market, client: FlaskClient, store: Store,
        monkeypatch: pytest.MonkeyPatch) -> None:
    listing = listed_product(client, market.merchant)

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("the database went away")

    monkeypatch.setattr("listings.artifacts.audit.record", broken)
    failed = client.post(f"{API}/listings/{listing['id']}/artifacts",
                         headers=market.merchant.headers,
                         data={"file": (BytesIO(ROWS), "rows.csv")})
    problem(failed, 500, "internal_error")
    assert store.objects() == {}
    assert artifact_count() == 0
