"""One hierarchy of domain errors, rendered once as RFC 9457 problem+json."""

from __future__ import annotations

import http
import logging
import re
from typing import Any

from flask import Flask, Response, json
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.orm.exc import StaleDataError
from werkzeug.exceptions import HTTPException

log = logging.getLogger(__name__)

PROBLEM_MIMETYPE = "application/problem+json"


class DomainError(Exception):
    """A broken business rule: carries the HTTP status and a stable snake_case code."""

    status = 400
    code = "bad_request"
    title = "Bad request"
    headers: dict[str, str] = {}
    # True for a refusal whose record must survive: the unit of work commits, then re-raises.
    keeps_changes = False

    def __init__(
        self,
        detail: str | None = None,
        *,
        errors: dict[str, list[str]] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        self.errors = errors
        self.extra = extra


class ValidationFailed(DomainError):
    status, code, title = 422, "validation_error", "The request is not valid"


class MalformedJson(DomainError):
    status, code, title = 400, "malformed_json", "The body is not valid JSON"


class Unauthorized(DomainError):
    status, code, title = 401, "unauthorized", "Authentication required"
    headers = {"WWW-Authenticate": 'Bearer realm="api"'}


class Forbidden(DomainError):
    status, code, title = 403, "forbidden", "Not allowed"


class NotFound(DomainError):
    status, code, title = 404, "not_found", "Not found"


class NotAcceptable(DomainError):
    status, code, title = 406, "not_acceptable", "No representation the request accepts"


class Conflict(DomainError):
    status, code, title = 409, "conflict", "Conflict with the current state"


class InvalidTransition(Conflict):
    code, title = "invalid_transition", "Not allowed in the current status"


class VersionConflict(Conflict):
    code, title = "version_conflict", "Changed by someone else since you read it"


def stale_data_problem(error: StaleDataError) -> Response:
    # A versioned row (version_id_col) changed between read and write: a lost update avoided.
    return domain_error_problem(VersionConflict(
        "Someone else changed this since you read it; read it again and retry."))


def problem(
    status: int,
    code: str,
    title: str,
    detail: str,
    *,
    errors: dict[str, list[str]] | None = None,
    extra: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    """A problem+json response."""
    body: dict[str, Any] = {
        "type": f"/problems/{code}",
        "title": title,
        "status": status,
        "detail": detail,
        "code": code,
    }
    if errors is None and status == 422:
        errors = {"_schema": [detail]}  # every 422 names what to fix, field or whole body
    if errors is not None:
        body["errors"] = errors
    if extra:
        body.update({k: v for k, v in extra.items() if k not in body})
    response = Response(json.dumps(body), status=status, mimetype=PROBLEM_MIMETYPE)
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def _snake(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


_HTTP_CODES = {413: "payload_too_large", 422: ValidationFailed.code, 429: "rate_limited"}


def flatten_field_errors(messages: Any) -> dict[str, list[str]]:
    """webargs groups messages by location ({"json": {...}}); the contract wants fields."""
    flat: dict[str, list[str]] = {}
    if not isinstance(messages, dict):
        return {"_schema": [str(messages)]}
    for location_errors in messages.values():
        if not isinstance(location_errors, dict):
            flat.setdefault("_schema", []).extend(_strings(location_errors))
            continue
        for field, field_errors in location_errors.items():
            flat.setdefault(str(field), []).extend(_strings(field_errors))
    return flat


def _strings(value: Any) -> list[str]:
    if isinstance(value, list):
        return [item for v in value for item in _strings(v)]
    if isinstance(value, dict):
        return [f"{k}: {m}" for k, v in value.items() for m in _strings(v)]
    return [str(value)]


def http_exception_problem(error: HTTPException) -> Response:
    """Werkzeug's and flask-smorest's HTTP errors (404, 405, 413, webargs 422...) as problems."""
    status = error.code or 500
    data = getattr(error, "data", None) or {}
    messages = data.get("errors") or data.get("messages")
    errors = flatten_field_errors(messages) if status == 422 and messages else None
    code = _HTTP_CODES.get(status) or _snake(http.HTTPStatus(status).phrase)
    detail = data.get("message") or error.description or http.HTTPStatus(status).phrase
    # Keep headers werkzeug computed, such as Allow on 405.
    headers = {k: v for k, v in error.get_headers() if k.lower() != "content-type"}
    headers.update(data.get("headers") or {})
    return problem(status, code, http.HTTPStatus(status).phrase, detail, errors=errors,
                   headers=headers)


def domain_error_problem(error: DomainError) -> Response:
    return problem(error.status, error.code, error.title, error.detail, errors=error.errors,
                   extra=error.extra, headers=error.headers)


def unexpected_error_problem(error: Exception) -> Response:
    if isinstance(error, HTTPException):
        return http_exception_problem(error)
    log.exception("unhandled error")
    return problem(500, "internal_error", "Internal server error",
                   "The server could not complete the request.")


def database_error_problem(error: OperationalError | InterfaceError) -> Response:
    """The database is gone or restarting (or the transaction lost a deadlock): nothing was
    committed, so the client may retry. 503, not a 500 that reads like a bug."""
    log.warning("database unavailable: %s", type(getattr(error, "orig", error)).__name__)
    return problem(503, "database_unavailable", "Service unavailable",
                   "The database is not answering; nothing was changed. Retry shortly.",
                   headers={"Retry-After": "2"})


def register_error_handlers(app: Flask) -> None:
    """Map every error class once; flask-smorest's HTTP handler is overridden in app.api."""
    app.register_error_handler(OperationalError, database_error_problem)
    app.register_error_handler(InterfaceError, database_error_problem)
    app.register_error_handler(DomainError, domain_error_problem)
    app.register_error_handler(StaleDataError, stale_data_problem)
    app.register_error_handler(Exception, unexpected_error_problem)
