"""What the test modules share for reading answers and racing requests."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from werkzeug.test import TestResponse

PROBLEM_MIMETYPE = "application/problem+json"
ROOT = Path(__file__).resolve().parents[1]


def ok(response: TestResponse, status: int = 200) -> Any:
    """The JSON body of an answer that must have this status."""
    assert response.status_code == status, (response.status_code, response.get_json())
    return response.get_json()


def problem(response: TestResponse, status: int, code: str | None = None) -> dict[str, Any]:
    """The problem+json body of a refusal with this status (and code, when given)."""
    assert response.status_code == status, response.get_json()
    assert response.mimetype == PROBLEM_MIMETYPE
    body: dict[str, Any] = response.get_json()
    assert body["status"] == status, body
    if code is not None:
        assert body["code"] == code, body
    return body


def problem_code(response: TestResponse) -> str:
    """The code of a problem+json answer."""
    assert response.mimetype == PROBLEM_MIMETYPE, response.get_data(as_text=True)
    code: str = response.get_json()["code"]
    return code


def race(app: Flask, threads: int,
         send: Callable[[FlaskClient, int], TestResponse]) -> list[TestResponse]:
    """Send `threads` requests at the same moment, each from its own client (and database
    session); `send(client, n)` sends the n-th. The answers, in that order."""
    start = threading.Barrier(threads)

    def one(n: int) -> TestResponse:
        client = app.test_client()
        start.wait()
        return send(client, n)

    with ThreadPoolExecutor(max_workers=threads) as pool:
        futures = [pool.submit(one, n) for n in range(threads)]
        return [future.result(timeout=60) for future in futures]



def seal_log(timeout: float = 60) -> Any:
    """Run the evidence log's sealer, as its job and `flask log seal` do, until every committed
    entry is in the log; the report of the runs together.

    On PostgreSQL a transaction open anywhere in the cluster (other databases' included) holds
    the sealer back until it ends: runs that find nothing yet are repeated.
    """
    from flask import current_app

    from app.audit import AuditEntry
    from app.db import unit_of_work
    from app.log.models import LogLeaf
    from app.log.sealer import SealReport, seal

    sealed = 0
    deadline = time.monotonic() + timeout
    while True:
        report = seal(current_app.config["LOG_ORIGIN"])
        assert report is not None, "another sealer held the lock"
        sealed += report.sealed
        with unit_of_work() as session:
            waiting = session.scalar(select(func.count()).select_from(AuditEntry).where(
                AuditEntry.id.not_in(select(LogLeaf.entry_id))))
        if not waiting:
            return SealReport(sealed, report.tree_size, report.root_hash)
        assert time.monotonic() < deadline, f"{waiting} entries were not sealed in {timeout} s"
        time.sleep(0.05)


def flask(app: Flask, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """A `flask` command in its own process, on the test's database (`env` added to its
    environment: CRASH_AT kills it part-way)."""
    environment = {name: value for name, value in os.environ.items() if name != "CRASH_AT"}
    environment |= {"APP_ENV": "testing", "FLASK_APP": "app",
                    "DATABASE_URL": app.config["SQLALCHEMY_DATABASE_URI"], **env}
    return subprocess.run([sys.executable, "-m", "flask", *args], cwd=ROOT, env=environment,
                          capture_output=True, text=True, timeout=120, check=False)


def free_port() -> int:
    """A TCP port free on the loopback address now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def server_process(argv: list[str], log_path: Path, ready: Callable[[], bool],
                   name: str) -> Iterator[subprocess.Popen[bytes]]:
    """A server (localstripe, moto) run as a subprocess, its output in `log_path`, until the
    block ends: started, waited for until `ready()` (60 s at most), then stopped."""
    with open(log_path, "wb") as log:
        process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 60
            while not ready():
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{name} did not start: {log_path.read_text()}")
                time.sleep(0.1)
            yield process
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
