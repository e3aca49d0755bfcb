"""View decorators that pin a view to one kind of host and check the role it needs."""

from __future__ import annotations

from functools import wraps

from flask import abort, g
from flask_login import current_user, login_required

from saas.tenancy.resolver import HostKind


def tenant_host(view):
    """Only on a commune's host."""

    @wraps(view)
    def wrapper(*args, **kwargs):
        if g.get("host_kind") != HostKind.TENANT:
            abort(404)
        return view(*args, **kwargs)

    return wrapper


def console_host(view):
    """Only on the intercommunal console host."""

    @wraps(view)
    def wrapper(*args, **kwargs):
        if g.get("host_kind") != HostKind.CONSOLE:
            abort(404)
        return view(*args, **kwargs)

    return wrapper


def portal_host(view):
    @wraps(view)
    def wrapper(*args, **kwargs):
        if g.get("host_kind") != HostKind.PORTAL:
            abort(404)
        return view(*args, **kwargs)

    return wrapper


def platform_admin_required(view):
    @wraps(view)
    def wrapper(*args, **kwargs):
        if not current_user.is_authenticated:
            abort(401)
        if not current_user.is_platform_admin:
            abort(403)
        return view(*args, **kwargs)

    return wrapper


def console_admin_required(view):
    """On the console host, a logged-in platform administrator."""
    return console_host(login_required(platform_admin_required(view)))


def member_required(view):
    """On a commune's host, a logged-in member of that commune (any role)."""

    @wraps(view)
    @tenant_host
    @login_required
    def wrapper(*args, **kwargs):
        if g.get("membership") is None:
            abort(403)
        return view(*args, **kwargs)

    return wrapper
