"""Switching commune without typing the password again: one-time, short-lived hand-offs."""

from __future__ import annotations

import html
import time
from urllib.parse import urlsplit

from flask import g

from saas.auth import services
from tests.auth.helpers import (
    audit_entries,
    code_for,
    csrf_token,
    enrol_totp,
    fresh_user,
    is_logged_in,
    location_path,
    login,
    submit_code,
)


def _switch(client, slug):
    token = csrf_token(client.get("/auth/account").get_data(as_text=True))
    return client.post("/auth/switch", data={"csrf_token": token, "slug": slug})


def _token(app, user_id, target, **kwargs) -> str:
    with app.test_request_context():
        g.tenant, g.host_kind = None, "console"
        return services.make_switch_token(fresh_user(user_id), target, **kwargs)


def test_user_switches_commune_and_both_chains_record_it(tenant_a, tenant_b, make_tenant,
                                                         make_user, client_for):
    other = make_tenant("commune-c", name="Commune C")
    user = make_user(tenant_a, "agent")
    make_user(tenant_b, "elu", email=user.email)
    make_user(other, "agent")  # someone else's commune: not offered
    client_a = client_for(tenant_a)
    login(client_a, user.email)

    header = client_a.get("/").get_data(as_text=True)
    assert "Changer de commune" in header and "Commune B" in header and "Commune C" not in header
    account = client_a.get("/auth/account").get_data(as_text=True)
    assert "Passer à Commune B" in account and "commune actuelle" in account

    response = _switch(client_a, "commune-b")
    assert response.status_code == 302
    target = urlsplit(response.headers["Location"])
    assert target.hostname == "commune-b.mutualis.test" and target.path == "/auth/handoff"

    client_b = client_for(tenant_b)
    landed = client_b.get(f"{target.path}?{target.query}")
    assert landed.status_code == 302 and location_path(landed) == "/"
    home = client_b.get("/").get_data(as_text=True)
    assert "Vous êtes connecté à Commune B." in home and '<span class="role">Élu</span>' in home
    assert is_logged_in(client_a)  # the first commune's session is untouched

    assert ("auth.switch", user.email, {"direction": "out", "to": "commune-b"}) in audit_entries(tenant_a)
    assert ("auth.switch", user.email, {"result": "success", "method": "switch", "direction": "in",
                                        "from": "commune-a"}) in audit_entries(tenant_b)


def test_switch_link_cannot_be_replayed(tenant_a, tenant_b, make_user, client_for):
    user = make_user(tenant_a, "agent")
    make_user(tenant_b, "agent", email=user.email)
    client_a = client_for(tenant_a)
    login(client_a, user.email)
    target = urlsplit(_switch(client_a, "commune-b").headers["Location"])
    path = f"{target.path}?{target.query}"
    assert client_for(tenant_b).get(path).status_code == 302
    replay = client_for(tenant_b)
    response = replay.get(path)
    assert response.status_code == 400
    assert "a déjà servi" in html.unescape(response.get_data(as_text=True))
    assert not is_logged_in(replay)
    assert ("auth.switch", user.email, {"direction": "in", "result": "failure", "reason": "replayed"}) \
        in audit_entries(tenant_b)


def test_switch_to_a_commune_without_membership_is_refused(app, tenant_a, tenant_b, make_user,
                                                           client_for):
    user = make_user(tenant_a, "agent")
    client_a = client_for(tenant_a)
    login(client_a, user.email)
    assert _switch(client_a, "commune-b").status_code == 404
    assert _switch(client_a, "commune-a").status_code == 404  # already there
    assert _switch(client_a, "does-not-exist").status_code == 404

    # A correctly signed hand-off does not create access either.
    client_b = client_for(tenant_b)
    response = client_b.get(f"/auth/handoff?token={_token(app, user.id, tenant_b)}")
    assert response.status_code == 403
    assert "pas accès à cette commune" in html.unescape(response.get_data(as_text=True))
    assert not is_logged_in(client_b)


def test_switch_link_for_one_commune_is_refused_on_another(app, tenant_a, tenant_b, make_tenant,
                                                           make_user, client_for):
    tenant_c = make_tenant("commune-c")
    user = make_user(tenant_b, "agent")
    make_user(tenant_c, "agent", email=user.email)
    token = _token(app, user.id, tenant_b)
    assert client_for(tenant_c).get(f"/auth/handoff?token={token}").status_code == 400
    assert client_for(tenant_b).get(f"/auth/handoff?token={token}x").status_code == 400
    assert client_for(tenant_b).get("/auth/handoff").status_code == 400


def test_expired_switch_link_is_refused(app, tenant_b, make_user, client_for, monkeypatch):
    user = make_user(tenant_b, "agent")
    a_minute_ago = time.time() - 61
    with monkeypatch.context() as patch:
        patch.setattr("itsdangerous.timed.time.time", lambda: a_minute_ago)
        token = _token(app, user.id, tenant_b)
    response = client_for(tenant_b).get(f"/auth/handoff?token={token}")
    assert response.status_code == 400 and "expiré" in html.unescape(response.get_data(as_text=True))


def test_switch_link_dies_when_the_password_changes(app, tenant_b, make_user, client_for):
    from saas.extensions import db

    user = make_user(tenant_b, "agent")
    token = _token(app, user.id, tenant_b)
    row = fresh_user(user.id)
    row.session_version += 1
    db.session.commit()
    assert client_for(tenant_b).get(f"/auth/handoff?token={token}").status_code == 400


def test_switch_into_an_admin_role_asks_for_the_code_if_not_given_yet(
        tenant_a, tenant_b, make_user, client_for):
    user = make_user(tenant_a, "agent")
    make_user(tenant_b, "admin", email=user.email)
    # Logged in on A (agent) with the password only; the factor is enrolled afterwards.
    client_a = client_for(tenant_a)
    login(client_a, user.email)
    secret = enrol_totp(user.id)

    target = urlsplit(_switch(client_a, "commune-b").headers["Location"])
    client_b = client_for(tenant_b)
    response = client_b.get(f"{target.path}?{target.query}")
    assert location_path(response) == "/auth/totp"
    assert not is_logged_in(client_b)
    done = submit_code(client_b, "/auth/totp", code_for(secret))
    assert location_path(done) == "/"
    assert is_logged_in(client_b)
    methods = [d.get("method") for a, _actor, d in audit_entries(tenant_b) if a == "auth.switch"]
    assert methods == ["switch+totp"]


def test_switch_after_a_code_does_not_ask_for_it_again(tenant_a, tenant_b, make_user, client_for):
    user = make_user(tenant_a, "admin")
    make_user(tenant_b, "admin", email=user.email)
    secret = enrol_totp(user.id)
    client_a = client_for(tenant_a)
    login(client_a, user.email)
    submit_code(client_a, "/auth/totp", code_for(secret))
    target = urlsplit(_switch(client_a, "commune-b").headers["Location"])
    client_b = client_for(tenant_b)
    assert location_path(client_b.get(f"{target.path}?{target.query}")) == "/"
    assert is_logged_in(client_b)


def test_platform_admin_switches_from_the_console(tenant_a, make_user, client_for):
    admin = make_user(tenant_a, "admin", platform_admin=True)
    secret = enrol_totp(admin.id)
    console = client_for("admin")
    login(console, admin.email)
    submit_code(console, "/auth/totp", code_for(secret))
    target = urlsplit(_switch(console, "commune-a").headers["Location"])
    client_a = client_for(tenant_a)
    assert location_path(client_a.get(f"{target.path}?{target.query}")) == "/"
    assert ("auth.switch", admin.email, {"direction": "out", "to": "commune-a"}) in audit_entries(None)
