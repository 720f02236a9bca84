"""A stateful fake of Stripe Connect's transfer endpoints, served over HTTP for the real SDK.

localstripe has no Connect endpoints, so payouts by `stripe_connect` are tested against this:
- POST /v1/transfers: a transfer from the platform's available balance to a connected
  account; more than the balance → 400 `balance_insufficient`; an unknown destination → 400
  `resource_missing`;
- idempotency as Stripe keeps it: the same Idempotency-Key with the same parameters replays
  the first response (nothing happens twice), with other parameters → 400 `idempotency_error`;
- POST /v1/transfers/{id}/reversals: at most the amount not yet reversed (400 beyond), back
  to the platform's balance;
- GET /v1/transfers/{id}, and the test's own controls under /_fake/.
Errors use Stripe's JSON shape, so the SDK raises its own exception classes.
"""

from __future__ import annotations

import json
import threading
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl


@dataclass
class ConnectState:
    available: int = 0
    accounts: set[str] = field(default_factory=set)
    transfers: dict[str, dict[str, Any]] = field(default_factory=dict)
    keys: dict[str, tuple[str, int, dict[str, Any]]] = field(default_factory=dict)
    requests: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    # The next N transfer requests fail at the network level (the connection is dropped).
    drop_next: int = 0


def _error(status: int, kind: str, code: str | None, message: str) -> tuple[int, dict]:
    return status, {"error": {"type": kind, "code": code, "message": message}}


class _Handler(BaseHTTPRequestHandler):
    state: ConnectState

    def log_message(self, *args: Any) -> None:  # quiet
        pass

    def _params(self) -> dict[str, str]:
        length = int(self.headers.get("Content-Length") or 0)
        return dict(parse_qsl(self.rfile.read(length).decode()))

    def _reply(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        parts = self.path.strip("/").split("/")
        with self.state.lock:
            if parts[:2] == ["v1", "transfers"] and len(parts) == 3 \
                    and parts[2] in self.state.transfers:
                return self._reply(200, self.state.transfers[parts[2]])
        self._reply(*_error(404, "invalid_request_error", "resource_missing", "No such"))

    def do_POST(self) -> None:
        params = self._params()
        parts = self.path.strip("/").split("/")
        state = self.state
        with state.lock:
            state.requests += 1
            if parts[:2] == ["v1", "transfers"] and state.drop_next:
                state.drop_next -= 1
                self.close_connection = True
                self.connection.shutdown(2)  # the response is lost on the way
                return
            key = self.headers.get("Idempotency-Key")
            fingerprint = self.path + json.dumps(sorted(params.items()))
            if key and key in state.keys:
                first, status, body = state.keys[key]
                if first != fingerprint:
                    return self._reply(*_error(400, "idempotency_error", None,
                                               "Keys for idempotent requests can only be used "
                                               "with the same parameters they were first used "
                                               "with."))
                return self._reply(status, body)
            status, body = self._act(parts, params)
            if key:
                state.keys[key] = (fingerprint, status, body)
        self._reply(status, body)

    def _act(self, parts: list[str], params: dict[str, str]) -> tuple[int, dict]:
        state = self.state
        if parts == ["v1", "transfers"]:
            amount = int(params.get("amount", "0"))
            destination = params.get("destination", "")
            if destination not in state.accounts:
                return _error(400, "invalid_request_error", "resource_missing",
                              f"No such destination: '{destination}'")
            if amount <= 0:
                return _error(400, "invalid_request_error", "parameter_invalid_integer",
                              "Invalid positive integer")
            if amount > state.available:
                return _error(400, "invalid_request_error", "balance_insufficient",
                              "You have insufficient available funds in your Stripe account.")
            state.available -= amount
            transfer: dict[str, Any] = {"id": f"tr_{uuid.uuid4().hex[:24]}", "object": "transfer",
                        "amount": amount, "amount_reversed": 0,
                        "currency": params.get("currency"), "destination": destination,
                        "transfer_group": params.get("transfer_group"), "reversed": False,
                        "metadata": {k[9:-1]: v for k, v in params.items()
                                     if k.startswith("metadata[")}}
            state.transfers[transfer["id"]] = transfer
            return 200, transfer
        if len(parts) == 4 and parts[:2] == ["v1", "transfers"] and parts[3] == "reversals":
            found = state.transfers.get(parts[2])
            if found is None:
                return _error(404, "invalid_request_error", "resource_missing", "No such")
            transfer = found
            left = transfer["amount"] - transfer["amount_reversed"]
            amount = int(params.get("amount", left))
            if not 0 < amount <= left:
                return _error(400, "invalid_request_error", "parameter_invalid_integer",
                              f"Reversal of {amount} exceeds the {left} not yet reversed")
            transfer["amount_reversed"] += amount
            transfer["reversed"] = transfer["amount_reversed"] == transfer["amount"]
            state.available += amount
            return 200, {"id": f"trr_{uuid.uuid4().hex[:24]}", "object": "transfer_reversal",
                         "amount": amount, "transfer": transfer["id"]}
        if parts == ["_fake", "balance"]:
            state.available = int(params["available"])
            return 200, {"available": state.available}
        if parts == ["_fake", "accounts"]:
            state.accounts.add(params["id"])
            return 200, {"id": params["id"]}
        return _error(404, "invalid_request_error", "resource_missing", "Unrecognized request")


class FakeStripeConnect:
    """The fake on 127.0.0.1 (a free port), in a thread: `url`, `state`, `stop()`."""

    def __init__(self) -> None:
        self.state = ConnectState()
        handler = type("Handler", (_Handler,), {"state": self.state})
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def reset(self, *, available: int = 0, accounts: tuple[str, ...] = ()) -> None:
        with self.state.lock:
            self.state.available = available
            self.state.accounts = set(accounts)
            self.state.transfers.clear()
            self.state.keys.clear()
            self.state.requests = 0
            self.state.drop_next = 0

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
