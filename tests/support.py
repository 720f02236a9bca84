"""What the test modules share for reading answers and racing requests."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

PROBLEM_MIMETYPE = "application/problem+json"


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
