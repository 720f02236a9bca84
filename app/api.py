"""Our flask-smorest subclasses: the problem+json error schema, strict schemas, SQL pagination."""

from __future__ import annotations

import http
import json
import re
from collections.abc import Callable, Mapping
from copy import deepcopy
from datetime import datetime
from functools import wraps
from typing import Any, ClassVar, TypeVar, cast

import flask_smorest
import flask_smorest.pagination
import marshmallow as ma
from apispec.ext.marshmallow import MarshmallowPlugin, OpenAPIConverter
from apispec.ext.marshmallow.common import resolve_schema_instance
from flask import Response, current_app, request
from flask_smorest.pagination import Page
from flask_smorest.utils import prepare_response
from sqlalchemy import Select, func, select
from webargs.flaskparser import FlaskParser
from werkzeug.exceptions import RequestEntityTooLarge

from app.errors import PROBLEM_MIMETYPE, MalformedJson, NotAcceptable, http_exception_problem
from app.ledger import CURRENCY

F = TypeVar("F", bound=Callable[..., Any])


# Dates outside these years are typos or probes; near year 1 or 9999 they overflow on
# conversion to UTC, so they are refused at the edge.
EARLIEST_YEAR, LATEST_YEAR = 1900, 9000
# Past this row offset no page exists (and integers would overflow the databases' BIGINT).
MAX_OFFSET = 2**53


class Schema(ma.Schema):
    """Base schema: unknown fields are refused, never silently dropped; text must be storable
    (no NUL characters, which PostgreSQL refuses, nor unpaired surrogates, which no database
    can encode) and dates must be plausible. A request body's schema holds a realistic
    `example` of it, which the document shows."""

    example: ClassVar[dict[str, Any] | None] = None

    class Meta:
        unknown = ma.RAISE

    @ma.pre_load
    def _refuse_unstorable_text(self, data: Any, **kwargs: Any) -> Any:
        if not isinstance(data, Mapping):
            if message := unstorable_text(data):
                raise ma.ValidationError(message)
            return data
        for name, value in data.items():
            if message := unstorable_text(name):
                raise ma.ValidationError(message)
            if message := unstorable_text(value):
                raise ma.ValidationError(message, str(name))
        return data

    @ma.post_load
    def _refuse_implausible_dates(self, data: Any, **kwargs: Any) -> Any:
        for name, value in (data.items() if isinstance(data, dict) else ()):
            if isinstance(value, datetime) and not EARLIEST_YEAR <= value.year <= LATEST_YEAR:
                field = self.fields.get(name)
                raise ma.ValidationError(
                    f"Must be between the years {EARLIEST_YEAR} and {LATEST_YEAR}.",
                    (field.data_key if field is not None else None) or name)
        return data


class ResponseSchema(Schema):
    """A response body. Each of its fields is in every answer (null where it is nullable),
    so the document marks them all `required` and a typed client needs no "unset" case;
    the few that some answers leave out are named in `sometimes_absent`."""

    sometimes_absent: ClassVar[frozenset[str]] = frozenset()


class NestedMethod(ma.fields.Nested):
    """A nested object that a method of the schema picks (as fields.Method does), dumped
    and documented as the nested schema, where a fields.Method has no type at all."""

    def __init__(self, nested: Any, method_name: str, **kwargs: Any) -> None:
        super().__init__(nested, dump_only=True, **kwargs)
        self.method_name = method_name

    def get_value(self, obj: Any, attr: str, accessor: Any = None,
                  default: Any = ma.missing) -> Any:
        return getattr(self.parent, self.method_name)(obj)


class Currency(ma.fields.String):
    """The currency of a response's amounts: the exchange trades in one, which the document
    names as the only value (and which objects without a currency of their own answer)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(dump_default=CURRENCY, validate=ma.validate.OneOf([CURRENCY]), **kwargs)


class StrictBoolean(ma.fields.Boolean):
    """A JSON boolean and nothing else: marshmallow's Boolean would also take 0, 1, "yes",
    "on"... which the documented `type: boolean` refuses. For bodies; query strings keep
    the lenient Boolean, since every query value arrives as text."""

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> bool:
        if not isinstance(value, bool):  # 1 == True, so the truthy set alone would not do
            raise self.make_error("invalid", input=value)
        return value


class StrictFloat(ma.fields.Float):
    """A JSON number and nothing else: marshmallow's Float would also parse "1.5"."""

    def _validated(self, value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.make_error("invalid", input=value)
        return super()._validated(value)


class FullMatch(ma.validate.Regexp):
    """A Regexp the whole value must match. Regexp's re.match lets `$` match before a final
    newline, so "acct_1\\n" passed `^acct_[0-9A-Za-z]+$`; the pattern is still documented
    as the OpenAPI `pattern`."""

    def __call__(self, value: Any) -> Any:
        if self.regex.fullmatch(value) is None:
            raise ma.ValidationError(self._format_error(value))
        return value


# A lone half of a UTF-16 surrogate pair: JSON's "\udc80" escape decodes to one, which no
# UTF-8 encoder (PostgreSQL's driver, SQLite's, a log file's) accepts.
_SURROGATE = re.compile("[\ud800-\udfff]")


def unstorable_text(value: Any) -> str | None:
    """Why some text in a (nested) JSON value or query cannot be stored, or None."""
    pending = [value]  # walked without recursion: a deep document must not overflow the stack
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return "Text may not contain NUL characters."
            if _SURROGATE.search(item):
                return "Text may not contain unpaired surrogates (a lone \\ud800-\\udfff escape)."
        elif isinstance(item, Mapping):  # JSON objects, and webargs' query MultiDictProxy
            for pair in item.items():
                pending.extend(pair)
        elif isinstance(item, list | tuple):
            pending.extend(item)
    return None


class ProblemSchema(Schema):
    """RFC 9457 problem details; some codes add extension members (`matched_rules`,
    `missing`, `refundable_amount`...), which RFC 9457 allows, so the document allows them."""

    class Meta:
        unknown = ma.INCLUDE

    type = ma.fields.String(metadata={"description": "URI reference naming the problem type"})
    title = ma.fields.String()
    status = ma.fields.Integer()
    detail = ma.fields.String()
    code = ma.fields.String(metadata={"description": "Stable snake_case error code"})
    errors = ma.fields.Dict(
        keys=ma.fields.String(),
        values=ma.fields.List(ma.fields.String()),
        metadata={"description": "Field validation messages (422)"},
    )


class Parser(FlaskParser):
    def _raw_load_json(self, req: Any) -> Any:
        try:
            loaded = super()._raw_load_json(req)
        except RecursionError:
            # json.loads gives up on deeply nested documents ([[[[...) with RecursionError,
            # which webargs does not treat as a decoding error: it would become a 500.
            _refuse_truncated_stream(req)
            raise MalformedJson("The request body nests too deeply to be parsed.") from None
        except ValueError as error:
            if isinstance(error, json.JSONDecodeError):
                raise  # webargs answers it (_handle_invalid_json_error)
            # An integer of more digits than Python converts (sys.get_int_max_str_digits(),
            # 4,300) is refused by json.loads with a plain ValueError: a 500 otherwise.
            _refuse_truncated_stream(req)
            raise MalformedJson("The request body holds a number too long to be parsed.") from None
        _refuse_truncated_stream(req)
        return loaded

    def _handle_invalid_json_error(self, error: Exception, req: Any, *args: Any,
                                   **kwargs: Any) -> Any:
        _refuse_truncated_stream(req)
        raise MalformedJson("The request body is not valid JSON.")


def _refuse_truncated_stream(req: Any) -> None:
    """413 for a streamed (chunked) body longer than MAX_CONTENT_LENGTH.

    Werkzeug checks the limit against Content-Length up front, but a body without one is
    read through a LimitedStream whose read() stops silently at the limit: the rest would
    be dropped and the truncated prefix parsed (400, or even accepted if it is valid JSON).
    """
    limit = req.max_content_length
    if limit is None or req.content_length is not None:
        return
    if len(req.get_data(cache=True)) >= limit and req.environ["wsgi.input"].read(1):
        raise RequestEntityTooLarge()


class Blueprint(flask_smorest.Blueprint):
    ARGUMENTS_PARSER = Parser()
    DEFAULT_PAGINATION_PARAMETERS = {"page": 1, "page_size": 20, "max_page_size": 100}

    def route(self, rule: str, *, operation_ids: Mapping[str, str] | None = None,
              **options: Any) -> Callable[[F], F]:
        """flask-smorest's route, naming its operations: `operation_ids` maps each method of
        the view (`"post"`) to its operationId (`"createListing"`), the short, stable name
        clients generated from the document call it by. Renaming one breaks those clients."""
        register = super().route(rule, **options)

        def decorator(view: F) -> F:
            for method, operation_id in (operation_ids or {}).items():
                function = getattr(view, method, None)
                if function is None:
                    raise ValueError(f"{rule} has no {method} method to name {operation_id}")
                apidoc = getattr(function, "_apidoc", {})
                function._apidoc = {  # new dicts: decorators may share the one they wrap
                    **apidoc, "manual_doc": {**apidoc.get("manual_doc", {}),
                                             "operationId": operation_id}}
            return register(view)

        return decorator

    # A body taken as JSON or as a form (RFC 7662 introspection is a form post, and JSON is
    # accepted too): documented as JSON, with the form beside it (see `arguments`).
    DEFAULT_LOCATION_CONTENT_TYPE_MAPPING = {
        **flask_smorest.Blueprint.DEFAULT_LOCATION_CONTENT_TYPE_MAPPING,
        "json_or_form": "application/json"}
    _BODY_LOCATIONS = ("json", "json_or_form")

    def arguments(self, schema: Any, *, location: str = "json", **kwargs: Any) -> Callable[[F], F]:
        """flask-smorest documents the 422 of a body that does not validate; a JSON body can
        also be malformed (400 `malformed_json`) or too large (413 `payload_too_large`). The
        body's example is its schema's, unless the route gives one. A `json_or_form` body is
        documented under both media types."""
        if location in self._BODY_LOCATIONS and not {"example", "examples"} & set(kwargs):
            kwargs["example"] = getattr(schema, "example", None)
        decorator = super().arguments(schema, location=location, **kwargs)
        if location not in self._BODY_LOCATIONS:
            return decorator

        def document_body_errors(func: F) -> F:
            decorated = decorator(func)
            responses = decorated._apidoc["arguments"]["responses"]
            for status in (400, 413):
                responses.setdefault(status, http.HTTPStatus(status).name)
            if location == "json_or_form":
                manual = decorated._apidoc.setdefault("manual_doc", {})
                content = manual.setdefault("requestBody", {}).setdefault("content", {})
                content["application/x-www-form-urlencoded"] = {
                    "schema": schema, "example": kwargs.get("example")}
            return decorated

        return document_body_errors

    @staticmethod
    def _make_pagination_metadata(page: int, page_size: int, item_count: int) -> dict[str, Any]:
        # The contract's X-Pagination always names the page and its size.
        metadata = flask_smorest.Blueprint._make_pagination_metadata(page, page_size, item_count)
        return {**metadata, "page": page, "page_size": page_size}


class PaginationMetadataSchema(flask_smorest.pagination.PaginationMetadataSchema):
    page_size = ma.fields.Int(metadata={"description": "Items per page."})


# X-Pagination carries a JSON object. An OpenAPI 3.0 header described by `schema` alone is
# serialized in the `simple` style (`total,3,page,1`), so a JSON header is described by
# `content` instead.
PAGINATION_HEADER = {
    "description": "Pagination metadata, a JSON object",
    "content": {"application/json": {"schema": PaginationMetadataSchema}},
}


class Converter(OpenAPIConverter):
    """apispec's schema converter, with what typed clients need from the document."""

    def schema2jsonschema(self, schema: Any) -> dict[str, Any]:
        jsonschema = super().schema2jsonschema(schema)
        instance = resolve_schema_instance(schema)
        if isinstance(instance, ResponseSchema):
            dumped = {field.data_key or name: name for name, field in instance.fields.items()
                      if not field.load_only}  # a request schema's load-only fields stay out
            jsonschema["properties"] = {key: value for key, value
                                        in jsonschema["properties"].items() if key in dumped}
            jsonschema["required"] = [key for key, name in dumped.items()
                                      if name not in instance.sometimes_absent]
        return jsonschema

    def enum2properties(self, field: Any, **kwargs: Any) -> dict[str, Any]:
        ret = super().enum2properties(field, **kwargs)
        if "enum" in ret:
            for validator in field.validators:  # OneOf narrows the members (never "pending")
                if isinstance(validator, ma.validate.OneOf):
                    allowed = {getattr(choice, "value", choice) for choice in validator.choices}
                    ret["enum"] = [value for value in ret["enum"]
                                   if value in allowed or value is None]
            if all(isinstance(value, str) for value in ret["enum"] if value is not None):
                ret.setdefault("type", "string")
        return ret

    def field2nullable(self, field: Any, ret: dict[str, Any]) -> dict[str, Any]:
        # apispec writes a nullable nested object as anyOf [{type: object, nullable}, $ref]:
        # generated clients then type it as "the object, or any object", not "or null".
        if field.allow_none and self.openapi_version.minor < 1:
            if "$ref" in ret:
                return {"allOf": [{"$ref": ret.pop("$ref")}], "nullable": True}
            if "allOf" in ret:  # a $ref with siblings (readOnly, description)
                return {"nullable": True}
        return super().field2nullable(field, ret)


class ContractPlugin(MarshmallowPlugin):
    Converter = Converter


# Over an abuse limit (429) or while the database is away (503), when to try again.
RETRY_AFTER = {"description": "Seconds to wait before retrying",
               "schema": {"type": "integer", "minimum": 1}}
RETRY_AFTER_RESPONSES = {
    http.HTTPStatus.TOO_MANY_REQUESTS: (
        "Over an abuse limit: too many failed authentications from this address, or too "
        "many requests of this kind from this client", True),
    http.HTTPStatus.SERVICE_UNAVAILABLE: ("The database is not answering; nothing changed",
                                          False),
}


class Api(flask_smorest.Api):
    ERROR_SCHEMA = ProblemSchema

    def _init_spec(self, *, marshmallow_plugin: Any = None, **kwargs: Any) -> None:
        super()._init_spec(marshmallow_plugin=marshmallow_plugin or ContractPlugin(), **kwargs)

    def handle_http_exception(self, error):
        return http_exception_problem(error)

    def _register_responses(self) -> None:
        """The reusable error responses (NOT_FOUND, CONFLICT..., DEFAULT_ERROR), documented as
        application/problem+json, the media type errors are served with, not the JSON default."""
        for status in http.HTTPStatus:
            response: dict[str, Any] = {"description": status.phrase}
            if not 100 <= status < 200 and status not in (204, 304):
                response["schema"] = self.ERROR_SCHEMA
            if status in RETRY_AFTER_RESPONSES:
                description, always = RETRY_AFTER_RESPONSES[status]
                response["description"] = description
                response["headers"] = {"Retry-After": {**RETRY_AFTER, "required": always}}
            prepare_response(response, self.spec, PROBLEM_MIMETYPE)
            self.spec.components.response(status.name, response, lazy=True)
        response = {"description": "Default error response", "schema": self.ERROR_SCHEMA}
        prepare_response(response, self.spec, PROBLEM_MIMETYPE)
        self.spec.components.response("DEFAULT_ERROR", response, lazy=True)

    def _register_pagination_header(self) -> None:
        self.spec.components.header("PAGINATION", PAGINATION_HEADER, lazy=True)


BEARER_SCHEME = "bearerAuth"

PDF_MIMETYPE = "application/pdf"
# A route that also answers as a printable PDF documents it beside its JSON (`blp.doc`).
PDF_CONTENT = {"content": {PDF_MIMETYPE: {"schema": {"type": "string", "format": "binary"}}}}


def pdf_response(pdf: bytes, name: str) -> Response:
    """A PDF answer, offered as a file named after the document (`TV-42.pdf`)."""
    return Response(pdf, mimetype=PDF_MIMETYPE,
                    headers={"Content-Disposition": f'attachment; filename="{name}.pdf"'})


def negotiate(*offered: str) -> str:
    """The media type of `offered` the request's Accept header prefers, the first when it
    names none; 406 `not_acceptable` when it accepts none of them."""
    accepted = request.accept_mimetypes
    if not accepted:
        return offered[0]
    best = accepted.best_match(offered)
    if best is None:
        raise NotAcceptable(f"This answer is served as {' or '.join(offered)}.")
    return best


def document_errors(func: F, *statuses: int, secured: bool = False) -> F:
    """Add error responses (and the bearer security requirement) to a view's OpenAPI entry.

    Used by decorators such as require_role, so every protected route documents its 401/403
    without repeating it at each route. A route that checks API keys (401) may also refuse an
    address that failed authentication too often (429).
    """
    if 401 in statuses:
        statuses = (*statuses, 429)

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return current_app.ensure_sync(func)(*args, **kwargs)

    apidoc = deepcopy(getattr(wrapper, "_apidoc", {}))
    responses = apidoc.setdefault("response", {}).setdefault("responses", {})
    for status in statuses:
        ref = http.HTTPStatus(status).name
        if ref not in responses.get(status, []):
            responses.setdefault(status, []).append(ref)
    if secured:
        manual = apidoc.setdefault("manual_doc", {})
        manual["security"] = [{BEARER_SCHEME: []}]
    # flask-smorest keeps a view's OpenAPI entry as an attribute of the function.
    wrapper._apidoc = apidoc  # type: ignore[attr-defined]
    return cast(F, wrapper)


def document_success_headers(func: F, headers: Mapping[str, dict[str, Any]]) -> F:
    """Add response headers to the success responses of a view's OpenAPI entry (the view
    is a decorator's own wrapper, whose documentation it may change)."""
    apidoc = deepcopy(getattr(func, "_apidoc", {}))
    responses = apidoc.get("response", {}).get("responses", {})
    for status in apidoc.get("success_status_codes", []):
        for response in responses.get(status, []):
            if isinstance(response, dict):
                response.setdefault("headers", {}).update(headers)
    func._apidoc = apidoc  # type: ignore[attr-defined]
    return func


class SQLPage(Page):
    """Paginate a SQLAlchemy select: one COUNT and one page query, whatever the page size."""

    def __init__(self, collection: Select, page_params: Any) -> None:
        super().__init__(collection, page_params)

    @property
    def items(self) -> list[Any]:
        if self.page_params.first_item > MAX_OFFSET:
            return []
        return self._fetch(self.collection.limit(self.page_params.page_size).offset(
            self.page_params.first_item))

    @staticmethod
    def _fetch(stmt: Select) -> list[Any]:
        from app.extensions import db

        return list(db.session.scalars(stmt))

    @property
    def item_count(self) -> int:
        from app.extensions import db

        count = select(func.count()).select_from(self.collection.order_by(None).subquery())
        return db.session.scalar(count) or 0


class SQLRowPage(SQLPage):
    """Paginate a select of several columns: each item is a row with named attributes."""

    @staticmethod
    def _fetch(stmt: Select) -> list[Any]:
        from app.extensions import db

        return list(db.session.execute(stmt))
