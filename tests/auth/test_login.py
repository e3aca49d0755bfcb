"""Password login and logout on a commune's host and on the console."""

from __future__ import annotations

import re

import pytest
from argon2 import PasswordHasher

from saas.auth.passwords import needs_rehash
from saas.extensions import db
from tests.auth.helpers import (
    audit_entries,
    csrf_token,
    fresh_user,
    is_logged_in,
    location_path,
    login,
    stored_password_hash,
    throttle_of,
)
from tests.conftest import PASSWORD

INVALID = "Adresse électronique ou mot de passe incorrect."


def _alert(html: str) -> str:
    match = re.search(r'<div class="alert alert-error" role="alert"><p>(.*?)</p></div>', html, re.S)
    assert match, "no error announced with role=alert"
    return match.group(1)


def test_login_page_has_labelled_fields_and_csrf(tenant_a, client_for):
    html = client_for(tenant_a).get("/auth/login").get_data(as_text=True)
    assert '<label for="email">Adresse électronique</label>' in html
    assert '<label for="password">Mot de passe</label>' in html
    assert 'autocomplete="username"' in html and 'autocomplete="current-password"' in html
    assert csrf_token(html)
    assert "<title>Connexion – Commune A</title>" in html


def test_agent_logs_in_on_commune_and_lands_on_dashboard(tenant_a, make_user, client_for):
    user = make_user(tenant_a, "agent", name="Alice Martin")
    client = client_for(tenant_a)
    response = login(client, user.email)
    assert response.status_code == 302 and location_path(response) == "/"
    home = client.get("/").get_data(as_text=True)
    assert "Bonjour Alice Martin" in home
    assert '<span class="role">Agent</span>' in home
    assert fresh_user(user.id).last_login_at is not None
    assert ("auth.login", user.email, {"result": "success", "method": "password"}) in audit_entries(tenant_a)


def test_email_is_matched_without_regard_to_case(tenant_a, make_user, client_for):
    user = make_user(tenant_a, "agent", email="Claire.Dupont@Example.org")
    response = login(client_for(tenant_a), "  claire.dupont@EXAMPLE.org ")
    assert response.status_code == 302, user


def test_wrong_password_unknown_email_and_other_commune_get_the_same_answer(
        tenant_a, tenant_b, make_user, client_for):
    member = make_user(tenant_a, "agent")
    outsider = make_user(tenant_b, "agent")
    answers = []
    for email, password in [(member.email, "wrong-password-123"),
                            ("nobody@example.org", PASSWORD),
                            (outsider.email, PASSWORD)]:
        client = client_for(tenant_a)
        response = login(client, email, password)
        assert response.status_code == 200
        answers.append(_alert(response.get_data(as_text=True)))
        assert not is_logged_in(client)
    assert answers == [INVALID] * 3

    failures = [(actor, data) for action, actor, data in audit_entries(tenant_a) if action == "auth.login"]
    assert failures == [
        (member.email, {"result": "failure", "reason": "bad_password"}),
        ("anonymous", {"result": "failure", "reason": "unknown_account", "email": "nobody@example.org"}),
        ("anonymous", {"result": "failure", "reason": "no_access", "email": outsider.email}),
    ]
    # Counted alike whether or not the address has an account here, so locks cannot tell.
    for email in (member.email, "nobody@example.org", outsider.email):
        assert throttle_of(email).failures == 1 and throttle_of(email, "*").failures == 1


def test_failed_login_page_is_announced_and_keeps_the_email(tenant_a, make_user, client_for):
    user = make_user(tenant_a, "agent")
    html = login(client_for(tenant_a), user.email, "nope-nope-nope").get_data(as_text=True)
    assert "<title>Erreur\u00a0: Connexion – Commune A</title>" in html
    assert f'value="{user.email}"' in html
    assert 'type="password" value=""' in html


def test_empty_form_marks_fields_invalid(tenant_a, client_for):
    client = client_for(tenant_a)
    token = csrf_token(client.get("/auth/login").get_data(as_text=True))
    html = client.post("/auth/login", data={"csrf_token": token}).get_data(as_text=True)
    assert 'aria-describedby="email-error"' in html and 'aria-invalid="true"' in html
    assert "Saisissez votre adresse électronique." in html
    assert 'role="alert"' in html


def test_login_without_csrf_token_is_refused_with_400(tenant_a, make_user, client_for):
    user = make_user(tenant_a, "agent")
    client = client_for(tenant_a)
    client.get("/auth/login")
    response = client.post("/auth/login", data={"email": user.email, "password": PASSWORD})
    assert response.status_code == 400
    assert "Le formulaire a expiré" in response.get_data(as_text=True)
    assert not is_logged_in(client)


def test_next_parameter_leads_to_the_requested_page(tenant_a, make_user, client_for):
    user = make_user(tenant_a, "agent")
    client = client_for(tenant_a)
    first = client.get("/auth/account")
    assert first.status_code == 302 and location_path(first) == "/auth/login?next=%2Fauth%2Faccount"
    response = login(client, user.email, next_url="/auth/account")
    assert location_path(response) == "/auth/account"


@pytest.mark.parametrize("target", [
    "https://evil.example/", "//evil.example/x", "/\\evil.example", "javascript:alert(1)",
    "http:/evil.example", "/\r\nLocation: http://evil.example", "\t//evil.example",
])
def test_next_parameter_cannot_leave_the_host(tenant_a, make_user, client_for, target):
    user = make_user(tenant_a, "agent")
    response = login(client_for(tenant_a), user.email, next_url=target)
    assert response.status_code == 302
    assert response.headers["Location"] in ("/", "http://commune-a.mutualis.test/")


def test_logout_ends_the_session_and_is_audited(tenant_a, make_user, client_for):
    user = make_user(tenant_a, "agent")
    client = client_for(tenant_a)
    login(client, user.email)
    token = csrf_token(client.get("/").get_data(as_text=True))
    response = client.post("/auth/logout", data={"csrf_token": token})
    assert response.status_code == 302 and location_path(response) == "/auth/login"
    assert "Vous êtes déconnecté." in client.get("/auth/login").get_data(as_text=True)
    assert not is_logged_in(client)
    assert "auth.logout" in [action for action, *_ in audit_entries(tenant_a)]


def test_logout_without_csrf_token_is_refused(tenant_a, make_user, client_for):
    user = make_user(tenant_a, "agent")
    client = client_for(tenant_a)
    login(client, user.email)
    assert client.post("/auth/logout").status_code == 400
    assert is_logged_in(client)


def test_outdated_password_hash_is_upgraded_at_login(app, tenant_a, make_user, client_for):
    user = make_user(tenant_a, "agent")
    old = PasswordHasher(time_cost=2, memory_cost=2048, parallelism=1).hash(PASSWORD)
    row = fresh_user(user.id)
    row.password_hash = old
    db.session.commit()
    assert login(client_for(tenant_a), user.email).status_code == 302
    upgraded = stored_password_hash(user.id)
    assert upgraded != old and not needs_rehash(upgraded)


def test_console_refuses_people_who_are_not_platform_admins(tenant_a, make_user, client_for):
    agent = make_user(tenant_a, "admin")
    response = login(client_for("admin"), agent.email)
    assert response.status_code == 200 and _alert(response.get_data(as_text=True)) == INVALID
    assert ("auth.login", "anonymous",
            {"result": "failure", "reason": "no_access", "email": agent.email}) in audit_entries(None)
    assert all(action != "auth.login" for action, *_ in audit_entries(tenant_a))


def test_portal_has_no_login_page(client_for):
    response = client_for(None).get("/auth/login")
    assert response.status_code == 302 and location_path(response) == "/"


def test_inactive_user_cannot_log_in(tenant_a, make_user, client_for):
    user = make_user(tenant_a, "agent")
    row = fresh_user(user.id)
    row.active = False
    db.session.commit()
    response = login(client_for(tenant_a), user.email)
    assert response.status_code == 200 and _alert(response.get_data(as_text=True)) == INVALID
