"""Helpers for driving the identity pages like a browser does (CSRF token included)."""

from __future__ import annotations

import re
import time
from urllib.parse import urlsplit

import pyotp

from tests.conftest import PASSWORD

_CSRF = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"|name="csrf_token" value="([^"]+)"')
_SECRET = re.compile(r'id="totp-secret">([A-Z2-7 ]+)</code>')


def csrf_token(html: str) -> str:
    match = _CSRF.search(html)
    assert match, "no CSRF token in the page"
    return match.group(1) or match.group(2)


def post_form(client, path: str, data: dict, *, page: str | None = None):
    """GET `page` (default: `path`) for a CSRF token, then POST `data` to `path`."""
    html = client.get(page or path).get_data(as_text=True)
    return client.post(path, data={"csrf_token": csrf_token(html), **data})


def login(client, email: str, password: str = PASSWORD, next_url: str | None = None):
    page = "/auth/login" + (f"?next={next_url}" if next_url else "")
    html = client.get(page).get_data(as_text=True)
    data = {"csrf_token": csrf_token(html), "email": email, "password": password}
    if next_url is not None:
        data["next"] = next_url
    return client.post("/auth/login", data=data)


def is_logged_in(client) -> bool:
    response = client.get("/auth/account")
    return response.status_code == 200


def location_path(response) -> str:
    """The path (and query) of a redirect's Location header."""
    parts = urlsplit(response.headers["Location"])
    return parts.path + (f"?{parts.query}" if parts.query else "")


def secret_from(html: str) -> str:
    match = _SECRET.search(html)
    assert match, "no TOTP secret on the page"
    return match.group(1).replace(" ", "")


def code_for(secret: str, offset_steps: int = 0) -> str:
    return pyotp.TOTP(secret).at(time.time() + 30 * offset_steps)


def submit_code(client, path: str, code: str):
    return post_form(client, path, {"code": code})


def enrol_totp(user_id) -> str:
    """Give a user a second factor directly in the database; return its secret."""
    from saas.auth import totp
    from saas.auth.models import User
    from saas.extensions import db

    secret = totp.new_secret()
    user = db.session.get(User, user_id)
    user.totp_secret_enc = totp.encrypt_secret(secret)
    user.totp_last_step = None
    db.session.commit()
    return secret


def audit_entries(tenant) -> list[tuple[str, str, dict]]:
    """(action, actor, data) of a tenant's audit chain in order; tenant None: the platform's."""
    from saas.audit.models import AuditEvent, PlatformAuditEvent
    from saas.extensions import db
    from saas.tenancy.context import tenant_context

    model = PlatformAuditEvent if tenant is None else AuditEvent
    with tenant_context(tenant):
        rows = db.session.execute(db.select(model).order_by(model.seq)).scalars().all()
        entries = [(row.action, row.actor, row.data) for row in rows]
        db.session.rollback()
    return entries


def fresh_user(user_id):
    """The user row as the database has it now (not the session's cached copy)."""
    from saas.auth.models import User
    from saas.extensions import db

    db.session.expire_all()
    return db.session.get(User, user_id)


def throttle_of(email: str, network: str = "127.0.0.1"):
    """The failed-login counter row of `email` from `network` ("*": over every network)."""
    from saas.auth import services
    from saas.auth.models import LoginThrottle
    from saas.extensions import db

    db.session.expire_all()
    key = services._throttle_key(services.normalise_email(email), network)
    return db.session.get(LoginThrottle, key)


def stored_password_hash(user_id):
    """The user's password hash as the database has it now (read as the application does)."""
    from saas.auth import credentials

    return credentials.password_hash(fresh_user(user_id))


def stored_totp_secret(user_id):
    """The user's encrypted TOTP secret as the database has it now."""
    from saas.auth import credentials

    return credentials.totp_secret_enc(fresh_user(user_id))
