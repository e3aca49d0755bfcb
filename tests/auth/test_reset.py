"""Password reset by e-mail: no enumeration, single-use timed links, sessions closed after."""

from __future__ import annotations

import html
import re
import time
from urllib.parse import urlsplit

from saas.extensions import db
from saas.modelbase import utcnow
from tests.auth.helpers import (
    audit_entries,
    csrf_token,
    fresh_user,
    is_logged_in,
    location_path,
    login,
    post_form,
)
from tests.support.smtp import body_of

NEW_PASSWORD = "Un-tout-nouveau-secret-42"
SENT = "Si un compte correspond à cette adresse"


def _ask_reset(client, email):
    return post_form(client, "/auth/forgot", {"email": email})


def _link_in_mail(smtp_server, email) -> str:
    body = body_of(smtp_server.last_to(email))
    match = re.search(r"(https?://\S+/auth/reset/\S+)", body)
    assert match, body
    return match.group(1)


def _set_password(client, path, password=NEW_PASSWORD, confirm=None):
    return post_form(client, path, {"password": password, "confirm": confirm or password})


def test_forgot_form_answers_the_same_whether_or_not_the_account_exists(
        tenant_a, tenant_b, make_user, client_for, smtp_server):
    member = make_user(tenant_a, "agent")
    outsider = make_user(tenant_b, "agent")
    pages = []
    for email in (member.email, "nobody@example.org", outsider.email):
        response = _ask_reset(client_for(tenant_a), email)
        assert response.status_code == 200
        page = response.get_data(as_text=True)
        pages.append(page[page.index("<main"):page.index("</main>")])
    assert pages[0] == pages[1] == pages[2] and SENT in pages[0]
    assert [m["To"] for m in smtp_server.messages] == [member.email]


def test_reset_link_sets_a_new_password_and_closes_every_session(
        tenant_a, make_user, client_for, smtp_server):
    user = make_user(tenant_a, "agent", name="Bruno Petit")
    elsewhere = client_for(tenant_a)
    login(elsewhere, user.email)
    assert is_logged_in(elsewhere)

    _ask_reset(client_for(tenant_a), user.email)
    message = smtp_server.last_to(user.email)
    assert "Commune A" in message["Subject"]
    link = _link_in_mail(smtp_server, user.email)
    parts = urlsplit(link)
    assert parts.hostname == "commune-a.mutualis.test"

    client = client_for(tenant_a)
    page = client.get(parts.path)
    assert page.status_code == 200 and user.email in page.get_data(as_text=True)
    response = _set_password(client, parts.path)
    assert location_path(response) == "/auth/login"

    assert not is_logged_in(elsewhere)  # session_version bumped
    assert login(client_for(tenant_a), user.email).status_code == 200  # old password refused
    assert login(client_for(tenant_a), user.email, NEW_PASSWORD).status_code == 302
    actions = [a for a, *_ in audit_entries(tenant_a)]
    assert "auth.password_reset.request" in actions and "auth.password_reset" in actions


def test_reset_link_works_only_once(tenant_a, make_user, client_for, smtp_server):
    user = make_user(tenant_a, "agent")
    _ask_reset(client_for(tenant_a), user.email)
    path = urlsplit(_link_in_mail(smtp_server, user.email)).path
    client = client_for(tenant_a)
    assert _set_password(client, path).status_code == 302
    again = client_for(tenant_a).get(path)
    assert again.status_code == 400 and "Ce lien a déjà servi" in again.get_data(as_text=True)
    assert client_for(tenant_a).post(path, data={
        "csrf_token": csrf_token(client.get("/auth/login").get_data(as_text=True)),
        "password": "Encore-un-autre-mot-7", "confirm": "Encore-un-autre-mot-7"}).status_code == 400
    assert login(client_for(tenant_a), user.email, NEW_PASSWORD).status_code == 302


def test_forged_link_is_refused(tenant_a, make_user, client_for, smtp_server):
    user = make_user(tenant_a, "agent")
    _ask_reset(client_for(tenant_a), user.email)
    path = urlsplit(_link_in_mail(smtp_server, user.email)).path
    forged = path[:-3] + ("AAA" if not path.endswith("AAA") else "BBB")
    for candidate in (forged, "/auth/reset/not-a-token"):
        response = client_for(tenant_a).get(candidate)
        assert response.status_code == 400
        assert "Ce lien n'est pas valide" in html.unescape(response.get_data(as_text=True))


def test_expired_link_is_refused(app, tenant_a, make_user, client_for, monkeypatch):
    from saas.auth import services

    user = make_user(tenant_a, "agent")
    two_hours_ago = time.time() - 7200
    with app.test_request_context(base_url="http://commune-a.mutualis.test"):
        from flask import g

        g.tenant, g.host_kind = tenant_a, "tenant"
        with monkeypatch.context() as patch:
            patch.setattr("itsdangerous.timed.time.time", lambda: two_hours_ago)
            token = services.make_reset_token(fresh_user(user.id))
    response = client_for(tenant_a).get(f"/auth/reset/{token}")
    assert response.status_code == 400 and "Ce lien a expiré" in response.get_data(as_text=True)


def test_link_of_one_commune_does_not_work_on_another(tenant_a, tenant_b, make_user, client_for,
                                                      smtp_server):
    user = make_user(tenant_a, "agent")
    make_user(tenant_b, "agent", email=user.email)
    _ask_reset(client_for(tenant_a), user.email)
    path = urlsplit(_link_in_mail(smtp_server, user.email)).path
    assert client_for(tenant_b).get(path).status_code == 400


def test_weak_or_mismatched_new_password_is_refused_with_the_reason(
        tenant_a, make_user, client_for, smtp_server):
    user = make_user(tenant_a, "agent")
    _ask_reset(client_for(tenant_a), user.email)
    path = urlsplit(_link_in_mail(smtp_server, user.email)).path
    client = client_for(tenant_a)
    short = _set_password(client, path, "court")
    assert short.status_code == 200
    assert "au moins 12 caractères" in short.get_data(as_text=True)
    mismatch = _set_password(client, path, NEW_PASSWORD, "Autre-chose-encore-1")
    assert "ne sont pas identiques" in mismatch.get_data(as_text=True)
    assert login(client_for(tenant_a), user.email).status_code == 302  # unchanged


def test_reset_clears_the_lockout(tenant_a, make_user, client_for, smtp_server):
    user = make_user(tenant_a, "agent")
    row = fresh_user(user.id)
    row.failed_logins, row.locked_until = 5, utcnow().replace(year=utcnow().year + 1)
    db.session.commit()
    _ask_reset(client_for(tenant_a), user.email)
    path = urlsplit(_link_in_mail(smtp_server, user.email)).path
    _set_password(client_for(tenant_a), path)
    row = fresh_user(user.id)
    assert row.failed_logins == 0 and row.locked_until is None
    assert login(client_for(tenant_a), user.email, NEW_PASSWORD).status_code == 302


def test_forgot_form_is_throttled_per_address(tenant_a, client_for, smtp_server):
    client = client_for(tenant_a)
    token = csrf_token(client.get("/auth/forgot").get_data(as_text=True))
    statuses = [client.post("/auth/forgot", data={"csrf_token": token,
                                                  "email": f"p{i}@example.org"}).status_code
                for i in range(6)]
    assert statuses == [200] * 5 + [429]
