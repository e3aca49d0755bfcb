"""Second factor: forced enrolment, verification, replay refusal, optional use, encryption."""

from __future__ import annotations

import time
from urllib.parse import unquote

import pyotp
import pytest

from saas.auth import totp
from saas.extensions import db
from tests.auth.helpers import (
    audit_entries,
    code_for,
    csrf_token,
    enrol_totp,
    fresh_user,
    is_logged_in,
    location_path,
    login,
    post_form,
    secret_from,
    stored_totp_secret,
    submit_code,
    throttle_of,
)

WRONG = "Code incorrect ou déjà utilisé."


def _wrong_code(secret: str) -> str:
    valid = {code_for(secret, k) for k in (-1, 0, 1)}
    return next(c for c in ("000000", "111111", "222222", "333333") if c not in valid)


def test_codes_match_within_one_step_either_side():
    secret = totp.new_secret()
    now = time.time()
    step = int(now // 30)
    generator = pyotp.TOTP(secret)
    for offset in (-1, 0, 1):
        assert totp.matching_step(secret, generator.at((step + offset) * 30), now) == step + offset
    for offset in (-3, -2, 2, 3):
        assert totp.matching_step(secret, generator.at((step + offset) * 30), now) is None
    assert totp.matching_step(secret, "12345", now) is None
    assert totp.matching_step(secret, "abcdef", now) is None


def test_secret_is_encrypted_with_a_key_derived_from_secret_key(app, monkeypatch):
    secret = totp.new_secret()
    stored = totp.encrypt_secret(secret)
    assert secret not in stored and totp.decrypt_secret(stored) == secret
    monkeypatch.setitem(app.config, "SECRET_KEY", "another-key")
    with pytest.raises(totp.SecretUnreadable):
        totp.decrypt_secret(stored)


def test_admin_must_enrol_before_being_logged_in(tenant_a, make_user, client_for):
    admin = make_user(tenant_a, "admin")
    client = client_for(tenant_a)
    response = login(client, admin.email, next_url="/auth/account")
    assert location_path(response) == "/auth/totp/enrol"
    assert not is_logged_in(client)  # password alone is not a login

    page = client.get("/auth/totp/enrol").get_data(as_text=True)
    secret = secret_from(page)
    assert 'src="data:image/svg+xml;charset=utf-8,' in page
    assert "otpauth://totp/" in unquote(page) and f"secret={secret}" in page
    assert "issuer=Mutualis (mutualis.test)" in unquote(page)
    assert secret_from(client.get("/auth/totp/enrol").get_data(as_text=True)) == secret  # stable

    wrong = submit_code(client, "/auth/totp/enrol", _wrong_code(secret))
    assert wrong.status_code == 200 and WRONG in wrong.get_data(as_text=True)
    assert stored_totp_secret(admin.id) is None

    ok = submit_code(client, "/auth/totp/enrol", code_for(secret))
    # The recovery codes are shown once, then the person goes on to where she was going.
    assert ok.status_code == 200 and 'href="/auth/account"' in ok.get_data(as_text=True)
    assert ok.get_data(as_text=True).count("<li><code>") == 10
    assert is_logged_in(client)
    row = fresh_user(admin.id)
    stored = stored_totp_secret(row.id)
    assert row.totp_enabled and secret not in stored
    assert totp.decrypt_secret(stored) == secret
    actions = [(a, d) for a, _actor, d in audit_entries(tenant_a)]
    assert ("auth.totp.enable", {"recovery_codes": 10}) in actions
    assert ("auth.login", {"result": "success", "method": "password+totp_enrolment"}) in actions


def test_enrolled_user_gives_a_code_and_a_used_code_is_refused(tenant_a, make_user, client_for):
    user = make_user(tenant_a, "agent")
    secret = enrol_totp(user.id)
    client = client_for(tenant_a)
    assert location_path(login(client, user.email)) == "/auth/totp"
    assert not is_logged_in(client)

    bad = submit_code(client, "/auth/totp", _wrong_code(secret))
    assert bad.status_code == 200 and WRONG in bad.get_data(as_text=True)
    code = code_for(secret)
    assert location_path(submit_code(client, "/auth/totp", code)) == "/"
    assert is_logged_in(client)

    # The same code, seen by someone looking over the shoulder, does not open a second session.
    other = client_for(tenant_a)
    login(other, user.email)
    replay = submit_code(other, "/auth/totp", code)
    assert replay.status_code == 200 and WRONG in replay.get_data(as_text=True)
    assert not is_logged_in(other)
    # An older code either is refused too; the next one works.
    assert WRONG in submit_code(other, "/auth/totp", code_for(secret, -1)).get_data(as_text=True)
    assert submit_code(other, "/auth/totp", code_for(secret, 1)).status_code == 302


def test_wrong_codes_count_toward_the_lockout(tenant_a, make_user, client_for):
    user = make_user(tenant_a, "agent")
    secret = enrol_totp(user.id)
    client = client_for(tenant_a)
    login(client, user.email)
    for _ in range(4):
        submit_code(client, "/auth/totp", _wrong_code(secret))
    locked = submit_code(client, "/auth/totp", _wrong_code(secret))
    assert location_path(locked) == "/auth/login"
    assert "Compte temporairement verrouillé" in client.get("/auth/login").get_data(as_text=True)
    assert throttle_of(user.email).locked_until is not None
    # The pending state is gone: the right code no longer helps.
    assert location_path(client.get("/auth/totp")) == "/auth/login"


def test_code_page_without_a_pending_password_sends_back_to_login(tenant_a, client_for):
    response = client_for(tenant_a).get("/auth/totp")
    assert response.status_code == 302 and location_path(response) == "/auth/login"


def test_pending_second_factor_is_bound_to_its_commune(tenant_a, tenant_b, make_user, client_for):
    user = make_user(tenant_a, "agent")
    make_user(tenant_b, "agent", email=user.email)
    enrol_totp(user.id)
    client_a = client_for(tenant_a)
    login(client_a, user.email)
    cookie = client_a.get_cookie("session", domain="commune-a.mutualis.test")
    client_b = client_for(tenant_b)
    client_b.set_cookie("session", cookie.value, domain="commune-b.mutualis.test")
    assert location_path(client_b.get("/auth/totp")) == "/auth/login"


def test_agent_enables_then_disables_the_second_factor(tenant_a, make_user, client_for):
    user = make_user(tenant_a, "agent")
    client = client_for(tenant_a)
    login(client, user.email)
    account = client.get("/auth/account").get_data(as_text=True)
    assert "Activer la double authentification" in account

    secret = secret_from(client.get("/auth/account/totp").get_data(as_text=True))
    assert WRONG in submit_code(client, "/auth/account/totp", _wrong_code(secret)).get_data(as_text=True)
    enabled = submit_code(client, "/auth/account/totp", code_for(secret))
    assert enabled.status_code == 200 and 'href="/auth/account"' in enabled.get_data(as_text=True)
    assert fresh_user(user.id).totp_enabled

    refused = post_form(client, "/auth/account/totp/disable", {"code": _wrong_code(secret)},
                        page="/auth/account")
    assert refused.status_code == 200 and "Code incorrect" in refused.get_data(as_text=True)
    assert fresh_user(user.id).totp_enabled

    done = post_form(client, "/auth/account/totp/disable", {"code": code_for(secret, 1)},
                     page="/auth/account")
    assert location_path(done) == "/auth/account"
    assert not fresh_user(user.id).totp_enabled
    assert [a for a, *_ in audit_entries(tenant_a) if a.startswith("auth.totp")] == [
        "auth.totp.enable", "auth.totp.disable"]


def test_admin_cannot_disable_a_mandatory_second_factor(tenant_a, tenant_b, make_user, client_for):
    # Agent here, but admin in another commune: the factor stays.
    user = make_user(tenant_a, "agent")
    make_user(tenant_b, "admin", email=user.email)
    secret = enrol_totp(user.id)
    client = client_for(tenant_a)
    login(client, user.email)
    submit_code(client, "/auth/totp", code_for(secret))
    account = client.get("/auth/account").get_data(as_text=True)
    assert "obligatoire pour votre rôle" in account and "account/totp/disable" not in account
    response = client.post("/auth/account/totp/disable", data={
        "csrf_token": csrf_token(account), "code": code_for(secret, 1)})
    assert "obligatoire" in response.get_data(as_text=True)
    assert fresh_user(user.id).totp_enabled


def test_platform_admin_enrols_on_the_console(make_user, client_for):
    admin = make_user(None, platform_admin=True)
    client = client_for("admin")
    assert location_path(login(client, admin.email)) == "/auth/totp/enrol"
    secret = secret_from(client.get("/auth/totp/enrol").get_data(as_text=True))
    enrolled = submit_code(client, "/auth/totp/enrol", code_for(secret))
    assert enrolled.status_code == 200 and 'href="/"' in enrolled.get_data(as_text=True)
    assert "Collectivités hébergées" in client.get("/").get_data(as_text=True)
    actions = [a for a, *_ in audit_entries(None)]
    assert "auth.totp.enable" in actions and "auth.login" in actions


def test_unreadable_secret_refuses_the_code_without_crashing(app, tenant_a, make_user, client_for):
    user = make_user(tenant_a, "agent")
    secret = enrol_totp(user.id)
    row = fresh_user(user.id)
    row.totp_secret_enc = "not-a-fernet-token"
    db.session.commit()
    client = client_for(tenant_a)
    login(client, user.email)
    response = submit_code(client, "/auth/totp", code_for(secret))
    assert response.status_code == 200 and WRONG in response.get_data(as_text=True)
