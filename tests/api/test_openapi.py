"""GET /api/v1/openapi.json describes exactly the API that exists, and describes it truly."""

from __future__ import annotations

import copy
import re

import pytest
from jsonschema import Draft202012Validator, FormatChecker

PREFIX = "/api/v1"
_ARG = re.compile(r"<(?:[^:<>]+:)?([^<>]+)>")
_IGNORED_METHODS = {"HEAD", "OPTIONS"}  # added by Flask to every rule


def _document(api_client, tenant) -> dict:
    response = api_client(tenant).get("/api/v1/openapi.json")  # public: no token
    assert response.status_code == 200
    return response.get_json()


def _url_map_operations(app) -> set[tuple[str, str]]:
    ops = set()
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith(PREFIX + "/"):
            continue
        path = _ARG.sub(lambda m: "{" + m[1] + "}", rule.rule[len(PREFIX):])
        for method in rule.methods - _IGNORED_METHODS:
            ops.add((method.lower(), path))
    return ops


def test_every_route_is_documented_and_nothing_else(app, tenant_a, api_client):
    doc = _document(api_client, tenant_a)
    documented = {(method, path) for path, item in doc["paths"].items() for method in item}
    routed = _url_map_operations(app)
    assert routed, "no /api/v1 route found"
    assert routed - documented == set(), "routes missing from openapi.json (declare them with api.operation)"
    assert documented - routed == set(), "openapi.json documents routes that do not exist"
    assert doc["servers"] == [{"url": "http://commune-a.mutualis.test/api/v1"}]


def test_document_is_valid_openapi_3_1(app, tenant_a, api_client):
    validator = pytest.importorskip("openapi_spec_validator")
    doc = _document(api_client, tenant_a)
    assert doc["openapi"].startswith("3.1")
    validator.validate(doc)  # raises on any violation of the OpenAPI 3.1 meta-schema


def test_security_and_error_schema(app, tenant_a, api_client):
    doc = _document(api_client, tenant_a)
    assert doc["components"]["securitySchemes"]["bearer"] == {
        **doc["components"]["securitySchemes"]["bearer"], "type": "http", "scheme": "bearer"}
    assert doc["security"] == [{"bearer": []}]
    error = doc["components"]["schemas"]["Error"]
    assert error["properties"]["error"]["required"] == ["code", "message"]
    for path, item in doc["paths"].items():
        for method, op in item.items():
            public = op.get("security") == []
            assert ("401" in op["responses"]) is not public, (method, path)
            assert {"404", "429", "500"} <= set(op["responses"]), (method, path)
            declared = {p["name"] for p in op.get("parameters", []) if p["in"] == "path"}
            assert declared == set(re.findall(r"{(\w+)}", path)), (method, path)
    public_ops = {(m, p) for p, item in doc["paths"].items() for m, op in item.items()
                  if op.get("security") == []}
    declared_public = {(op.method.lower(), op.openapi_path()) for op in app.extensions["saas_api"].operations if op.public}
    assert public_ops == declared_public
    assert ("get", "/openapi.json") in public_ops and ("get", "/me") not in public_ops


def _inline(schema, components: dict, depth: int = 0):
    """Resolve local $refs so jsonschema can check responses without a registry."""
    if depth > 20:
        raise AssertionError("recursive schema")
    if isinstance(schema, dict):
        if "$ref" in schema:
            return _inline(components[schema["$ref"].rsplit("/", 1)[-1]], components, depth + 1)
        return {k: _inline(v, components, depth + 1) for k, v in schema.items()}
    if isinstance(schema, list):
        return [_inline(v, components, depth + 1) for v in schema]
    return schema


def _check(doc: dict, path: str, method: str, status: str, body) -> None:
    response = doc["paths"][path][method]["responses"][status]
    if "$ref" in response:
        response = doc["components"]["responses"][response["$ref"].rsplit("/", 1)[-1]]
    schema = _inline(copy.deepcopy(response["content"]["application/json"]["schema"]),
                     doc["components"]["schemas"])
    Draft202012Validator(schema, format_checker=FormatChecker()).validate(body)


def test_real_answers_match_the_documented_schemas(app, tenant_a, make_token, api_client):
    doc = _document(api_client, tenant_a)
    token, _user = make_token(tenant_a, "admin")
    client = api_client(tenant_a, token)
    _check(doc, "/me", "get", "200", client.get("/api/v1/me").get_json())
    listing = client.get("/api/v1/tokens").get_json()
    _check(doc, "/tokens", "get", "200", listing)
    token_id = listing["items"][0]["id"]
    _check(doc, "/tokens/{token_id}", "get", "200", client.get(f"/api/v1/tokens/{token_id}").get_json())
    _check(doc, "/tokens/{token_id}", "patch", "422",
           client.patch(f"/api/v1/tokens/{token_id}", json={}).get_json())
    _check(doc, "/me", "get", "401", api_client(tenant_a).get("/api/v1/me").get_json())
    # And the schemas are not vacuous: a wrong shape is rejected.
    with pytest.raises(Exception, match="required"):
        _check(doc, "/me", "get", "200", {"user": {}, "tenant": {}, "roles": []})


def test_registry_and_url_map_agree_on_endpoints(app):
    for op in app.extensions["saas_api"].operations:
        rules = [r for r in app.url_map.iter_rules() if r.endpoint == op.endpoint]
        assert len(rules) == 1, op.endpoint
        assert op.method in rules[0].methods
        assert rules[0].rule == PREFIX + op.rule
