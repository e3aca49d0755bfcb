"""The API base: bearer auth, hosts, JSON errors, rate limit, pagination, /me, own tokens."""

from __future__ import annotations

import re
import uuid

import pytest
import sqlalchemy as sa
from flask import Blueprint

from saas.api.helpers import paginate
from saas.auth.models import ApiToken, Membership
from saas.errors import AppError
from saas.extensions import db
from saas.tenancy.context import tenant_context
from tests.conftest import BASE_DOMAIN, HostClient

OFFSET = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?[+-]\d\d:\d\d$")


def _error(response) -> dict:
    assert response.mimetype == "application/json", response.data[:200]
    return response.get_json()["error"]


# -- authentication ---------------------------------------------------------------------------


def test_missing_or_malformed_authorization_is_401_json(app, tenant_a, make_token, api_client):
    token, _user = make_token(tenant_a)
    client = api_client(tenant_a)

    missing = client.get("/api/v1/me")
    assert missing.status_code == 401
    assert missing.headers["WWW-Authenticate"] == 'Bearer realm="mutualis"'
    err = _error(missing)
    assert err["code"] == "unauthorized" and "Authorization: Bearer" in err["message"]

    for header, challenge_error in (
        (f"Basic {token}", "invalid_request"),
        ("Bearer", "invalid_request"),
        ("Bearer   ", "invalid_request"),
        ("Bearer mut_tooshort", "invalid_token"),
        ("Bearer " + "mut_" + "A" * 43, "invalid_token"),
    ):
        response = client.get("/api/v1/me", headers={"Authorization": header})
        assert response.status_code == 401, header
        assert f'error="{challenge_error}"' in response.headers["WWW-Authenticate"], header
        assert _error(response)["code"] == "unauthorized"

    # The scheme is case-insensitive (RFC 7235).
    assert client.get("/api/v1/me", headers={"Authorization": f"bearer {token}"}).status_code == 200


def test_api_only_answers_on_commune_hosts(app, tenant_a, make_token, client_for):
    token, _user = make_token(tenant_a)
    auth = {"Authorization": f"Bearer {token}"}
    for host_label in (None, "admin"):
        for path in ("/api/v1/me", "/api/v1/openapi.json"):
            response = client_for(host_label).get(path, headers=auth)
            assert response.status_code == 404, (host_label, path)
            assert _error(response)["code"] == "not_found"
            assert "commune" in _error(response)["message"]
    unknown = client_for("nulle-part").get("/api/v1/me", headers=auth)
    assert unknown.status_code == 404 and _error(unknown)["code"] == "unknown_host"


def test_me_is_exactly_the_contract(app, tenant_a, make_token, api_client):
    token, user = make_token(tenant_a, "elu")
    response = api_client(tenant_a, token).get("/api/v1/me")
    assert response.status_code == 200
    assert response.get_json() == {
        "user": {"id": str(user.id), "email": user.email, "name": user.name},
        "tenant": {"slug": "commune-a", "name": "Commune A", "insee": tenant_a.insee},
        "roles": ["elu"],
    }


def test_shared_person_gets_the_role_of_the_host_commune(app, tenant_a, tenant_b, make_user,
                                                         make_token, api_client):
    person = make_user(tenant_a, "admin", email="secretaire@example.org")
    make_user(tenant_b, "agent", email="secretaire@example.org")
    token_a, _ = make_token(tenant_a, user=person)
    token_b, _ = make_token(tenant_b, user=person)
    me_a = api_client(tenant_a, token_a).get("/api/v1/me").get_json()
    me_b = api_client(tenant_b, token_b).get("/api/v1/me").get_json()
    assert (me_a["tenant"]["slug"], me_a["roles"]) == ("commune-a", ["admin"])
    assert (me_b["tenant"]["slug"], me_b["roles"]) == ("commune-b", ["agent"])
    # Each token only opens its own commune.
    assert api_client(tenant_b, token_a).get("/api/v1/me").status_code == 401


# -- JSON errors ------------------------------------------------------------------------------


def test_routing_errors_are_json(app, tenant_a, make_token, api_client):
    token, _user = make_token(tenant_a)
    client = api_client(tenant_a, token)

    unknown = client.get("/api/v1/nothing-here")
    assert unknown.status_code == 404 and _error(unknown)["code"] == "not_found"

    wrong_method = client.post("/api/v1/me", json={})
    assert wrong_method.status_code == 405
    assert _error(wrong_method)["code"] == "method_not_allowed"
    assert "GET" in wrong_method.headers["Allow"]

    bad_uuid = client.get("/api/v1/tokens/not-a-uuid")
    assert bad_uuid.status_code == 404 and _error(bad_uuid)["code"] == "not_found"


def test_body_errors_415_400_422(app, tenant_a, make_token, api_client):
    token, _user = make_token(tenant_a)
    client = api_client(tenant_a, token)
    with tenant_context(tenant_a):
        token_id = db.session.execute(sa.select(ApiToken.id)).scalar_one()
    url = f"/api/v1/tokens/{token_id}"

    form = client.patch(url, data={"name": "x"})
    assert form.status_code == 415 and _error(form)["code"] == "unsupported_media_type"
    assert "application/json" in _error(form)["message"]

    broken = client.patch(url, data="{not json", content_type="application/json")
    assert broken.status_code == 400 and _error(broken)["code"] == "invalid_json"

    for body, fields in (
        ({"name": ""}, {"name": "ne doit pas être vide"}),
        ({"name": 3}, {"name": "doit être du texte"}),
        ({"name": "x" * 101}, {"name": "doit comporter au plus 100 caractères"}),
        ({"nom": "x"}, {"name": "champ obligatoire", "nom": "champ inconnu"}),
        ([], {"body": "doit être un objet"}),
    ):
        response = client.patch(url, json=body)
        assert response.status_code == 422, body
        err = _error(response)
        assert err["code"] == "validation_error" and err["details"]["fields"] == fields

    ok = client.patch(url, json={"name": "  Nouveau nom  "})
    assert ok.status_code == 200 and ok.get_json()["name"] == "Nouveau nom"


def test_unexpected_exception_is_500_json(app, tenant_a, make_token, api_client, monkeypatch):
    token, _user = make_token(tenant_a)

    def explode():
        raise RuntimeError("database on fire")

    monkeypatch.setitem(app.view_functions, "api.me", explode)
    response = api_client(tenant_a, token).get("/api/v1/me")
    assert response.status_code == 500
    err = _error(response)
    assert err["code"] == "internal_error" and "fire" not in err["message"]


def test_rate_limit_is_per_token(app, tenant_a, make_token, api_client, monkeypatch):
    monkeypatch.setitem(app.config, "API_RATE_LIMIT", "3 per minute")
    token_1, _ = make_token(tenant_a)
    token_2, _ = make_token(tenant_a)
    client_1 = api_client(tenant_a, token_1)
    for _ in range(3):
        assert client_1.get("/api/v1/me").status_code == 200
    # Shared across endpoints: the fourth call is refused whichever endpoint it hits.
    limited = client_1.get("/api/v1/tokens")
    assert limited.status_code == 429
    err = _error(limited)
    assert err["code"] == "too_many_requests" and "jeton" in err["message"]
    assert int(limited.headers["Retry-After"]) > 0
    # Another token of the same commune, from the same address, is not affected.
    assert api_client(tenant_a, token_2).get("/api/v1/me").status_code == 200


# -- pagination -------------------------------------------------------------------------------


def test_pagination_envelope_order_and_validation(app, tenant_a, tenant_b, make_user, make_token,
                                                  api_client):
    person = make_user(tenant_a, "agent", email="multi@example.org")
    make_user(tenant_b, "agent", email="multi@example.org")
    tokens = [make_token(tenant_a, user=person, name=f"jeton {i}")[0] for i in range(5)]
    make_token(tenant_b, user=person, name="ailleurs")  # same person, other commune
    make_token(tenant_a, name="quelqu'un d'autre")  # same commune, other person
    client = api_client(tenant_a, tokens[0])

    first = client.get("/api/v1/tokens?per_page=2").get_json()
    assert (first["total"], first["page"], first["per_page"]) == (5, 1, 2)
    assert [t["name"] for t in first["items"]] == ["jeton 4", "jeton 3"]
    last = client.get("/api/v1/tokens?per_page=2&page=3").get_json()
    assert [t["name"] for t in last["items"]] == ["jeton 0"] and last["items"][0]["current"]
    assert client.get("/api/v1/tokens?per_page=2&page=9").get_json()["items"] == []
    default = client.get("/api/v1/tokens").get_json()
    assert default["per_page"] == 20 and len(default["items"]) == 5
    item = default["items"][0]
    assert OFFSET.match(item["created_at"]) and item["revoked_at"] is None

    for query, field in (("page=0", "page"), ("page=abc", "page"), ("page=-1", "page"),
                         ("per_page=101", "per_page"), ("per_page=0", "per_page"),
                         ("per_page=1.5", "per_page"), ("page=%C2%B2", "page")):
        response = client.get(f"/api/v1/tokens?{query}")
        assert response.status_code == 422, query
        assert field in _error(response)["details"]["fields"], query


def test_paginate_counts_only_the_current_tenant(app, tenant_a, tenant_b, make_user):
    for _ in range(3):
        make_user(tenant_a, "agent")
    make_user(tenant_b, "agent")
    stmt = sa.select(Membership).order_by(Membership.created_at, Membership.id)
    with app.test_request_context("/?per_page=2"):
        with tenant_context(tenant_a):
            page = paginate(stmt, lambda m: str(m.tenant_id))
        assert page["total"] == 3 and page["items"] == [str(tenant_a.id)] * 2
        with tenant_context(tenant_b):
            assert paginate(stmt, lambda m: m.role)["total"] == 1
        assert paginate(stmt, lambda m: m.role)["total"] == 0  # no tenant: nothing


# -- own tokens -------------------------------------------------------------------------------


def test_token_endpoints_only_reach_the_callers_tokens(app, tenant_a, make_user, make_token,
                                                       api_client):
    me = make_user(tenant_a, "agent")
    current, _ = make_token(tenant_a, user=me, name="courant")
    spare, _ = make_token(tenant_a, user=me, name="secours")
    colleague_token, _ = make_token(tenant_a, "admin", name="collègue")
    with tenant_context(tenant_a):
        ids = {t.name: t.id for t in db.session.execute(sa.select(ApiToken)).scalars()}
    client = api_client(tenant_a, current)

    own = client.get(f"/api/v1/tokens/{ids['secours']}")
    assert own.status_code == 200
    assert own.get_json()["name"] == "secours" and own.get_json()["current"] is False
    assert client.get(f"/api/v1/tokens/{ids['courant']}").get_json()["current"] is True
    # A colleague's token, even a commune admin's, answers as if it did not exist.
    for method in ("get", "delete"):
        response = getattr(client, method)(f"/api/v1/tokens/{ids['collègue']}")
        assert response.status_code == 404 and _error(response)["code"] == "not_found"
    assert client.patch(f"/api/v1/tokens/{ids['collègue']}", json={"name": "x"}).status_code == 404
    assert client.get(f"/api/v1/tokens/{uuid.uuid4()}").status_code == 404

    revoked = client.delete(f"/api/v1/tokens/{ids['secours']}")
    assert revoked.status_code == 204 and revoked.data == b""
    assert client.delete(f"/api/v1/tokens/{ids['secours']}").status_code == 204  # idempotent
    assert OFFSET.match(client.get(f"/api/v1/tokens/{ids['secours']}").get_json()["revoked_at"])
    assert api_client(tenant_a, spare).get("/api/v1/me").status_code == 401
    assert api_client(tenant_a, colleague_token).get("/api/v1/me").status_code == 200

    # Revoking the token in use is allowed; it stops working at once.
    assert client.delete(f"/api/v1/tokens/{ids['courant']}").status_code == 204
    assert client.get("/api/v1/me").status_code == 401


def test_rename_and_revoke_are_audited_with_the_api_user(app, tenant_a, make_token, api_client):
    from saas.audit.models import AuditEvent

    token, user = make_token(tenant_a)
    client = api_client(tenant_a, token)
    with tenant_context(tenant_a):
        token_id = db.session.execute(sa.select(ApiToken.id)).scalar_one()
    assert client.patch(f"/api/v1/tokens/{token_id}", json={"name": "renommé"}).status_code == 200
    assert client.delete(f"/api/v1/tokens/{token_id}").status_code == 204
    with tenant_context(tenant_a):
        events = db.session.execute(
            sa.select(AuditEvent).where(AuditEvent.action.in_(["api_token.renamed", "api_token.revoked"]))
            .order_by(AuditEvent.seq)
        ).scalars().all()
        assert [(e.action, e.actor_id, e.actor) for e in events] == [
            ("api_token.renamed", user.id, user.email), ("api_token.revoked", user.id, user.email)]


# -- the registry's decorator on a blueprint of its own ---------------------------------------


@pytest.fixture(scope="module")
def extra_app(app_overrides):
    """A second app with test-only endpoints (the real blueprint is sealed once registered)."""
    from saas import create_app
    from saas.api.registry import ApiRegistry, Operations
    from saas.auth import bearer
    from saas.extensions import csrf

    bp = Blueprint("apitest", __name__, url_prefix="/api/v1/test")
    registry = ApiRegistry(bp)
    operations = Operations()

    @operations.operation("GET", "/admins", summary="Réservé aux administrateurs", roles=("admin",))
    def admins_only():
        return {"ok": True}

    @operations.operation("POST", "/echo", summary="Renvoie le corps", request={
        "type": "object", "required": ["when"], "additionalProperties": False,
        "properties": {
            "when": {"type": "string", "format": "date-time"},
            "kind": {"type": "string", "enum": ["visa", "signature"]},
            "steps": {"type": "array", "minItems": 1, "items": {
                "type": "object", "required": ["assignee"],
                "properties": {"assignee": {"type": "string", "format": "email"}}}},
            "count": {"type": "integer", "minimum": 1, "maximum": 5},
        },
    })
    def echo(body):
        return body

    @operations.operation("GET", "/conflict", summary="Erreur métier", errors={409: "Conflit"})
    def conflict():
        raise AppError(409, "already_sent", "Déjà transmis.")

    registry.add(operations)
    bearer.install(bp, registry)
    extra = create_app(app_overrides)
    extra.register_blueprint(bp)
    csrf.exempt(bp)
    return extra


def _extra_client(extra_app, tenant, token) -> HostClient:
    client = HostClient(extra_app, extra_app.response_class, use_cookies=True)
    client.base_host = f"{tenant.slug}.{BASE_DOMAIN}"
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    return client


def test_roles_are_enforced_per_commune(app, extra_app, tenant_a, tenant_b, make_user, make_token):
    person = make_user(tenant_a, "admin", email="double@example.org")
    make_user(tenant_b, "agent", email="double@example.org")
    token_a, _ = make_token(tenant_a, user=person)
    token_b, _ = make_token(tenant_b, user=person)
    assert _extra_client(extra_app, tenant_a, token_a).get("/api/v1/test/admins").status_code == 200
    refused = _extra_client(extra_app, tenant_b, token_b).get("/api/v1/test/admins")
    assert refused.status_code == 403 and _error(refused)["code"] == "forbidden"
    anonymous = _extra_client(extra_app, tenant_a, "x")
    anonymous.environ_base.pop("HTTP_AUTHORIZATION")
    assert anonymous.get("/api/v1/test/admins").status_code == 401


def test_request_schema_subset(app, extra_app, tenant_a, make_token):
    token, _ = make_token(tenant_a)
    client = _extra_client(extra_app, tenant_a, token)
    good = {"when": "2026-03-01T10:00:00+01:00", "kind": "visa",
            "steps": [{"assignee": "a@b.fr"}], "count": 2}
    assert client.post("/api/v1/test/echo", json=good).get_json() == good
    bad = {"when": "2026-03-01T10:00:00", "kind": "tampon", "steps": [{"assignee": "nobody"}, {}],
           "count": True}
    fields = _error(client.post("/api/v1/test/echo", json=bad))["details"]["fields"]
    assert set(fields) == {"when", "kind", "steps[0].assignee", "steps[1].assignee", "count"}
    assert "fuseau" in fields["when"] and "visa" in fields["kind"]
    assert _error(client.post("/api/v1/test/echo", json={"when": "2026-03-01T10:00:00Z",
                                                          "steps": [], "count": 9})
                  )["details"]["fields"] == {"steps": "doit contenir au moins 1 éléments",
                                             "count": "doit être inférieur ou égal à 5"}
    conflict = client.get("/api/v1/test/conflict")
    assert conflict.status_code == 409 and _error(conflict)["code"] == "already_sent"


def test_unsupported_schema_keywords_fail_at_declaration():
    from saas.api.registry import ApiRegistry, Operations

    operations = Operations()
    with pytest.raises(ValueError, match="oneOf"):
        operations.operation("POST", "/x", summary="x", request={"oneOf": [{"type": "string"}]})
    with pytest.raises(ValueError, match="format"):
        operations.schema("Odd", {"type": "string", "format": "ipv4"})

    @operations.operation("POST", "/x", summary="x", request={"$ref": "#/components/schemas/Nope"})
    def dangling():
        return {}

    with pytest.raises(ValueError, match="unknown schema reference"):
        ApiRegistry(Blueprint("apicheck", __name__)).add(operations)
