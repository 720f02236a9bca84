"""The artifact stores the tests run against: a directory, and moto's standalone S3 server.

moto's server runs in a subprocess on a free loopback port for the whole session (started
only when a test asks for the S3 store), so boto3 speaks the real S3 HTTP protocol to it:
multipart uploads, presigned URLs and all. Each S3 test gets a bucket of its own.
"""

from __future__ import annotations

import hashlib
import os
import sys
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path
from typing import Any

from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from tests.factories import Member
from tests.support import free_port, server_process

# moto accepts any credentials; boto3 wants some, and a region.
S3_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
          "AWS_DEFAULT_REGION": "us-east-1"}
API = "/api/v1"


def _answers(url: str) -> bool:
    try:
        urllib.request.urlopen(f"{url}/moto-api/", timeout=1)
    except urllib.error.HTTPError:
        return True
    except OSError:
        return False
    return True


@contextmanager
def moto_server(log_path: Path) -> Iterator[str]:
    """moto's S3 server on 127.0.0.1 and a free port until the block ends; its base URL."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with server_process([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p",
                         str(port)], log_path, lambda: _answers(url), "moto"):
        yield url


def s3_client(endpoint_url: str) -> Any:
    import boto3

    return boto3.session.Session(
        aws_access_key_id=S3_ENV["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=S3_ENV["AWS_SECRET_ACCESS_KEY"],
        region_name=S3_ENV["AWS_DEFAULT_REGION"]).client("s3", endpoint_url=endpoint_url)


@dataclass
class Store:
    """One test's store: its ARTIFACT_STORAGE, and what it holds, read from outside."""

    kind: str  # "filesystem" or "s3"
    url: str
    root: Path | None = None
    endpoint_url: str | None = None

    @property
    def bucket(self) -> str:
        return self.url.removeprefix("s3://")

    def objects(self) -> dict[str, bytes]:
        """Every object held, temporary files and unfinished multipart uploads included
        (listed under a `(partial)` name, with no bytes)."""
        if self.root is not None:
            if not self.root.exists():
                return {}
            return {str(path.relative_to(self.root)): path.read_bytes()
                    for path in sorted(self.root.rglob("*")) if path.is_file()}
        assert self.endpoint_url is not None
        client = s3_client(self.endpoint_url)
        held = {item["Key"]: client.get_object(Bucket=self.bucket, Key=item["Key"])["Body"].read()
                for item in client.list_objects_v2(Bucket=self.bucket).get("Contents", [])}
        for upload in client.list_multipart_uploads(Bucket=self.bucket).get("Uploads", []):
            held[f"(partial) {upload['Key']}"] = b""
        return held


def new_bucket(endpoint_url: str) -> str:
    bucket = f"artifacts-{uuid.uuid4().hex[:12]}"
    s3_client(endpoint_url).create_bucket(Bucket=bucket)
    return bucket


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def upload(client: FlaskClient, member: Member, listing_id: str, data: bytes,
           filename: str = "flows.csv", content_type: str = "text/csv") -> TestResponse:
    """POST a file as the browser's form would (the test client builds the multipart)."""
    return client.post(f"{API}/listings/{listing_id}/artifacts", headers=member.headers,
                       data={"file": (BytesIO(data), filename, content_type)},
                       content_type="multipart/form-data")


BOUNDARY = "----exchange-test-boundary-7d9c2e"


def multipart_body(path: Path, chunks: Iterable[bytes], *, filename: str = "big.bin",
                   field: str = "file", boundary: str = BOUNDARY) -> int:
    """Write a multipart/form-data body holding one file part to `path`, chunk by chunk (never
    whole in memory); its length."""
    with open(path, "wb") as body:
        body.write(f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; '
                   f'filename="{filename}"\r\nContent-Type: application/octet-stream\r\n\r\n'
                   .encode())
        for chunk in chunks:
            body.write(chunk)
        body.write(f"\r\n--{boundary}--\r\n".encode())
    return os.path.getsize(path)


def random_chunks(size: int, chunk: int = 1024 * 1024) -> Iterator[bytes]:
    while size > 0:
        yield os.urandom(min(chunk, size))
        size -= chunk
