"""API delivery: short-lived access tokens bound to a licence, and their introspection.

A holder of an active `api` licence (its buyer or a beneficiary) gets a random token, shown
once and stored as its SHA-256. The merchant's own API asks `POST /oauth/introspect` on every
call (RFC 7662), so introspection is one statement on the token's unique index joined to its
licence by primary key, writes nothing, and reads the licence as it is now: a suspended,
revoked or lapsed licence, or one with no calls left, makes its tokens inactive at once.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from flask import current_app
from sqlalchemy import bindparam, delete, select
from sqlalchemy.orm import Session

from app import clock
from app.db import rows_matched
from app.parties.models import Actor
from licenses import services
from licenses.models import License, LicenseStatus, LicenseToken
from listings.models import DeliveryMode

TOKEN_PREFIX = "dxt_"
TOKEN_BYTES = 32
INACTIVE: dict[str, Any] = {"active": False}

# Built once: every call of every merchant's API runs it.
_TOKEN_AND_LICENSE = (
    select(LicenseToken.issued_to, LicenseToken.expires_at, LicenseToken.revoked_at,
           LicenseToken.created_at, License.id, License.merchant_id, License.buyer_id,
           License.listing_id, License.status, License.valid_until, License.calls_remaining,
           License.purposes)
    .join(License, License.id == LicenseToken.license_id)
    .where(LicenseToken.token_hash == bindparam("token_hash")))


def hash_token(raw: str) -> str:
    # 256 random bits: a fast hash is enough, there is nothing to brute-force.
    return hashlib.sha256(raw.encode()).hexdigest()


@dataclass(frozen=True)
class IssuedToken:
    """A new token as its holder sees it, once."""

    access_token: str
    token_type: str
    expires_at: datetime
    license_id: uuid.UUID


def issue_token(session: Session, *, license_id: uuid.UUID, actor: Actor) -> IssuedToken:
    """A token for the licence's buyer or a beneficiary, while the `api` licence is in force
    with calls left; it lives LICENSE_TOKEN_TTL_SECONDS, never past the licence's end."""
    now = clock.now()
    license = services.license_in_use(session, license_id=license_id, holder=actor,
                                      delivery_mode=DeliveryMode.API, at=now)
    raw = TOKEN_PREFIX + secrets.token_urlsafe(TOKEN_BYTES)
    expires_at = now + timedelta(seconds=current_app.config["LICENSE_TOKEN_TTL_SECONDS"])
    if license.valid_until is not None:
        expires_at = min(expires_at, license.valid_until)
    token = LicenseToken(license_id=license.id, token_hash=hash_token(raw), issued_to=actor.id,
                         expires_at=expires_at)
    session.add(token)
    session.flush()
    services.record(session, actor, "license.token_issued", license, token_id=str(token.id),
                     issued_to=str(actor.id), expires_at=expires_at.isoformat())
    return IssuedToken(raw, "Bearer", expires_at, license.id)


def introspect(session: Session, *, token: str, merchant: Actor) -> dict[str, Any]:
    """RFC 7662: what a token allows, for the merchant whose listing it opens; `active` false
    alone for a token unknown, expired, revoked, of another merchant's listing, or of a
    licence not in force or out of calls."""
    # Core on the session's connection: the ORM has nothing to add to a row it only reads.
    row = session.connection().execute(_TOKEN_AND_LICENSE,
                                       {"token_hash": hash_token(token)}).first()
    now = clock.now()
    if (row is None or row.merchant_id != merchant.id or row.revoked_at is not None
            or row.expires_at <= now or row.status is not LicenseStatus.ACTIVE
            or (row.valid_until is not None and row.valid_until <= now)
            or (row.calls_remaining is not None and row.calls_remaining <= 0)):
        return INACTIVE
    return {"active": True, "token_type": "Bearer", "scope": " ".join(row.purposes),
            "exp": int(row.expires_at.timestamp()), "iat": int(row.created_at.timestamp()),
            "sub": str(row.issued_to), "license_id": str(row.id),
            "buyer_id": str(row.buyer_id), "listing_id": str(row.listing_id),
            "calls_remaining": row.calls_remaining}


def purge_expired_tokens(session: Session, *, before: datetime) -> int:
    """Forget tokens that expired before `before` (they answer inactive either way)."""
    return rows_matched(session, delete(LicenseToken).where(LicenseToken.expires_at < before))
