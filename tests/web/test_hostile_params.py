"""Every page answers hostile query parameters with less than a 500: unreadable numbers ("²", a
20-digit page, thousands of digits), very long strings, NUL bytes, on every GET route of a
commune's host (a logged-in administrator, real objects in the path) and of the console."""

from __future__ import annotations

import re
import uuid

import pytest

from tests.auth.helpers import code_for, enrol_totp, login, submit_code
from tests.ged.conftest import make_pdf, upload

HOSTILE = ["²", "99999999999999999999", "1" * 5000, "-1", "0", "x" * 20_000, "a\x00b", "%00",
           "٣", "1e9", " 1", "9999-99-99"]
PARAMS = ("page", "per_page", "version", "q", "type", "tag", "classification", "date_from",
          "date_to", "state", "queue", "tenant", "next", "token", "auto", "inline", "disposition")
_ARG = re.compile(r"<(?:(\w+)(?:\([^)]*\))?:)?(\w+)>")


@pytest.fixture
def api(client_for, make_token):
    def make(tenant, role: str = "agent"):
        token, user = make_token(tenant, role)
        client = client_for(tenant)
        client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {token}"
        client.user = user
        return client

    return make


def _get_rules(app, prefixes_out=("/api/", "/static/")):
    for rule in app.url_map.iter_rules():
        if "GET" in rule.methods and not rule.rule.startswith(prefixes_out):
            yield rule


def _path(rule, values: dict[str, str]) -> str:
    def fill(match):
        converter, name = match.group(1), match.group(2)
        if name in values:
            return values[name]
        return str(uuid.uuid4()) if converter == "uuid" else "x"

    return _ARG.sub(fill, rule.rule)


def _admin_web(tenant, make_user, client_for):
    user = make_user(tenant, "admin")
    secret = enrol_totp(user.id)
    client = client_for(tenant)
    login(client, user.email)
    submit_code(client, "/auth/totp", code_for(secret))
    return client


def _console(make_user, client_for):
    admin = make_user(None, platform_admin=True)
    secret = enrol_totp(admin.id)
    client = client_for("admin")
    login(client, admin.email)
    submit_code(client, "/auth/totp", code_for(secret))
    return client


def _sweep(app, client, values) -> tuple[list[str], int]:
    problems, sent = [], 0
    for rule in _get_rules(app):
        path = _path(rule, values)
        for value in HOSTILE:
            for query in ({name: value for name in PARAMS}, {"page": value}, {"version": value}):
                response = client.get(path, query_string=query)
                sent += 1
                if response.status_code >= 500:
                    problems.append(f"{rule.endpoint} {path} {value[:20]!r}: {response.status_code}")
                    break
    return problems, sent


@pytest.mark.slow
def test_no_page_answers_500_to_hostile_parameters(app, tenant_a, api, make_user, client_for):
    doc = upload(api(tenant_a, "admin"), make_pdf(), "a.pdf").get_json()
    v2 = upload(api(tenant_a, "admin"), make_pdf("v2"), "a.pdf",
                path=f"/api/v1/documents/{doc['id']}/versions")
    assert v2.status_code == 201
    values = {"document_id": doc["id"]}
    problems, sent = _sweep(app, _admin_web(tenant_a, make_user, client_for), values)
    console_problems, console_sent = _sweep(app, _console(make_user, client_for), values)
    assert problems + console_problems == []
    assert sent > 300 and console_sent > 300


def test_unreadable_page_and_version_on_the_ged_pages(app, tenant_a, api, make_user, client_for):
    doc = upload(api(tenant_a, "admin"), make_pdf(), "a.pdf").get_json()
    client = _admin_web(tenant_a, make_user, client_for)
    for value in ("²", "99999999999999999999", "1" * 5000):
        assert client.get("/ged/", query_string={"page": value}).status_code == 200
        assert client.get("/ged/corbeille", query_string={"page": value}).status_code == 200
        content = client.get(f"/ged/documents/{doc['id']}/contenu", query_string={"version": value})
        assert content.status_code == 200  # the current version
