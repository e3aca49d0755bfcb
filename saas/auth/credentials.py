"""Reading an account's secrets (password hash, encrypted TOTP secret), one account at a time.

On PostgreSQL the application role has no SELECT on `users.password_hash` nor on
`users.totp_secret_enc` (column privileges granted by `saas init`, saas.tenancy.rls): an SQL
injection anywhere cannot select them. The application asks for one account's secret through
`auth_password_hash(id)` / `auth_totp_secret(id)` (SECURITY DEFINER, migration 0005), which
answer at most a few times per transaction: a statement that would dump every account fails
after the fifth. SQLite (the embedded default) has no roles: the column is read directly.

What was read is kept on the instance for the rest of its session, so a request asks once.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm.attributes import set_committed_value

from saas.auth.models import User
from saas.extensions import db

_FUNCTIONS = {"password_hash": "auth_password_hash", "totp_secret_enc": "auth_totp_secret"}


def _read(user: User, attribute: str) -> str | None:
    if attribute in user.__dict__:  # loaded or assigned in this session
        return user.__dict__[attribute]
    if db.session.get_bind().dialect.name == "postgresql":
        query = sa.select(getattr(sa.func, _FUNCTIONS[attribute])(user.id))
    else:
        query = sa.select(getattr(User, attribute)).where(User.id == user.id)
    value = db.session.execute(query).scalar()
    set_committed_value(user, attribute, value)
    return value


def password_hash(user: User) -> str | None:
    """The user's Argon2 hash (None for an account without a password)."""
    return _read(user, "password_hash")


def totp_secret_enc(user: User) -> str | None:
    """The user's encrypted TOTP secret (None without a second factor)."""
    return _read(user, "totp_secret_enc")
