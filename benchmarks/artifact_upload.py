"""Artifact upload throughput through the running service, against a plain `cp` of the file.

    python -m benchmarks.artifact_upload [--size-mb 1024] [--rounds 3] [--port 8642]
                                         [--database-url URL]

A file of random bytes (--size-mb, 1 GiB by default) is generated into a temporary directory;
gunicorn (one sync worker, production settings, the filesystem store in that directory) serves
the exchange on 127.0.0.1. Each round copies the file with `cp` onto the same file system,
then uploads it to POST /api/v1/listings/{id}/artifacts over HTTP as multipart/form-data
(streamed from disk by the client, Content-Length known); rounds alternate, the table shows
medians. The service computes the file's SHA-256 on the way (checked against the client's)
and flushes the stored file to disk before answering, so `cp` followed by `sync` of the copy
is shown too. The service's memory is the gunicorn worker's peak resident set (VmHWM) after
the uploads, beside its resident set before the first one. A third baseline is gunicorn itself:
the same upload to a bare WSGI app (`drain`, one worker) that reads the body 256 KiB at a time
and drops it, the most any application behind gunicorn's Python body reader can take in.

The database (--database-url, a scratch one: its schema is dropped and rebuilt) defaults to a
SQLite file in the temporary directory: an upload runs three short transactions.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.client import HTTPConnection
from pathlib import Path
from typing import Any

from flask_migrate import upgrade

from app.db import unit_of_work
from app.extensions import db
from app.parties import services as parties
from app.parties.models import SYSTEM, PartyKind, Role
from benchmarks.listings_search import credit_code, scratch_app
from benchmarks.order_placement import PORT, ROOT, listing_body, start_gunicorn, stop

BOUNDARY = "bench-artifact-upload-5f3a9c"
MIB = 1024 * 1024
# The client's reads of the file and sends on the socket.
CLIENT_CHUNK = MIB


@dataclass(frozen=True)
class UploadFigures:
    size: int
    cp_seconds: list[float]
    cp_sync_seconds: list[float]
    drain_seconds: list[float]
    upload_seconds: list[float]
    rss_before: int  # bytes
    peak_rss: int

    @property
    def ratio(self) -> float:
        """Upload throughput ÷ cp throughput (= cp time ÷ upload time), medians."""
        return statistics.median(self.cp_seconds) / statistics.median(self.upload_seconds)

    @property
    def ratio_with_sync(self) -> float:
        return statistics.median(self.cp_sync_seconds) / statistics.median(self.upload_seconds)

    @property
    def ratio_to_drain(self) -> float:
        return statistics.median(self.drain_seconds) / statistics.median(self.upload_seconds)


def drain(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    """A bare WSGI app that reads the request body and drops it (the gunicorn baseline)."""
    stream, size = environ["wsgi.input"], 0
    while chunk := stream.read(256 * 1024):
        size += len(chunk)
    body = json.dumps({"size": size}).encode()
    start_response("201 Created", [("Content-Type", "application/json"),
                                   ("Content-Length", str(len(body)))])
    return [body]


def start_drain(port: int) -> subprocess.Popen[bytes]:
    """gunicorn serving `drain` on the port, once it answers."""
    server = subprocess.Popen([str(Path(sys.executable).parent / "gunicorn"), "-w", "1",
                               "-b", f"127.0.0.1:{port}", "benchmarks.artifact_upload:drain"],
                              cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            HTTPConnection("127.0.0.1", port, timeout=1).connect()
            return server
        except OSError:
            time.sleep(0.2)
    server.kill()
    raise RuntimeError(f"gunicorn did not start on port {port}")


def random_file(path: Path, size: int) -> str:
    """Write `size` random bytes to `path`; their SHA-256."""
    digest = hashlib.sha256()
    with open(path, "wb") as file:
        left = size
        while left:
            chunk = os.urandom(min(MIB, left))
            digest.update(chunk)
            file.write(chunk)
            left -= len(chunk)
    return digest.hexdigest()


def seed(app: Any) -> tuple[str, dict[str, str]]:
    """A merchant and a draft listing of its own: (listing id, the merchant's headers)."""
    with app.app_context(), unit_of_work() as session:
        party, issued = parties.register_party(
            session, name="Bench Merchant Co.", credit_code=credit_code(9_100_000),
            kind=PartyKind.ENTERPRISE, roles=[Role.MERCHANT], actor=SYSTEM)
        merchant_id, headers = str(party.id), {"Authorization": f"Bearer {issued.raw}"}
    created = app.test_client().post(
        "/api/v1/listings", json=listing_body(merchant_id, delivery_mode="download",
                                              price_model="one_time"), headers=headers)
    assert created.status_code == 201, created.json
    with app.app_context():
        db.engine.dispose()
    return created.json["id"], headers


def _body(path: Path, head: bytes, tail: bytes) -> Iterator[bytes]:
    yield head
    with open(path, "rb") as file:
        while chunk := file.read(CLIENT_CHUNK):
            yield chunk
    yield tail


def upload(port: int, listing_id: str, headers: dict[str, str],
           path: Path) -> tuple[float, dict[str, Any]]:
    """POST the file as multipart/form-data, streamed from disk; seconds and the answer."""
    head = (f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; '
            f'filename="{path.name}"\r\nContent-Type: application/octet-stream\r\n\r\n').encode()
    tail = f"\r\n--{BOUNDARY}--\r\n".encode()
    length = len(head) + path.stat().st_size + len(tail)
    connection = HTTPConnection("127.0.0.1", port, timeout=600)
    started = time.perf_counter()
    connection.request("POST", f"/api/v1/listings/{listing_id}/artifacts",
                       body=_body(path, head, tail), headers={
                           **headers, "Content-Length": str(length),
                           "Content-Type": f"multipart/form-data; boundary={BOUNDARY}"})
    response = connection.getresponse()
    answer = json.loads(response.read())
    elapsed = time.perf_counter() - started
    connection.close()
    assert response.status == 201, answer
    return elapsed, answer


def drained(port: int, path: Path) -> float:
    """Seconds to upload the file to `drain` (the same request as an upload)."""
    seconds, answer = upload(port, "-", {}, path)
    assert answer["size"] > path.stat().st_size, answer
    return seconds


def timed(*command: str) -> float:
    started = time.perf_counter()
    subprocess.run(command, check=True)
    return time.perf_counter() - started


def worker_pid(master: int) -> int:
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    assert len(children) == 1, children
    return int(children[0])


def memory(pid: int, field: str) -> int:
    """A /proc/<pid>/status size (VmRSS, VmHWM) in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) * 1024
    raise KeyError(field)


def measure(*, size: int, rounds: int, port: int, database_url: str | None) -> UploadFigures:
    work = Path(tempfile.mkdtemp(prefix="bench-upload-"))
    try:
        source = work / "source.bin"
        expected = random_file(source, size)
        app = scratch_app(database_url or f"sqlite:///{work / 'exchange.db'}")
        url = app.config["SQLALCHEMY_DATABASE_URI"]
        with app.app_context():
            upgrade()
            db.session.remove()
        listing_id, headers = seed(app)
        store = work / "artifacts"
        saved = os.environ.get("ARTIFACT_STORAGE")
        os.environ["ARTIFACT_STORAGE"] = f"file://{store}"  # gunicorn's, from this environment
        try:
            server = start_gunicorn(url, 1, port)
        finally:
            if saved is None:
                del os.environ["ARTIFACT_STORAGE"]
            else:
                os.environ["ARTIFACT_STORAGE"] = saved
        try:
            worker = worker_pid(server.pid)
            rss_before = memory(worker, "VmRSS")
            bare = start_drain(port + 1)
            cp_seconds: list[float] = []
            cp_sync_seconds: list[float] = []
            drain_seconds: list[float] = []
            upload_seconds: list[float] = []
            for _ in range(rounds):
                copy = work / "copy.bin"
                cp_seconds.append(timed("cp", str(source), str(copy)))
                copy.unlink()
                cp_sync_seconds.append(timed("sh", "-c", f'cp "{source}" "{copy}" && '
                                                         f'sync "{copy}"'))
                copy.unlink()
                drain_seconds.append(drained(port + 1, source))
                seconds, answer = upload(port, listing_id, headers, source)
                assert (answer["sha256"], answer["size"]) == (expected, size), answer
                upload_seconds.append(seconds)
                shutil.rmtree(store)  # room for the next round: the record stays, unused
            peak_rss = memory(worker, "VmHWM")
            stop(bare)
        finally:
            stop(server)
        return UploadFigures(size, cp_seconds, cp_sync_seconds, drain_seconds, upload_seconds,
                             rss_before, peak_rss)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=1024, help="the file's size in MiB")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--port", type=int, default=PORT, help="gunicorn's port")
    parser.add_argument("--database-url", help="a scratch database (default: SQLite)")
    args = parser.parse_args()
    figures = measure(size=args.size_mb * MIB, rounds=args.rounds, port=args.port,
                      database_url=args.database_url)

    def row(name: str, seconds: list[float]) -> str:
        median = statistics.median(seconds)
        return (f"{name:<44} {median:>8.2f} {figures.size / MIB / median:>9.0f}   "
                f"{', '.join(f'{s:.2f}' for s in seconds)}")

    print(f"file          {figures.size / MIB:,.0f} MiB of random bytes; gunicorn, 1 sync worker, "
          f"filesystem store; {args.rounds} alternating rounds, medians")
    print()
    print(f"{'':<44} {'seconds':>8} {'MiB/s':>9}   rounds")
    print(row("cp", figures.cp_seconds))
    print(row("cp, then sync of the copy", figures.cp_sync_seconds))
    print(row("gunicorn reading the body into a bare app", figures.drain_seconds))
    print(row("upload through the service (SHA-256, fsync)", figures.upload_seconds))
    print()
    print(f"upload ÷ cp: {figures.ratio:.2f} (target ≥ 0.5);  upload ÷ (cp + sync): "
          f"{figures.ratio_with_sync:.2f};  upload ÷ gunicorn's bare read: "
          f"{figures.ratio_to_drain:.2f}")
    print(f"service worker memory: peak RSS {figures.peak_rss / MIB:.0f} MiB "
          f"(RSS before the first upload {figures.rss_before / MIB:.0f} MiB)")


if __name__ == "__main__":
    main()
