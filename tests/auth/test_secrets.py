"""The application role cannot read the accounts' secrets in bulk (column privileges and
SECURITY DEFINER functions that answer a few accounts per transaction)."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError

from saas.auth import credentials
from saas.auth.passwords import verify_password
from saas.extensions import db
from tests.auth.helpers import code_for, enrol_totp, fresh_user, login, submit_code
from tests.conftest import PASSWORD


def _refused(sql: str) -> str:
    with pytest.raises(DBAPIError) as caught:
        db.session.execute(sa.text(sql)).all()
    db.session.rollback()
    return str(caught.value.orig)


@pytest.mark.parametrize("sql", [
    "SELECT password_hash FROM users",
    "SELECT totp_secret_enc FROM users",
    "SELECT * FROM users",
    "SELECT id FROM users WHERE password_hash LIKE '$argon2%'",
    "SELECT count(*) FROM auth_secret_reads",
])
def test_the_app_role_cannot_select_secrets(app, make_user, tenant_a, sql):
    make_user(tenant_a, "agent")
    assert "permission denied" in _refused(sql)


def test_the_app_role_still_reads_the_other_columns(app, make_user, tenant_a):
    user = make_user(tenant_a, "agent")
    row = db.session.execute(sa.text(
        "SELECT email, session_version, totp_enabled FROM users WHERE id = :id"), {"id": user.id}).one()
    assert row.email == user.email and row.totp_enabled is False
    db.session.rollback()


def test_one_statement_cannot_dump_every_hash(app, make_user, tenant_a):
    users = [make_user(tenant_a, "agent") for _ in range(6)]
    assert "too many account secrets" in _refused("SELECT auth_password_hash(id) FROM users")
    # The counter lives with the owner: the app role cannot reset it mid-statement.
    assert "permission denied" in _refused("DELETE FROM auth_secret_reads")
    # One account at a time, a few per transaction, is what the application needs.
    for user in users[:5]:
        assert verify_password(credentials.password_hash(fresh_user(user.id)), PASSWORD)
    db.session.commit()
    assert credentials.password_hash(fresh_user(users[5].id))  # a new transaction, a new budget
    db.session.rollback()


def test_login_second_factor_and_password_change_work_without_reading_the_columns(
        app, tenant_a, make_user, client_for):
    user = make_user(tenant_a, "admin")
    secret = enrol_totp(user.id)
    assert fresh_user(user.id).totp_enabled
    client = client_for(tenant_a)
    login(client, user.email)
    assert submit_code(client, "/auth/totp", code_for(secret)).status_code == 302
    assert client.get("/auth/account").status_code == 200
