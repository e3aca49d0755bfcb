"""Hostile bytes in the identity forms (NUL, overlong, not UTF-8) get a form error, never a 500."""

from __future__ import annotations

import pytest

from tests.auth.helpers import csrf_token, login, post_form

NUL = "a\x00b@example.org"
HUGE = "x" * 100_000


@pytest.mark.parametrize("email,password", [
    (NUL, "whatever-123"),
    ("agent@example.org", "pass\x00word-123"),
    (HUGE, "whatever-123"),
    ("agent@example.org", HUGE),
])
def test_login_with_hostile_fields_is_a_form_error(tenant_a, client_for, email, password):
    response = login(client_for(tenant_a), email, password)
    assert response.status_code == 200
    assert "Connexion" in response.get_data(as_text=True)


def test_nul_in_the_email_says_what_is_wrong(tenant_a, client_for):
    html = login(client_for(tenant_a), NUL, "whatever-123").get_data(as_text=True)
    assert "caractère non autorisé" in html


def test_login_body_that_is_not_utf8_is_not_a_500(tenant_a, client_for):
    client = client_for(tenant_a)
    token = csrf_token(client.get("/auth/login").get_data(as_text=True))
    body = b"csrf_token=" + token.encode() + b"&email=%ff%fe%00@example.org&password=%c3%28abc"
    response = client.post("/auth/login", data=body,
                           content_type="application/x-www-form-urlencoded")
    assert response.status_code < 500


def test_forgot_form_refuses_a_nul_byte(tenant_a, client_for):
    response = post_form(client_for(tenant_a), "/auth/forgot", {"email": NUL})
    assert response.status_code == 200 and "caractère non autorisé" in response.get_data(as_text=True)


def test_logged_in_forms_refuse_nul_bytes(tenant_a, tenant_b, make_user, client_for):
    user = make_user(tenant_a, "agent")
    client = client_for(tenant_a)
    login(client, user.email)
    changed = post_form(client, "/auth/account/password",
                        {"current": "x\x00y", "password": "Nouveau-\x00-secret-42",
                         "confirm": "Nouveau-\x00-secret-42"}, page="/auth/account")
    assert changed.status_code == 422
    switched = post_form(client, "/auth/switch", {"slug": "commune-b\x00"}, page="/auth/account")
    assert switched.status_code in (400, 404)
    enrol = post_form(client, "/auth/account/totp", {"code": "123\x00456"})
    assert enrol.status_code == 200
