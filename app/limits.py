"""Abuse limits (Flask-Limiter): authentication failures, registration, key issuance,
trading, disputes.

Counters live in Redis when REDIS_URL is set (shared by every web host) and in memory
otherwise. A route's limit counts per party, whichever of its keys it sends (a new key is not
a new allowance), or per client address where the route says so (registration, whatever key
comes with it) and for anonymous requests. Failed authentications count per address across
every route; past their limit a wrong key is answered 429 instead of 401, while valid keys and
anonymous requests from that address still pass, so a guesser cannot lock out the clients
sharing its address (a NAT, an office, a load balancer without ProxyFix). No limit can hide
from a guesser that a key is valid without refusing that key's owner too; keys carry 256
random bits, so there is nothing to find by guessing.

The client's address is the socket's peer, or with TRUSTED_PROXY_HOPS the one that many
trusted proxies recorded in X-Forwarded-For (werkzeug's ProxyFix, app/__init__.py).
Over a limit: 429 problem+json `rate_limited` with Retry-After; no other answer carries
Retry-After except a 503 with its own. Each limit is a setting (RATE_LIMIT_*), read per request.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

from flask import Flask, Response, current_app, request
from flask_limiter import Limiter
from limits import parse

from app.errors import DomainError

# Where a 503's own Retry-After waits while Flask-Limiter's header hook runs.
_OWN_RETRY_AFTER = "dx.retry_after"


class RateLimited(DomainError):
    status, code, title = 429, "rate_limited", "Too many requests"

    def __init__(self, detail: str, retry_after: int) -> None:
        super().__init__(detail)
        self.headers = {"Retry-After": str(max(1, retry_after))}


def client_address() -> str:
    """The client's address: the socket's peer, or what the trusted proxies forwarded."""
    return request.remote_addr or "unknown"


def _counter(kind: str, who: str) -> str:
    # The prefix is the application's own (Flask-Limiter keeps the first application's for
    # good, and several share one limiter in a test process).
    return f"{current_app.config['RATE_LIMIT_KEY_PREFIX']}:{kind}:{who}"


def per_address() -> str:
    """The counter of the client's address."""
    return _counter("addr", client_address())


def per_party() -> str:
    """The counter of the authenticated party (of its address when anonymous); 401 or 429
    for a wrong key, which spends no allowance."""
    # Imported here: authentication counts its failures through this module.
    from app.parties.auth import authenticated_party

    party = authenticated_party()
    return _counter("party", str(party.id)) if party is not None else per_address()


limiter = Limiter(per_party, headers_enabled=True, retry_after="delta-seconds")


def init_limits(app: Flask) -> None:
    app.config.setdefault("RATELIMIT_STORAGE_URI", app.config.get("REDIS_URL") or "memory://")
    # Flask runs after_request hooks last registered first: the first hook here sees each
    # answer after Flask-Limiter's headers are added, the second before.
    app.after_request(_retry_after_only_when_refused)
    limiter.init_app(app)
    app.after_request(_keep_own_retry_after)


def _keep_own_retry_after(response: Response) -> Response:
    request.environ[_OWN_RETRY_AFTER] = response.headers.get("Retry-After")
    return response


def _retry_after_only_when_refused(response: Response) -> Response:
    """Flask-Limiter adds Retry-After to every answer of a limited route (a 201, a 409),
    and raises a 503's to the limit's reset: only a 429 keeps the limiter's, a 503 its own."""
    own = request.environ.get(_OWN_RETRY_AFTER)
    if response.status_code == 503 and own is not None:
        response.headers["Retry-After"] = own
    elif response.status_code not in (429, 503):
        response.headers.pop("Retry-After", None)
    return response


def _enabled() -> bool:
    # Read per request (not Flask-Limiter's own switch, set once per limiter): the suite
    # builds several applications in one process, with and without limits.
    return bool(current_app.config["RATE_LIMITS_ENABLED"])


def limit(setting_name: str, *, by: Callable[[], str] = per_party) -> Any:
    """A route's limit, read from the setting `setting_name` at request time, counted per
    party (or per address with `by=per_address`)."""
    setting: Callable[[], str] = lambda: current_app.config[setting_name]  # noqa: E731
    return limiter.limit(setting, key_func=by, error_message=f"Over the limit ({setting_name}).",
                         exempt_when=lambda: not _enabled())


def count_failed_authentication() -> None:
    """Count a failed authentication from the client's address; past the limit, 429."""
    if not _enabled():
        return
    rule = parse(current_app.config["RATE_LIMIT_AUTH_FAILURES"])
    counter = _counter("auth-failures", client_address())
    if not limiter.limiter.hit(rule, counter):
        reset_at = limiter.limiter.get_window_stats(rule, counter).reset_time
        raise RateLimited("Too many failed authentications from this address; wait before "
                          "trying again.", retry_after=math.ceil(reset_at - time.time()))
