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


def _go(browser, url):
    """GET an absolute URL in `browser` (one cookie jar for every host, as a real browser)."""
    parts = urlsplit(url)
    return browser.get(parts.path + (f"?{parts.query}" if parts.query else ""),
                       base_url=f"{parts.scheme}://{parts.netloc}")


def _handoff_link(browser, slug) -> str:
    """Ask for a switch to `slug` in `browser` and follow the steps up to the hand-off link."""
    response = _switch(browser, slug)
    assert response.status_code == 302, response.status_code
    begin = response.headers["Location"]
    assert urlsplit(begin).path == "/auth/handoff/begin"
    issue = _go(browser, begin)
    assert issue.status_code == 302 and urlsplit(issue.headers["Location"]).path == "/auth/switch/issue"
    link = _go(browser, issue.headers["Location"])
    assert link.status_code == 302, link.get_data(as_text=True)
    return link.headers["Location"]


def _at(browser, tenant, path="/auth/account"):
    return browser.get(path, base_url=f"http://{tenant.slug}.mutualis.test")


def _logged_in_at(browser, tenant) -> bool:
    return _at(browser, tenant).status_code == 200


def _token(app, user_id, target, **kwargs) -> tuple[str, str]:
    """A hand-off token signed by hand, and the browser nonce it is bound to."""
    nonce = "a-browser-nonce"
    with app.test_request_context():
        g.tenant, g.host_kind = None, "console"
        token = services.make_switch_token(fresh_user(user_id), target,
                                           browser=services.browser_digest(nonce), **kwargs)
    return token, nonce


def _browser_with_nonce(client_for, tenant, nonce):
    client = client_for(tenant)
    client.set_cookie("handoff", nonce, domain=f"{tenant.slug}.mutualis.test")
    return client


def test_user_switches_commune_and_both_chains_record_it(tenant_a, tenant_b, make_tenant,
                                                         make_user, client_for):
    other = make_tenant("commune-c", name="Commune C")
    user = make_user(tenant_a, "agent")
    make_user(tenant_b, "elu", email=user.email)
    make_user(other, "agent")  # someone else's commune: not offered
    browser = client_for(tenant_a)
    login(browser, user.email)

    header = browser.get("/").get_data(as_text=True)
    assert "Changer de commune" in header and "Commune B" in header and "Commune C" not in header
    account = browser.get("/auth/account").get_data(as_text=True)
    assert "Passer à Commune B" in account and "commune actuelle" in account

    link = urlsplit(_handoff_link(browser, "commune-b"))
    assert link.hostname == "commune-b.mutualis.test" and link.path == "/auth/handoff"
    landed = _go(browser, link.geturl())
    assert landed.status_code == 302 and location_path(landed) == "/"
    home = _at(browser, tenant_b, "/").get_data(as_text=True)
    assert "Vous êtes connecté à Commune B." in home and '<span class="role">Élu</span>' in home
    assert is_logged_in(browser)  # the first commune's session is untouched

    assert ("auth.switch", user.email, {"direction": "out", "to": "commune-b"}) in audit_entries(tenant_a)
    assert ("auth.switch", user.email, {"result": "success", "method": "switch", "direction": "in",
                                        "from": "commune-a"}) in audit_entries(tenant_b)


def test_switch_link_opened_in_another_browser_logs_nobody_in(tenant_a, tenant_b, make_user,
                                                              client_for):
    """Login CSRF: someone sends their own hand-off link to a victim; it must not log the
    victim's browser into the sender's account."""
    sender = make_user(tenant_a, "agent")
    make_user(tenant_b, "agent", email=sender.email)
    browser = client_for(tenant_a)
    login(browser, sender.email)
    link = _handoff_link(browser, "commune-b")

    victim = client_for(tenant_b)
    response = _go(victim, link)
    assert response.status_code == 400
    assert "navigateur qui l'a demandé" in html.unescape(response.get_data(as_text=True))
    assert not is_logged_in(victim)
    assert ("auth.switch", sender.email, {"direction": "in", "result": "failure",
                                          "reason": "other_browser"}) in audit_entries(tenant_b)
    # A victim who went through the first step on B holds a nonce, but not the sender's.
    _go(victim, "http://commune-b.mutualis.test/auth/handoff/begin?src=commune-a")
    assert _go(victim, link).status_code == 400 and not is_logged_in(victim)

    # The browser that asked still can, within the minute.
    assert location_path(_go(browser, link)) == "/"
    assert _logged_in_at(browser, tenant_b)


def test_the_issuing_step_needs_a_switch_asked_for_in_this_session(tenant_a, tenant_b, make_user,
                                                                   client_for):
    user = make_user(tenant_a, "agent")
    make_user(tenant_b, "agent", email=user.email)
    browser = client_for(tenant_a)
    login(browser, user.email)
    # Someone drives the browser straight to the issuing step with their own digest: refused.
    forced = browser.get("/auth/switch/issue?c=" + "0" * 64)
    assert forced.status_code == 400
    # One request, one link: the issuing step cannot be replayed either.
    _switch(browser, "commune-b")
    begin = _go(browser, "http://commune-b.mutualis.test/auth/handoff/begin?src=commune-a")
    issue = begin.headers["Location"]
    assert _go(browser, issue).status_code == 302
    assert _go(browser, issue).status_code == 400
    # The first step only sends back to a known, active host.
    assert _go(browser, "http://commune-b.mutualis.test/auth/handoff/begin?src=evil").status_code == 400


def test_switch_link_cannot_be_replayed(tenant_a, tenant_b, make_user, client_for):
    user = make_user(tenant_a, "agent")
    make_user(tenant_b, "agent", email=user.email)
    browser = client_for(tenant_a)
    login(browser, user.email)
    link = _handoff_link(browser, "commune-b")
    assert _go(browser, link).status_code == 302
    browser.post("/auth/logout", base_url="http://commune-b.mutualis.test", data={
        "csrf_token": csrf_token(_at(browser, tenant_b, "/").get_data(as_text=True))})
    assert not _logged_in_at(browser, tenant_b)
    response = _go(browser, link)  # its nonce cookie went with the first use
    assert response.status_code == 400
    assert not _logged_in_at(browser, tenant_b)


def test_a_signed_link_replayed_with_its_nonce_is_refused(app, tenant_b, make_user,
                                                                  client_for):
    user = make_user(tenant_b, "agent")
    token, nonce = _token(app, user.id, tenant_b)
    assert _browser_with_nonce(client_for, tenant_b, nonce).get(
        f"/auth/handoff?token={token}").status_code == 302
    replay = _browser_with_nonce(client_for, tenant_b, nonce)
    response = replay.get(f"/auth/handoff?token={token}")
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
    token, nonce = _token(app, user.id, tenant_b)
    client_b = _browser_with_nonce(client_for, tenant_b, nonce)
    response = client_b.get(f"/auth/handoff?token={token}")
    assert response.status_code == 403
    assert "pas accès à cette commune" in html.unescape(response.get_data(as_text=True))
    assert not is_logged_in(client_b)


def test_switch_link_for_one_commune_is_refused_on_another(app, tenant_a, tenant_b, make_tenant,
                                                           make_user, client_for):
    tenant_c = make_tenant("commune-c")
    user = make_user(tenant_b, "agent")
    make_user(tenant_c, "agent", email=user.email)
    token, nonce = _token(app, user.id, tenant_b)
    assert _browser_with_nonce(client_for, tenant_c, nonce).get(
        f"/auth/handoff?token={token}").status_code == 400
    on_b = _browser_with_nonce(client_for, tenant_b, nonce)
    assert on_b.get(f"/auth/handoff?token={token}x").status_code == 400
    assert on_b.get("/auth/handoff").status_code == 400


def test_expired_switch_link_is_refused(app, tenant_b, make_user, client_for, monkeypatch):
    user = make_user(tenant_b, "agent")
    a_minute_ago = time.time() - 61
    with monkeypatch.context() as patch:
        patch.setattr("itsdangerous.timed.time.time", lambda: a_minute_ago)
        token, nonce = _token(app, user.id, tenant_b)
    response = _browser_with_nonce(client_for, tenant_b, nonce).get(f"/auth/handoff?token={token}")
    assert response.status_code == 400 and "expiré" in html.unescape(response.get_data(as_text=True))


def test_switch_link_dies_when_the_password_changes(app, tenant_b, make_user, client_for):
    from saas.extensions import db

    user = make_user(tenant_b, "agent")
    token, nonce = _token(app, user.id, tenant_b)
    row = fresh_user(user.id)
    row.session_version += 1
    db.session.commit()
    assert _browser_with_nonce(client_for, tenant_b, nonce).get(
        f"/auth/handoff?token={token}").status_code == 400


def test_switch_into_an_admin_role_asks_for_the_code_if_not_given_yet(
        tenant_a, tenant_b, make_user, client_for):
    user = make_user(tenant_a, "agent")
    make_user(tenant_b, "admin", email=user.email)
    # Logged in on A (agent) with the password only; the factor is enrolled afterwards.
    browser = client_for(tenant_a)
    login(browser, user.email)
    secret = enrol_totp(user.id)

    response = _go(browser, _handoff_link(browser, "commune-b"))
    assert location_path(response) == "/auth/totp"
    assert not _logged_in_at(browser, tenant_b)
    page = _at(browser, tenant_b, "/auth/totp").get_data(as_text=True)
    done = browser.post("/auth/totp", base_url="http://commune-b.mutualis.test",
                        data={"csrf_token": csrf_token(page), "code": code_for(secret)})
    assert location_path(done) == "/"
    assert _logged_in_at(browser, tenant_b)
    methods = [d.get("method") for a, _actor, d in audit_entries(tenant_b) if a == "auth.switch"]
    assert methods == ["switch+totp"]


def test_switch_after_a_code_does_not_ask_for_it_again(tenant_a, tenant_b, make_user, client_for):
    user = make_user(tenant_a, "admin")
    make_user(tenant_b, "admin", email=user.email)
    secret = enrol_totp(user.id)
    browser = client_for(tenant_a)
    login(browser, user.email)
    submit_code(browser, "/auth/totp", code_for(secret))
    assert location_path(_go(browser, _handoff_link(browser, "commune-b"))) == "/"
    assert _logged_in_at(browser, tenant_b)


def test_platform_admin_switches_from_the_console(tenant_a, make_user, client_for):
    admin = make_user(tenant_a, "admin", platform_admin=True)
    secret = enrol_totp(admin.id)
    console = client_for("admin")
    login(console, admin.email)
    submit_code(console, "/auth/totp", code_for(secret))
    assert location_path(_go(console, _handoff_link(console, "commune-a"))) == "/"
    assert _logged_in_at(console, tenant_a)
    assert ("auth.switch", admin.email, {"direction": "out", "to": "commune-a"}) in audit_entries(None)
