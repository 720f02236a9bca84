"""Bearer API keys: generation, hashing, authentication and role checks."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar, cast

from flask import g, request
from sqlalchemy import bindparam, select

from app import limits
from app.api import document_errors
from app.errors import Forbidden, Unauthorized
from app.extensions import db
from app.parties.models import ApiKey, Party, Role

F = TypeVar("F", bound=Callable[..., Any])

KEY_PREFIX = "dx_"
KEY_BYTES = 32
_ANONYMOUS = object()
# Where a request's party is cached: the WSGI environ lives exactly as long as the request,
# whereas g lives as long as the app context, which Flask reuses across requests when one
# was pushed before them (tests, scripts), so a party cached on g authenticated later requests.
_PARTY_ENVIRON_KEY = "dx.party"
# Built once: every request runs it, and building and keying a select costs more than
# running it (the compiled form is cached by this object's key).
_PARTY_BY_KEY = select(Party).join(ApiKey, ApiKey.party_id == Party.id).where(
    ApiKey.key_hash == bindparam("key_hash"), ApiKey.revoked_at.is_(None))


def generate_api_key() -> str:
    """A new random key: 32 bytes from the OS CSPRNG, URL-safe."""
    return KEY_PREFIX + secrets.token_urlsafe(KEY_BYTES)


def hash_api_key(raw_key: str) -> str:
    # Keys carry 256 bits of entropy, so a fast hash is enough: nothing to brute-force.
    return hashlib.sha256(raw_key.encode()).hexdigest()


def bearer_token() -> str | None:
    """The token of the Authorization header, None without one; 401 for another scheme."""
    header = request.headers.get("Authorization")
    if header is None:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("The Authorization header must be 'Bearer <api_key>'.")
    return token.strip()


def authenticated_party() -> Party | None:
    """The party whose key came with the request, None when none came; 401 for a bad key
    (429 once the address has failed too often: a valid key always passes)."""
    cached = request.environ.get(_PARTY_ENVIRON_KEY, _ANONYMOUS)
    if cached is not _ANONYMOUS:
        return cached
    try:
        token = bearer_token()
    except Unauthorized:
        limits.count_failed_authentication()
        raise
    party = None
    if token is not None:
        party = db.session.scalar(_PARTY_BY_KEY, {"key_hash": hash_api_key(token)})
        if party is None:
            limits.count_failed_authentication()
            raise Unauthorized("The API key is not valid or has been revoked.")
    request.environ[_PARTY_ENVIRON_KEY] = party
    # The access log reads the id as text: the party object may be expired (a rolled-back
    # transaction) by then, and reloading it could fail with the database it failed on.
    g.party_id = str(party.id) if party is not None else None
    return party


def current_party() -> Party:
    """The authenticated party; 401 when the request carries no valid key."""
    party = authenticated_party()
    if party is None:
        raise Unauthorized("This endpoint needs an API key: 'Authorization: Bearer <api_key>'.")
    return party


def require_role(*roles: Role) -> Callable[[F], F]:
    """Authenticate the request and, when roles are given, require one of them (else 403).

    With no roles any authenticated party passes; object-level checks stay in the services.
    """

    def decorator(view: F) -> F:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            party = current_party()
            if roles and not party.has_role(*roles):
                wanted = ", ".join(role.value for role in roles)
                raise Forbidden(f"This endpoint needs one of the roles: {wanted}.")
            return view(*args, **kwargs)

        return document_errors(cast(F, wrapper), 401, 403, secured=True)

    return decorator


def optional_auth(view: F) -> F:
    """Accept anonymous requests, but reject a key that is present and wrong."""

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        authenticated_party()
        return view(*args, **kwargs)

    return document_errors(cast(F, wrapper), 401)
