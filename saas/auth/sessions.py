"""Flask-Login wiring: sessions bound to one host (commune or console) and one session version."""

from __future__ import annotations

import time
import uuid
from datetime import timedelta

from flask import Flask, g, session
from flask_babel import lazy_gettext as _l
from flask_login import LoginManager

from saas.extensions import db
from saas.tenancy.context import set_user

# However active a session is, it ends this long after the login: a working day, and no longer
# than a retired secret key stays accepted (saas/keys.py: fallbacks are dropped after 8 hours).
ABSOLUTE_LIFETIME = timedelta(hours=8)


def init_app(app: Flask, login_manager: LoginManager) -> None:
    login_manager.init_app(app)
    login_manager.login_view = "auth.login"
    login_manager.login_message = _l("Connectez-vous pour accéder à cette page.")
    login_manager.login_message_category = "info"
    login_manager.session_protection = "basic"
    login_manager.user_loader(load_user)


def session_scope_key() -> str:
    """What a session cookie is valid for: this tenant, or the console."""
    tenant = g.get("tenant")
    return str(tenant.id) if tenant is not None else (g.get("host_kind") or "none")


def load_user(user_key: str):
    from saas.auth.models import Membership, UsedNonce, User

    # Half-authenticated (password given, one-time code not yet): not logged in.
    if session.get("needs_2fa"):
        return None
    login_at = session.get("login_at")
    if login_at is not None and time.time() - float(login_at) > ABSOLUTE_LIFETIME.total_seconds():
        return None
    try:
        raw_id, version = user_key.split(":", 1)
        user = db.session.get(User, uuid.UUID(raw_id))
    except (ValueError, TypeError):
        return None
    if user is None or not user.active or str(user.session_version) != version:
        return None
    # A cookie minted for another host (misconfigured cookie domain, copied cookie) is void.
    if session.get("scope") != session_scope_key():
        return None
    sid = session.get("sid")
    if sid and db.session.get(UsedNonce, f"logout:{sid}") is not None:
        return None  # this cookie was logged out; a copy of it stays logged out
    tenant = g.get("tenant")
    set_user(user)
    if tenant is not None:
        membership = db.session.execute(
            db.select(Membership).where(Membership.user_id == user.id)
        ).scalar_one_or_none()
        if membership is None:
            return None
        g.membership = membership
    elif g.get("host_kind") == "console" and not user.is_platform_admin:
        return None
    return user
