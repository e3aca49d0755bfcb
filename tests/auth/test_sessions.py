"""Session cookies: flags, bound to one host, dead after logout, bounded lifetime."""

from __future__ import annotations

import time

from saas.config import load_settings
from tests.auth.helpers import csrf_token, is_logged_in, login


def _session_cookie_header(response) -> str:
    headers = [h for h in response.headers.getlist("Set-Cookie") if h.startswith("session=")]
    assert headers, "no session cookie set"
    return headers[-1]


def test_session_cookie_is_httponly_samesite_lax_and_host_only(tenant_a, make_user, client_for):
    user = make_user(tenant_a, "agent")
    header = _session_cookie_header(login(client_for(tenant_a), user.email))
    assert "HttpOnly" in header and "SameSite=Lax" in header
    assert "Domain=" not in header  # host-only: one login per commune
    assert "Secure" not in header  # plain http in tests


def test_session_cookie_is_secure_when_configured(app, tenant_a, make_user, client_for, monkeypatch):
    assert load_settings({"COOKIE_SECURE": "1", "SECRET_KEY": "x"}).flask_config()["SESSION_COOKIE_SECURE"]
    production = load_settings({"ENV": "production", "SECRET_KEY": "x",
                                "AUDIT_KEY": "k1:" + "a" * 32}).flask_config()
    assert production["SESSION_COOKIE_SECURE"] and production["REMEMBER_COOKIE_SECURE"]
    assert not load_settings({"SECRET_KEY": "x"}).flask_config()["SESSION_COOKIE_SECURE"]

    assert production["SESSION_COOKIE_NAME"] == "__Host-session"
    assert production["REMEMBER_COOKIE_NAME"] == "__Host-remember"

    for key in ("SESSION_COOKIE_SECURE", "SESSION_COOKIE_NAME"):
        monkeypatch.setitem(app.config, key, production[key])
    user = make_user(tenant_a, "agent")
    client = client_for(tenant_a)
    client.base_scheme = "https"
    # Over HTTPS, Flask-WTF also wants a same-origin Referer, as a browser sends it.
    client.environ_base["HTTP_REFERER"] = f"https://{tenant_a.slug}.mutualis.test/auth/login"
    assert login(client, user.email).status_code == 302
    header = client.get_cookie("__Host-session", domain=f"{tenant_a.slug}.mutualis.test")
    assert header is not None and header.secure and header.http_only and header.path == "/"
    assert not header.domain or header.domain == f"{tenant_a.slug}.mutualis.test"


def test_https_answers_carry_hsts_for_every_commune_sub_domain(tenant_a, client_for):
    response = client_for(tenant_a).get("/auth/login", base_url="https://commune-a.mutualis.test")
    assert response.headers["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains"


def test_a_session_never_outlives_the_key_rotation_window():
    from saas.auth.sessions import ABSOLUTE_LIFETIME
    from saas.config import load_settings

    window = load_settings({"SECRET_KEY": "x"}).flask_config()["PERMANENT_SESSION_LIFETIME"]
    assert ABSOLUTE_LIFETIME.total_seconds() <= window == 8 * 3600


def test_cookie_of_commune_a_replayed_on_commune_b_is_not_a_login(
        tenant_a, tenant_b, make_user, client_for):
    user = make_user(tenant_a, "agent")
    make_user(tenant_b, "agent", email=user.email)  # a member of both: only the scope protects
    client_a = client_for(tenant_a)
    login(client_a, user.email)
    assert is_logged_in(client_a)
    cookie = client_a.get_cookie("session", domain="commune-a.mutualis.test")
    client_b = client_for(tenant_b)
    client_b.set_cookie("session", cookie.value, domain="commune-b.mutualis.test")
    response = client_b.get("/")
    assert response.status_code == 302 and "/auth/login" in response.headers["Location"]
    console = client_for("admin")
    console.set_cookie("session", cookie.value, domain="admin.mutualis.test")
    assert not is_logged_in(console)


def test_copied_cookie_is_dead_after_logout(tenant_a, make_user, client_for):
    user = make_user(tenant_a, "agent")
    client = client_for(tenant_a)
    login(client, user.email)
    stolen = client.get_cookie("session", domain="commune-a.mutualis.test").value
    client.post("/auth/logout", data={"csrf_token": csrf_token(client.get("/").get_data(as_text=True))})
    thief = client_for(tenant_a)
    thief.set_cookie("session", stolen, domain="commune-a.mutualis.test")
    assert not is_logged_in(thief)


def test_login_gives_a_new_session_cookie(tenant_a, make_user, client_for):
    # Anything planted in the session before authentication is dropped (fixation).
    user = make_user(tenant_a, "agent")
    client = client_for(tenant_a)
    with client.session_transaction() as sess:
        sess["planted"] = "by-an-attacker"
    login(client, user.email)
    with client.session_transaction() as sess:
        assert "planted" not in sess and sess["scope"] == str(tenant_a.id)


def test_session_ends_after_its_absolute_lifetime(tenant_a, make_user, client_for):
    user = make_user(tenant_a, "agent")
    client = client_for(tenant_a)
    login(client, user.email)
    with client.session_transaction() as sess:
        sess["login_at"] = int(time.time()) - 13 * 3600
    assert not is_logged_in(client)
