"""The OpenAPI document covers every route, with its errors, and the explorer works offline."""

from __future__ import annotations

import re

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
