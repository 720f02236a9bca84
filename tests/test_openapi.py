"""The OpenAPI document covers every route, with its errors, and the explorer works offline."""

from __future__ import annotations

import re
from typing import Any

import jsonschema_rs

from app.parties.credit_code import is_valid_credit_code
from app.parties.models import Role
from tests.factories import make_member
from tests.orders.factories import listed_product, order_body
from tests.support import ok

# Routes that serve the documentation itself rather than the API.
DOCUMENTATION_ENDPOINTS = {"api-docs.openapi_json", "api-docs.openapi_swagger_ui",
                           "swagger_ui_assets"}


def _openapi_path(rule: str) -> str:
    return re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule)


def test_every_route_and_method_in_the_url_map_is_in_the_document(app, client):
    spec = client.get("/openapi.json").json
    missing = []
    for rule in app.url_map.iter_rules():
        if rule.endpoint in DOCUMENTATION_ENDPOINTS:
            continue
        documented = spec["paths"].get(_openapi_path(rule.rule), {})
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            if method.lower() not in documented:
                missing.append(f"{method} {rule.rule}")
    assert missing == []


def test_every_operation_documents_its_error_responses(client):
    spec = client.get("/openapi.json").json
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            if method == "parameters":
                continue
            codes = set(operation["responses"])
            assert "default" in codes or any(code.startswith(("4", "5")) for code in codes), (
                f"{method.upper()} {path} documents no error")
            if operation.get("security"):
                assert {"401", "403"} <= codes, f"{method.upper()} {path} lacks 401/403"


def test_error_responses_are_documented_as_problem_details(client):
    spec = client.get("/openapi.json").json
    problem = spec["components"]["schemas"]["Problem"]
    assert {"type", "title", "status", "detail", "code", "errors"} <= set(problem["properties"])
    assert spec["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"


def test_docs_page_loads_swagger_ui_from_the_service_itself(client):
    page = client.get("/docs")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert assets, "the page references no assets"
    for asset in assets:
        assert asset.startswith("/docs/assets/"), f"{asset} is not served locally"
        response = client.get(asset)
        assert response.status_code == 200
        assert len(response.data) > 1000


def test_errors_are_documented_with_the_media_type_they_are_served_with(client):
    spec = client.get("/openapi.json").json
    for name, response in spec["components"]["responses"].items():
        assert set(response.get("content", {"application/problem+json": {}})) == {
            "application/problem+json"}, name
    problem = spec["components"]["schemas"]["Problem"]
    assert problem.get("additionalProperties", True) is not False  # RFC 9457 extension members


def test_json_bodies_document_malformed_and_oversized_requests(client):
    spec = client.get("/openapi.json").json
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            if method == "parameters":
                continue
            content = operation.get("requestBody", {}).get("content", {})
            if "application/json" in content:
                assert {"400", "413"} <= set(operation["responses"]), f"{method} {path}"


def test_the_pagination_header_is_documented_as_json(client):
    spec = client.get("/openapi.json").json
    header = spec["components"]["headers"]["PAGINATION"]
    assert "schema" not in header
    schema = header["content"]["application/json"]["schema"]
    fields = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]["properties"]
    assert {"total", "total_pages", "page", "page_size"} <= set(fields)


def _operations(spec: dict) -> list[tuple[str, str, dict]]:
    return [(method.upper(), path, operation) for path, operations in spec["paths"].items()
            for method, operation in operations.items() if method != "parameters"]


def test_every_operation_has_a_short_unique_operation_id(client):
    spec = client.get("/openapi.json").json
    ids = {f"{method} {path}": operation.get("operationId")
           for method, path, operation in _operations(spec)}
    assert [name for name, operation_id in ids.items() if not operation_id] == []
    assert [i for i in ids.values() if not re.fullmatch(r"[a-z][A-Za-z]{2,40}", i)] == []
    repeated = {i for i in ids.values() if list(ids.values()).count(i) > 1}
    assert repeated == set()


def test_operation_ids_integrators_rely_on_are_stable(client):
    spec = client.get("/openapi.json").json
    ids = {(method, path): operation["operationId"]
           for method, path, operation in _operations(spec)}
    assert {ids[("POST", "/api/v1/parties")], ids[("POST", "/api/v1/listings")],
            ids[("POST", "/api/v1/listings/{listing_id}/submit")],
            ids[("POST", "/api/v1/orders")], ids[("GET", "/api/v1/orders")],
            ids[("GET", "/api/v1/orders/{order_id}")],
            ids[("POST", "/api/v1/orders/{order_id}/payments/confirm")],
            ids[("POST", "/api/v1/listings/{listing_id}/suspend")]} == {
        "registerParty", "createListing", "submitListing", "placeOrder", "listOrders",
        "getOrder", "confirmPayment", "suspendListing"}


def _component(spec: dict, ref: dict) -> tuple[str, dict]:
    name = ref["$ref"].rsplit("/", 1)[1]
    return name, spec["components"]["schemas"][name]


def _json_schema(spec: dict, node: Any) -> Any:
    """An OpenAPI 3.0 schema as plain JSON Schema: references inlined, `nullable` as null."""
    if isinstance(node, list):
        return [_json_schema(spec, item) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        return _json_schema(spec, _component(spec, node)[1])
    converted = {key: _json_schema(spec, value) for key, value in node.items()
                 if key not in ("nullable", "readOnly", "example")}
    if node.get("nullable"):
        return {"anyOf": [converted, {"type": "null"}]}
    return converted


def _response_errors(spec: dict, method: str, path: str, status: int, body: Any) -> list[str]:
    response = spec["paths"][path][method]["responses"][str(status)]
    schema = _json_schema(spec, response["content"]["application/json"]["schema"])
    return [f"{error.instance_path}: {error.message}"
            for error in jsonschema_rs.Draft7Validator(schema).iter_errors(body)]


def _response_components(spec: dict) -> set[str]:
    """The schemas that 2xx responses answer with, nested ones included, less those that
    request bodies also use (their optional fields are optional on the way in)."""
    def reachable(roots: list[Any]) -> set[str]:
        seen: set[str] = set()
        stack = list(roots)
        while stack:
            node = stack.pop()
            if isinstance(node, dict):
                if "$ref" in node and node["$ref"].startswith("#/components/schemas/"):
                    name, schema = _component(spec, node)
                    if name not in seen:
                        seen.add(name)
                        stack.append(schema)
                stack.extend(node.values())
            elif isinstance(node, list):
                stack.extend(node)
        return seen

    operations = [operation for _, _, operation in _operations(spec)]
    answered = reachable([response for operation in operations
                          for status, response in operation["responses"].items()
                          if status.startswith("2")])
    sent = reachable([operation.get("requestBody", {}) for operation in operations])
    return answered - sent


# Fields some answers leave out, each for a reason its schema states.
SOMETIMES_ABSENT = {
    "PaymentInfo": {"client_secret", "instructions"},
    "BlacklistedParty": {"blacklist_id", "event_id", "party_kind", "publicity_min_until"},
    "CreditEvent": {"party_id"},
    # RFC 7662: an inactive token is {"active": false} alone.
    "Introspection": {"token_type", "scope", "exp", "iat", "sub", "license_id", "buyer_id",
                      "listing_id", "calls_remaining"},
}


def test_response_schemas_require_the_fields_every_answer_has(client):
    spec = client.get("/openapi.json").json
    names = _response_components(spec)
    assert {"Order", "Listing", "ListingDetail", "Demand", "Payout", "CreditFile"} <= names
    optional = {}
    for name in names:
        schema = spec["components"]["schemas"][name]
        left_out = set(schema.get("properties", {})) - set(schema.get("required", []))
        if left_out != SOMETIMES_ABSENT.get(name, set()):
            optional[name] = left_out
    assert optional == {}


def test_every_documented_property_has_a_type(client):
    spec = client.get("/openapi.json").json
    untyped = [f"{name}.{field}"
               for name, schema in spec["components"]["schemas"].items()
               for field, prop in schema.get("properties", {}).items()
               if not {"type", "$ref", "allOf", "anyOf", "oneOf", "enum"} & set(prop)]
    assert untyped == []


def test_computed_fields_are_typed_as_what_they_hold(client):
    schemas = client.get("/openapi.json").json["components"]["schemas"]
    payment = schemas["Order"]["properties"]["payment"]
    assert payment["allOf"] == [{"$ref": "#/components/schemas/PaymentInfo"}]
    assert not payment.get("nullable")
    order = schemas["Demand"]["properties"]["order"]
    assert order["allOf"] == [{"$ref": "#/components/schemas/Order"}] and order["nullable"]
    assert schemas["GuidePrice"]["properties"]["in_force"]["type"] == "boolean"
    assert schemas["PayoutBatch"]["properties"]["file_available"]["type"] == "boolean"
    assert set(schemas["Allocation"]["properties"]["role"]["enum"]) == {
        "platform", "collector", "processor", "holder", "broker", "public_authority"}
    for name in ("Order", "Match", "FittingDemand", "PriceGuidance", "Run", "Balance", "Payout",
                 "Listing", "Demand", "GuidePrice"):
        currency = schemas[name]["properties"]["currency"]
        assert (currency["type"], currency["enum"]) == ("string", ["CNY"]), name
    assert schemas["Order"]["properties"]["status"]["type"] == "string"
    assert schemas["ObjectionDecision"]["properties"]["decision"]["enum"] == [
        "upheld", "revoked", "corrected"]


def test_a_nullable_nested_object_is_that_object_or_null(client):
    schemas = client.get("/openapi.json").json["components"]["schemas"]
    for name, field, target in (("CreditFile", "blacklisting", "Blacklisting"),
                                ("Listing", "admission", "AdmissionResult")):
        prop = schemas[name]["properties"][field]
        assert prop["allOf"] == [{"$ref": f"#/components/schemas/{target}"}], prop
        assert prop["nullable"] is True and "anyOf" not in prop


def test_a_sold_out_listing_conforms_to_its_documented_schema(client):
    spec = client.get("/openapi.json").json
    merchant, buyer = make_member(Role.MERCHANT), make_member(Role.BUYER)
    listing = listed_product(client, merchant, licenses_available=1)
    ok(client.post("/api/v1/orders", json=order_body(listing), headers=buyer.headers), 201)

    detail = ok(client.get(f"/api/v1/listings/{listing['id']}", headers=buyer.headers))
    assert detail["licenses_available"] == 0
    assert _response_errors(spec, "get", "/api/v1/listings/{listing_id}", 200, detail) == []
    found = ok(client.get("/api/v1/listings", headers=merchant.headers))
    assert _response_errors(spec, "get", "/api/v1/listings", 200, found) == []
    assert spec["components"]["schemas"]["ListingBody"]["properties"][
        "licenses_available"]["minimum"] == 1  # a merchant still offers at least one


def _credit_codes(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [code for key, item in value.items()
                for code in ([item] if key == "credit_code" else _credit_codes(item))]
    if isinstance(value, list):
        return [code for item in value for code in _credit_codes(item)]
    return []


def test_every_request_body_has_an_example_that_fits_its_schema(client):
    spec = client.get("/openapi.json").json
    missing, unfit = [], {}
    for method, path, operation in _operations(spec):
        content = operation.get("requestBody", {}).get("content", {}).get("application/json")
        if content is None:
            continue
        if "example" not in content:
            missing.append(f"{method} {path}")
            continue
        schema = _json_schema(spec, content["schema"])
        errors = [error.message for error in
                  jsonschema_rs.Draft7Validator(schema).iter_errors(content["example"])]
        if errors:
            unfit[f"{method} {path}"] = errors
    assert (missing, unfit) == ([], {})


def test_examples_speak_chinese_and_english_with_valid_credit_codes(client):
    spec = client.get("/openapi.json").json
    examples = [operation["requestBody"]["content"]["application/json"]["example"]
                for _, _, operation in _operations(spec)
                if "application/json" in operation.get("requestBody", {}).get("content", {})]
    text = repr(examples)
    assert re.search(r"[\u4e00-\u9fff]", text) and re.search(r"[A-Za-z]{4,} [a-z]{3,}", text)
    codes = _credit_codes(examples)
    assert codes and all(is_valid_credit_code(code) for code in codes), codes


def test_every_operation_has_a_one_line_summary(client):
    spec = client.get("/openapi.json").json
    bad = {f"{method} {path}": operation.get("summary")
           for method, path, operation in _operations(spec)
           if not operation.get("summary") or "\n" in operation["summary"]
           or len(operation["summary"]) > 100}
    assert bad == {}


def test_listing_routes_are_tagged_as_listings_whichever_domain_serves_them(client):
    spec = client.get("/openapi.json").json
    tags = {f"{method} {path}": operation["tags"] for method, path, operation in _operations(spec)
            if path.startswith("/api/v1/listings")}
    assert "GET /api/v1/listings/{listing_id}/price-guidance" in tags
    assert {name: tag for name, tag in tags.items() if tag != ["listings"]} == {}


def test_listing_answers_document_their_etag_and_edits_if_match(client):
    spec = client.get("/openapi.json").json
    listing_paths = spec["paths"]["/api/v1/listings/{listing_id}"]
    etag = listing_paths["get"]["responses"]["200"]["headers"]["ETag"]
    assert etag["required"] is True
    [if_match] = [parameter for parameter in listing_paths["patch"]["parameters"]
                  if parameter["in"] == "header"]
    assert if_match["name"] == "If-Match" and "412" in listing_paths["patch"]["responses"]
    for path, method in (("/api/v1/listings", "post"),
                         ("/api/v1/listings/{listing_id}/submit", "post"),
                         ("/api/v1/listings/{listing_id}/suspend", "post")):
        success = next(r for s, r in spec["paths"][path][method]["responses"].items()
                       if s.startswith("2"))
        assert "ETag" in success["headers"], path

    merchant = make_member(Role.MERCHANT)
    listing = listed_product(client, merchant)
    answer = client.get(f"/api/v1/listings/{listing['id']}", headers=merchant.headers)
    assert re.fullmatch(etag["schema"]["pattern"], answer.headers["ETag"])
    assert re.fullmatch(if_match["schema"]["pattern"], answer.headers["ETag"])


def test_idempotent_operations_document_the_key_and_the_replay_mark(client):
    spec = client.get("/openapi.json").json
    keyed = [(method, path, operation) for method, path, operation in _operations(spec)
             if any(p["name"] == "Idempotency-Key" for p in operation.get("parameters", []))]
    assert {"placeOrder", "confirmPayment", "postDemand", "runSettlement"} <= {
        operation["operationId"] for _, _, operation in keyed}
    for method, path, operation in keyed:
        for status, response in operation["responses"].items():
            if status.startswith("2"):
                assert "Idempotent-Replayed" in response.get("headers", {}), (method, path)

    merchant, buyer = make_member(Role.MERCHANT), make_member(Role.BUYER)
    listing = listed_product(client, merchant)
    headers = {**buyer.headers, "Idempotency-Key": "order-2026-0612-001"}
    client.post("/api/v1/orders", json=order_body(listing), headers=headers)
    replay = client.post("/api/v1/orders", json=order_body(listing), headers=headers)
    assert replay.status_code == 201 and replay.headers["Idempotent-Replayed"] == "true"


def test_operations_that_check_keys_document_429_with_retry_after(client):
    spec = client.get("/openapi.json").json
    lacking = [f"{method} {path}" for method, path, operation in _operations(spec)
               if "401" in operation["responses"] and "429" not in operation["responses"]]
    assert lacking == []
    for name in ("POST /api/v1/parties", "POST /api/v1/orders", "POST /api/v1/demands"):
        method, path = name.split(" ")
        assert "429" in spec["paths"][path][method.lower()]["responses"], name
    too_many = spec["components"]["responses"]["TOO_MANY_REQUESTS"]
    assert too_many["headers"]["Retry-After"]["required"] is True
    assert "Retry-After" in spec["components"]["responses"]["SERVICE_UNAVAILABLE"]["headers"]
