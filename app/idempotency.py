"""Idempotency-Key: a repeated request replays the first response instead of acting twice.

The key row is inserted in the same transaction as the request's effects, so the effect and
the stored response commit together or not at all. A second request with the same key
waits for the first (on PostgreSQL, on the key's advisory lock, which every claim holds to
its end) until it commits (then replays it) or rolls back (then runs).
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from functools import wraps
from typing import Any, TypeVar

from flask import Response, current_app, make_response, request
from sqlalchemy import (
    JSON,
    ForeignKey,
    Integer,
    String,
    Text,
    bindparam,
    delete,
    select,
    text,
)
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Mapped, Session, mapped_column
from sqlalchemy.sql.selectable import ExecutableReturnsRows

from app import clock
from app.api import document_errors, document_success_headers
from app.audit import canonical_json
from app.db import Base, rows_matched, unit_of_work
from app.errors import Conflict, DomainError, ValidationFailed, domain_error_problem
from app.parties.auth import current_party

F = TypeVar("F", bound=Callable[..., Any])

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
MAX_KEY_LENGTH = 255
# Response headers worth replaying; hop-by-hop and per-request ones are not.
_REPLAYED_HEADERS = ("Content-Type", "Location", "ETag", "X-Pagination")


class IdempotencyKeyReused(Conflict):
    code, title = "idempotency_key_reused", "Idempotency-Key already used for another request"


class IdempotencyKeyInProgress(Conflict):
    code, title = "idempotency_key_in_progress", "A request with this Idempotency-Key is running"


class IdempotencyKey(Base):
    """A key a party has used, with the fingerprint of its request and the stored response."""

    __tablename__ = "idempotency_keys"

    party_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("parties.id"), primary_key=True)
    key: Mapped[str] = mapped_column(String(MAX_KEY_LENGTH), primary_key=True)
    request_fingerprint: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(index=True)
    response_status: Mapped[int | None] = mapped_column(Integer)
    response_headers: Mapped[dict[str, str] | None] = mapped_column(JSON)
    response_body: Mapped[str | None] = mapped_column(Text)

    def replay(self) -> Response:
        response = Response(self.response_body, status=self.response_status)
        for name, value in (self.response_headers or {}).items():
            response.headers[name] = value
        response.headers[REPLAYED_HEADER] = "true"
        return response

    def store(self, response: Response) -> None:
        self.response_status = response.status_code
        self.response_body = response.get_data(as_text=True)
        self.response_headers = {
            name: response.headers[name] for name in _REPLAYED_HEADERS if name in response.headers
        }


def request_fingerprint() -> str:
    """Method, path, query and body: what makes two requests "the same request"."""
    try:
        body = request.get_json(silent=True)
    except RecursionError:
        # silent= only covers ValueError; too deep a document is the parser's to refuse (400).
        body = None
    body_text = canonical_json(body) if body is not None else request.get_data(as_text=True)
    material = "\n".join([request.method, request.path, request.query_string.decode(), body_text])
    return hashlib.sha256(material.encode()).hexdigest()


def _insert_ignoring_conflict(session: Session, values: dict[str, Any],
                              statement: ExecutableReturnsRows | None = None
                              ) -> IdempotencyKey | None:
    """The new key's row, or None when the key is already there. RETURNING the row (not
    rowcount, which psycopg 3 resets when SQLAlchemy closes an INSERT's cursor) also spares
    reading it back."""
    return session.scalars(statement if statement is not None else _CLAIM, values,
                           execution_options={"populate_existing": True}).first()


def _claim_statement(*, locked: bool = False) -> ExecutableReturnsRows:
    # Written as text: SQLAlchemy's ON CONFLICT inserts carry no cache key, so they would be
    # compiled afresh on every idempotent POST. Both databases speak this SQL; `locked`
    # (PostgreSQL) inserts only once it has the key's transaction-level advisory lock, taken
    # without waiting in the same statement.
    table = IdempotencyKey.__table__
    inserted = ("party_id", "key", "request_fingerprint", "created_at")
    values = ", ".join(":" + name for name in inserted)
    source = (f"SELECT {values} WHERE pg_try_advisory_xact_lock({_KEY_LOCK})" if locked
              else f"VALUES ({values})")
    sql = (f"INSERT INTO {table.name} ({', '.join(inserted)}) {source} "
           f"ON CONFLICT DO NOTHING RETURNING {', '.join(table.c.keys())}")
    statement = text(sql).bindparams(
        *[bindparam(name, type_=table.c[name].type) for name in inserted]).columns(*table.c)
    return select(IdempotencyKey).from_statement(statement)


# Every request claiming a key on PostgreSQL holds this lock until it ends, so while one is
# in progress the next finds it taken (a pair of keys sharing a lock merely wait in turn).
_KEY_LOCK = "hashtextextended(CAST(:party_id AS text) || ' ' || :key, 0)"
_CLAIM = _claim_statement()
_CLAIM_LOCKED = _claim_statement(locked=True)
_WAIT_FOR_KEY = text(f"SELECT pg_advisory_xact_lock({_KEY_LOCK})")


def _claim(session: Session, party_id: uuid.UUID, key: str,
           fingerprint: str) -> tuple[IdempotencyKey, bool]:
    """Insert the key (→ its row, True), or find the row of the request that used it first.

    On PostgreSQL the common case is one statement: the key's advisory lock is free, so no
    request with the key is in progress and the insert cannot wait on one. Otherwise the
    request waits for that lock, at most IDEMPOTENCY_LOCK_TIMEOUT_MS (then 409 in progress),
    and tries again once the other request has committed (→ replayed) or rolled back.
    """
    now = clock.now()
    ttl = timedelta(hours=current_app.config["IDEMPOTENCY_KEY_TTL_HOURS"])
    values = {"party_id": party_id, "key": key, "request_fingerprint": fingerprint,
              "created_at": now}
    postgres = session.get_bind().dialect.name == "postgresql"
    if postgres:
        row = _insert_ignoring_conflict(session, values, _CLAIM_LOCKED)
        if row is not None:
            return row, True
        timeout = int(current_app.config["IDEMPOTENCY_LOCK_TIMEOUT_MS"])
        session.execute(text(f"SET LOCAL lock_timeout = {timeout}"))
    try:
        if postgres:
            session.execute(_WAIT_FOR_KEY, {"party_id": str(party_id), "key": key})
        row = _insert_ignoring_conflict(session, values)
        if row is None:
            # A key older than the TTL is forgotten: it may be used afresh.
            expired = rows_matched(session, delete(IdempotencyKey).where(
                IdempotencyKey.party_id == party_id, IdempotencyKey.key == key,
                IdempotencyKey.created_at < now - ttl))
            if expired:
                row = _insert_ignoring_conflict(session, values)
    except OperationalError as error:
        if postgres and getattr(error.orig, "sqlstate", None) == "55P03":  # lock_not_available
            raise IdempotencyKeyInProgress(
                "Another request with this Idempotency-Key has not finished; retry later."
            ) from None
        raise
    if postgres:
        session.execute(text("SET LOCAL lock_timeout = DEFAULT"))
    if row is not None:
        return row, True
    used = session.get(IdempotencyKey, (party_id, key), populate_existing=True)
    assert used is not None
    return used, False


def idempotent(view: F) -> F:
    """Make a POST safe to retry with an Idempotency-Key (scoped to the calling party).

    Same key and same request → the stored response is replayed and nothing runs again;
    same key and another request → 409 idempotency_key_reused. The view runs inside the
    key's transaction, so errors roll back the key too and the request may be retried; a
    refusal whose record is kept (`keeps_changes`) commits with its answer stored under the
    key, so a retry replays that refusal instead of acting again.
    """

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        presented = _presented_key()
        if presented is None:
            return view(*args, **kwargs)
        party_id, key, fingerprint = presented
        with unit_of_work() as session:
            row, claimed = _claim(session, party_id, key, fingerprint)
            if not claimed:
                return _replay(row, fingerprint)
            try:
                response = make_response(view(*args, **kwargs))
            except DomainError as error:
                if error.keeps_changes:
                    # The refusal's record commits, and the key with it: stored without an
                    # answer, the key would turn every retry away as "in progress" until it
                    # expires. The refusal is the answer, replayed to a retry.
                    row.store(domain_error_problem(error))
                raise
            row.store(response)
            return response

    return _documented(wrapper)


def idempotent_own_transactions(view: F) -> F:
    """`idempotent` for a view that commits its work in transactions of its own (a settlement
    run: batch after batch) and does nothing twice when run again by itself.

    Such work cannot join the key's transaction: it would become one transaction holding
    every lock to the end (concurrent runs then deadlock). The key is looked up first (a
    stored answer is replayed), the view runs, and the key is stored with its answer
    afterwards. A concurrent request with the same key may run the view too; the answer
    stored first is the one both give.
    """

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        presented = _presented_key()
        if presented is None:
            return view(*args, **kwargs)
        party_id, key, fingerprint = presented
        with unit_of_work() as session:
            ttl = timedelta(hours=current_app.config["IDEMPOTENCY_KEY_TTL_HOURS"])
            stored = session.scalar(select(IdempotencyKey).where(
                IdempotencyKey.party_id == party_id, IdempotencyKey.key == key,
                IdempotencyKey.created_at >= clock.now() - ttl))
            if stored is not None:
                return _replay(stored, fingerprint)
        response = make_response(view(*args, **kwargs))
        with unit_of_work() as session:
            row, claimed = _claim(session, party_id, key, fingerprint)
            if not claimed:
                return _replay(row, fingerprint)
            row.store(response)
            return response

    return _documented(wrapper)


def _presented_key() -> tuple[uuid.UUID, str, str] | None:
    """The calling party, the Idempotency-Key it sent and the request's fingerprint; None
    without a key."""
    key = request.headers.get(HEADER)
    if key is None:
        return None
    # Printable: a NUL is refused by PostgreSQL (a 500), other control characters are
    # no client's key and would reach the logs as they are.
    if not 1 <= len(key) <= MAX_KEY_LENGTH or not key.isprintable():
        raise ValidationFailed(errors={HEADER: [
            f"Must be 1 to {MAX_KEY_LENGTH} printable characters."]})
    return current_party().id, key, request_fingerprint()


def _replay(row: IdempotencyKey, fingerprint: str) -> Response:
    """The stored answer to the same request; 409 for another request or one unfinished."""
    if row.request_fingerprint != fingerprint:
        raise IdempotencyKeyReused("This Idempotency-Key was used for a different request.")
    if row.response_status is None:
        # Never visible once committed (key and response commit together); if it ever is,
        # an empty 200 "replay" would hide that nothing ran.
        raise IdempotencyKeyInProgress(
            "The request with this Idempotency-Key has no stored response yet.")
    return row.replay()


def _documented(wrapper: Callable[..., Any]) -> Any:
    """The 409s, the Idempotency-Key header and the replay mark in the view's OpenAPI entry."""
    wrapper = document_success_headers(document_errors(wrapper, 409), {REPLAYED_HEADER: {
        "description": "true when this is the stored answer to an earlier request with the "
                       "same Idempotency-Key: nothing ran again",
        "schema": {"type": "string", "enum": ["true"]}}})
    doc = wrapper._apidoc.setdefault("manual_doc", {})  # type: ignore[attr-defined]
    doc.setdefault("parameters", []).append({
        "in": "header", "name": HEADER, "required": False, "schema": {"type": "string",
        "maxLength": MAX_KEY_LENGTH},
        "description": "Retry-safe key: same key and body within 24 h replays the first response.",
    })
    return wrapper


def purge_expired_keys(session: Session) -> int:
    """Delete keys past their TTL; returns how many."""
    cutoff = clock.now() - timedelta(hours=current_app.config["IDEMPOTENCY_KEY_TTL_HOURS"])
    return rows_matched(session, delete(IdempotencyKey).where(IdempotencyKey.created_at < cutoff))
