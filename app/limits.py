"""Abuse limits (Flask-Limiter): authentication failures, registration, trading, disputes.

Counters live in Redis when REDIS_URL is set (shared by every web host) and in memory
otherwise. Route limits are keyed by the API key presented (hashed: keys are never kept) or,
without one, by the client's address; failed authentications are counted per address, across
every route, and once over their limit the address is refused before any key is looked up.
Over a limit: 429 problem+json `rate_limited` with Retry-After. Each limit is a setting
(RATE_LIMIT_*), read per request.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable
from typing import Any

from flask import Flask, current_app, request
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from limits import parse

from app.errors import DomainError


class RateLimited(DomainError):
    status, code, title = 429, "rate_limited", "Too many requests"

    def __init__(self, detail: str, retry_after: int) -> None:
        super().__init__(detail)
        self.headers = {"Retry-After": str(max(1, retry_after))}


def client_key() -> str:
    """Who is asking: the (hashed) API key presented, else the client's address."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return "key:" + hashlib.sha256(token.strip().encode()).hexdigest()[:32]
    return "addr:" + (get_remote_address() or "unknown")


limiter = Limiter(client_key, headers_enabled=True, retry_after="delta-seconds")


def init_limits(app: Flask) -> None:
    app.config.setdefault("RATELIMIT_STORAGE_URI", app.config.get("REDIS_URL") or "memory://")
    app.config.setdefault("RATELIMIT_KEY_PREFIX", "exchange")
    limiter.init_app(app)


def _enabled() -> bool:
    # Read per request (not Flask-Limiter's own switch, set once per limiter): the suite
    # builds several applications in one process, with and without limits.
    return bool(current_app.config["RATE_LIMITS_ENABLED"])


def limit(setting_name: str) -> Any:
    """A route's limit, read from the setting `setting_name` at request time."""
    setting: Callable[[], str] = lambda: current_app.config[setting_name]  # noqa: E731
    return limiter.limit(setting, error_message=f"Over the limit ({setting_name}).",
                         exempt_when=lambda: not _enabled())


def _auth_failures() -> tuple[Any, str, str]:
    return (parse(current_app.config["RATE_LIMIT_AUTH_FAILURES"]),
            current_app.config["RATELIMIT_KEY_PREFIX"], get_remote_address() or "unknown")


def ensure_not_guessing_keys() -> None:
    """429 for an address that has failed authentication too often lately."""
    if not _enabled():
        return
    rule, prefix, address = _auth_failures()
    if not limiter.limiter.test(rule, prefix, "auth-failures", address):
        reset_at = limiter.limiter.get_window_stats(rule, prefix, "auth-failures",
                                                    address).reset_time
        raise RateLimited("Too many failed authentications from this address; wait before "
                          "trying again.", retry_after=math.ceil(reset_at - time.time()))


def count_failed_authentication() -> None:
    if _enabled():
        rule, prefix, address = _auth_failures()
        limiter.limiter.hit(rule, prefix, "auth-failures", address)
