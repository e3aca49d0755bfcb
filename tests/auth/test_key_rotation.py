"""Rotating SAAS_SECRET_KEY: former keys in SAAS_SECRET_KEY_FALLBACKS keep sessions, links and
second factors working; `saas keys reencrypt` moves TOTP secrets to the new key."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from click.testing import CliRunner
from flask.cli import ScriptInfo

from saas import create_app
from saas.config import load_settings
from saas.extensions import db
from saas.jobs import run_pending
from tests.auth.helpers import (
    code_for,
    enrol_totp,
    fresh_user,
    is_logged_in,
    location_path,
    login,
    post_form,
    stored_totp_secret,
    submit_code,
)
from tests.support.smtp import body_of

OLD = "test-secret-key-not-for-production"  # the key of the `app` fixture
NEW = "a-brand-new-secret-key-for-the-platform"


def _rotated(app_overrides, fallbacks: str = OLD):
    return create_app({**app_overrides, "SECRET_KEY": NEW, "SECRET_KEY_FALLBACKS": fallbacks})


def _on(client, app):
    """The same browser (cookie jar) talking to another deployment of the platform."""
    client.application = app
    return client


def _under_former_key(app, user_id) -> bool:
    from saas.auth import totp

    with app.app_context():
        return totp.under_former_key(stored_totp_secret(user_id))


def _reencrypt(app):
    from saas.cli import main

    # with_appcontext reuses a pushed context: push this deployment's own.
    with app.app_context():
        return CliRunner().invoke(main, ["keys", "reencrypt"],
                                  obj=ScriptInfo(create_app=lambda: app), catch_exceptions=False)


def test_fallbacks_are_read_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("SAAS_SECRET_KEY", "current")
    monkeypatch.setenv("SAAS_SECRET_KEY_FALLBACKS", " ancienne , , current,plus-ancienne ")
    settings = load_settings({"INSTANCE_PATH": str(tmp_path)})
    assert settings.secret_key_fallbacks == ("ancienne", "plus-ancienne")
    assert settings.flask_config()["SECRET_KEY_FALLBACKS"] == ["ancienne", "plus-ancienne"]


def test_rotation_keeps_sessions_links_and_second_factors(app, app_overrides, tenant_a, make_user,
                                                          client_for, smtp_server):
    admin = make_user(tenant_a, "admin")
    secret = enrol_totp(admin.id)
    browser = client_for(tenant_a)
    login(browser, admin.email)
    assert location_path(submit_code(browser, "/auth/totp", code_for(secret))) == "/"
    idle = client_for(tenant_a)  # logged in before the rotation, and not seen since
    assert login(idle, make_user(tenant_a, "agent").email).status_code == 302
    post_form(client_for(tenant_a), "/auth/forgot", {"email": admin.email})
    run_pending()
    link = re.search(r"https?://\S+/auth/reset/\S+", body_of(smtp_server.last_to(admin.email)))
    reset_path = urlsplit(link.group(0)).path

    rotated = _rotated(app_overrides)
    assert is_logged_in(_on(browser, rotated))  # the cookie signed with the old key still works
    assert _on(client_for(tenant_a), rotated).get(reset_path).status_code == 200
    other = _on(client_for(tenant_a), rotated)
    login(other, admin.email)
    assert _under_former_key(rotated, admin.id)
    assert location_path(submit_code(other, "/auth/totp", code_for(secret, 1))) == "/"
    assert not _under_former_key(rotated, admin.id)  # moved to the new key at its first use

    # Once the old key is dropped, the second factor still opens the door.
    only_new = _rotated(app_overrides, fallbacks="")
    row = fresh_user(admin.id)
    row.totp_last_step = None  # time passes: the next code is a fresh one
    db.session.commit()
    third = _on(client_for(tenant_a), only_new)
    login(third, admin.email)
    assert location_path(submit_code(third, "/auth/totp", code_for(secret))) == "/"
    # A session used during the rotation was re-signed with the new key; one idle since dies
    # with the old key.
    assert is_logged_in(_on(browser, only_new))
    assert not is_logged_in(_on(idle, only_new))


def test_reencrypt_moves_every_secret_and_reports_unreadable_ones(app, app_overrides, tenant_a,
                                                                   make_user, client_for):
    from saas.auth import totp

    users = [make_user(tenant_a, "admin") for _ in range(2)]
    secrets = [enrol_totp(user.id) for user in users]
    lost = make_user(tenant_a, "agent")
    with create_app({**app_overrides, "SECRET_KEY": "a-key-nobody-remembers"}).app_context():
        row = fresh_user(lost.id)
        row.totp_secret_enc = totp.encrypt_secret(totp.new_secret())
        db.session.commit()

    rotated = _rotated(app_overrides)
    result = _reencrypt(rotated)
    assert result.exit_code == 1
    assert "2 secret(s) re-chiffré(s), 0 déjà sous la clé actuelle, 1 illisible(s)" in result.output
    assert lost.email in result.output
    assert all(not _under_former_key(rotated, user.id) for user in users)
    again = _reencrypt(rotated)
    assert "0 secret(s) re-chiffré(s), 2 déjà sous la clé actuelle" in again.output

    only_new = _rotated(app_overrides, fallbacks="")
    client = _on(client_for(tenant_a), only_new)
    login(client, users[1].email)
    assert location_path(submit_code(client, "/auth/totp", code_for(secrets[1]))) == "/"
