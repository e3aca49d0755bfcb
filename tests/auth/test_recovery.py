"""Second-factor recovery codes: ten shown once at enrolment, each usable once instead of a
one-time code (atomically, audited, mailed), regenerated from the account page, out of the
application role's reach; and `saas users reset-2fa` for the IT staff."""

from __future__ import annotations

import contextvars
import html
import re
import threading
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy.exc import DBAPIError

import saas
from saas.auth import recovery
from saas.extensions import db
from saas.jobs import run_pending
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
    submit_code,
)
from tests.support.postgres import create_test_database, drop_test_database
from tests.support.smtp import body_of

_CODE = re.compile(r"<li><code>([a-z2-9]{4}-[a-z2-9]{4}-[a-z2-9]{4}-[a-z2-9]{4})</code></li>")


def _enrol_at_login(client, user) -> list[str]:
    """Log in an admin without a second factor: forced enrolment, then the codes page."""
    login(client, user.email)
    page = client.get("/auth/totp/enrol").get_data(as_text=True)
    secret = secret_from(page)
    response = client.post("/auth/totp/enrol", data={"csrf_token": csrf_token(page),
                                                     "code": code_for(secret)})
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    return _CODE.findall(response.get_data(as_text=True))


def _with_codes(user) -> list[str]:
    enrol_totp(user.id)
    codes = recovery.replace_codes(fresh_user(user.id))
    db.session.commit()
    return codes


def _recover(client, user, code):
    login(client, user.email)
    return post_form(client, "/auth/totp/recovery", {"code": code})


def test_enrolment_shows_ten_codes_once(tenant_a, make_user, client_for):
    admin = make_user(tenant_a, "admin")
    client = client_for(tenant_a)
    codes = _enrol_at_login(client, admin)
    assert len(codes) == 10 == len(set(codes))
    assert is_logged_in(client)
    assert recovery.codes_left(fresh_user(admin.id)) == 10
    # Only the response of the enrolment shows them.
    assert not _CODE.findall(client.get("/auth/account").get_data(as_text=True))
    assert "10 code(s) de secours" in html.unescape(client.get("/auth/account").get_data(as_text=True))


def test_a_recovery_code_logs_in_once_audited_and_mailed(tenant_a, make_user, client_for,
                                                         smtp_server):
    admin = make_user(tenant_a, "admin", name="Alice Perdue")
    codes = _with_codes(admin)
    client = client_for(tenant_a)
    response = _recover(client, admin, codes[3].upper().replace("-", " "))
    assert location_path(response) == "/"
    assert is_logged_in(client)
    assert recovery.codes_left(fresh_user(admin.id)) == 9
    entries = audit_entries(tenant_a)
    assert ("auth.recovery_code.used", admin.email, {"left": 9}) in entries
    assert any(a == "auth.login" and d.get("method") == "password+recovery_code"
               for a, _actor, d in entries)
    run_pending()
    body = body_of(smtp_server.last_to(admin.email))
    assert "codes de secours" in body.lower() and "9 code(s)" in body

    # The same code again is refused, and counts as a failed login.
    again = _recover(client_for(tenant_a), admin, codes[3])
    assert again.status_code == 422
    assert "déjà utilisé" in html.unescape(again.get_data(as_text=True))
    assert ("auth.login", admin.email, {"result": "failure", "reason": "bad_recovery_code"}) \
        in audit_entries(tenant_a)


def test_an_unknown_or_malformed_code_is_refused(tenant_a, make_user, client_for):
    admin = make_user(tenant_a, "admin")
    _with_codes(admin)
    for code in ("abcd-efgh-jkmn-pqrs", "123456", "x" * 40, ""):
        client = client_for(tenant_a)
        response = _recover(client, admin, code)
        assert response.status_code == 422, code
        assert not is_logged_in(client)
    assert recovery.codes_left(fresh_user(admin.id)) == 10


def test_another_accounts_code_does_not_work(tenant_a, make_user, client_for):
    alice, bruno = make_user(tenant_a, "admin"), make_user(tenant_a, "admin")
    codes = _with_codes(alice)
    _with_codes(bruno)
    assert _recover(client_for(tenant_a), bruno, codes[0]).status_code == 422


def test_one_code_used_twice_at_once_logs_in_only_once(app, tenant_a, make_user):
    admin = make_user(tenant_a, "admin")
    code = _with_codes(admin)[0]
    uid = admin.id
    barrier = threading.Barrier(2)
    results: list = []

    def use():
        def run():
            with app.app_context():
                from saas.auth.models import User

                user = db.session.get(User, uid)
                barrier.wait()
                results.append(recovery.use_code(user, code))
                db.session.commit()
                db.session.remove()
        contextvars.Context().run(run)

    threads = [threading.Thread(target=use) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(results, key=lambda r: (r is None, r)) == [9, None]


def test_regenerating_replaces_every_code(tenant_a, make_user, client_for):
    admin = make_user(tenant_a, "admin")
    client = client_for(tenant_a)
    old = _enrol_at_login(client, admin)
    page = client.get("/auth/account").get_data(as_text=True)
    response = client.post("/auth/account/recovery-codes", data={"csrf_token": csrf_token(page)})
    new = _CODE.findall(response.get_data(as_text=True))
    assert len(new) == 10 and not set(new) & set(old)
    assert recovery.use_code(fresh_user(admin.id), old[0]) is None
    assert recovery.use_code(fresh_user(admin.id), new[0]) == 9
    db.session.rollback()
    assert "auth.recovery_codes.regenerated" in [a for a, _u, _d in audit_entries(tenant_a)]
    assert client.post("/auth/account/recovery-codes", data={}).status_code == 400


@pytest.mark.parametrize("sql", [
    "SELECT * FROM auth_recovery_codes",
    "DELETE FROM auth_recovery_codes",
    "INSERT INTO auth_recovery_codes (user_id, digest) VALUES (gen_random_uuid(), 'x')",
])
def test_the_app_role_has_no_right_on_the_codes(app, make_user, tenant_a, sql):
    _with_codes(make_user(tenant_a, "admin"))
    with pytest.raises(DBAPIError) as caught:
        db.session.execute(sa.text(sql))
    db.session.rollback()
    assert "permission denied" in str(caught.value.orig)


def test_disabling_the_second_factor_removes_the_codes(tenant_a, make_user, client_for):
    agent = make_user(tenant_a, "agent")
    codes = _with_codes(agent)
    secret = enrol_totp(agent.id)  # a known secret (codes kept: same account)
    client = client_for(tenant_a)
    login(client, agent.email)
    submit_code(client, "/auth/totp", code_for(secret))
    post_form(client, "/auth/account/totp/disable", {"code": code_for(secret, 1)},
              page="/auth/account")
    assert not fresh_user(agent.id).totp_enabled
    assert recovery.codes_left(fresh_user(agent.id)) == 0
    assert recovery.use_code(fresh_user(agent.id), codes[0]) is None
    db.session.rollback()


# --- saas users reset-2fa ---------------------------------------------------------------


def test_cli_reset_2fa_clears_the_factor_and_the_codes(cli, tenant_a, make_user, client_for):
    admin = make_user(tenant_a, "admin")
    _with_codes(admin)
    session = client_for(tenant_a)
    secret = enrol_totp(admin.id)
    login(session, admin.email)
    submit_code(session, "/auth/totp", code_for(secret))
    assert is_logged_in(session)
    result = cli("users", "reset-2fa", "--email", admin.email.upper(), "--tenant", tenant_a.slug)
    assert result.exit_code == 0, result.output
    assert "réinitialisée" in result.output
    user = fresh_user(admin.id)
    assert not user.totp_enabled and recovery.codes_left(user) == 0
    assert not is_logged_in(session)
    assert ("auth.totp.reset", "cli", {}) in audit_entries(tenant_a)
    assert ("auth.totp.reset", "cli", {"tenant": tenant_a.slug}) in audit_entries(None)
    # She enrols again at her next login.
    client = client_for(tenant_a)
    assert location_path(login(client, admin.email)) == "/auth/totp/enrol"


def test_cli_reset_2fa_refusals(cli, tenant_a, tenant_b, make_user):
    outsider = make_user(tenant_b, "agent")
    enrol_totp(outsider.id)
    result = cli("users", "reset-2fa", "--email", "nobody@example.org")
    assert result.exit_code == 1 and "Aucun compte" in result.output
    result = cli("users", "reset-2fa", "--email", outsider.email, "--tenant", tenant_a.slug)
    assert result.exit_code == 1 and "n'est pas membre" in result.output
    assert fresh_user(outsider.id).totp_enabled
    plain = make_user(tenant_a, "agent")
    result = cli("users", "reset-2fa", "--email", plain.email)
    assert result.exit_code == 0 and "rien à faire" in result.output
    help_text = cli("users", "reset-2fa", "--help").output
    assert "Réinitialiser la double authentification" in help_text


# --- migration 0010 ---------------------------------------------------------------------


def _alembic(conn) -> Config:
    root = Path(saas.__file__).parent / "migrations"
    cfg = Config(str(root / "alembic.ini"))
    cfg.set_main_option("script_location", str(root))
    cfg.attributes["connection"] = conn
    return cfg


def test_migration_0010_upgrades_and_downgrades_on_postgresql(app):
    tdb = create_test_database("mig10")
    owner = sa.create_engine(tdb.owner_url)
    try:
        with owner.begin() as conn:
            command.upgrade(_alembic(conn), "0010")
            assert "auth_recovery_codes" in sa.inspect(conn).get_table_names()
            command.downgrade(_alembic(conn), "0009")
            assert "auth_recovery_codes" not in sa.inspect(conn).get_table_names()
            assert "password_set" not in {c["name"] for c in sa.inspect(conn).get_columns("users")}
            command.upgrade(_alembic(conn), "head")
    finally:
        owner.dispose()
        drop_test_database(tdb)


def test_migration_0010_upgrades_and_downgrades_on_sqlite(app, tmp_path):
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'm.db'}")
    try:
        with engine.begin() as conn:
            command.upgrade(_alembic(conn), "head")
            command.downgrade(_alembic(conn), "0009")
            assert "auth_recovery_codes" not in sa.inspect(conn).get_table_names()
            command.upgrade(_alembic(conn), "head")
            assert "password_set" in {c["name"] for c in sa.inspect(conn).get_columns("users")}
    finally:
        engine.dispose()
