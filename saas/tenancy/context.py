"""The current tenant and user, per request and per job, as context variables.

Every tenant-owned query is filtered on `current_tenant_id()` (see scoping.py) and, on
PostgreSQL, the same value reaches the transaction as `app.current_tenant` for row-level
security before the next statement (scoping.py), so a switch inside a transaction holds too.
Without a tenant, tenant-owned tables read as empty: the walls fail closed.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

_tenant_id: ContextVar[uuid.UUID | None] = ContextVar("saas_tenant_id", default=None)
_user_id: ContextVar[uuid.UUID | None] = ContextVar("saas_user_id", default=None)


def current_tenant_id() -> uuid.UUID | None:
    return _tenant_id.get()


def current_user_id() -> uuid.UUID | None:
    return _user_id.get()


def _coerce(value) -> uuid.UUID | None:
    if value is None:
        return None
    if isinstance(value, uuid.UUID):
        return value
    if hasattr(value, "id"):
        return value.id
    return uuid.UUID(str(value))


def set_tenant(tenant) -> None:
    """Set the tenant for the rest of this context (a request or a job run)."""
    _tenant_id.set(_coerce(tenant))


def set_user(user) -> None:
    _user_id.set(_coerce(user))


@contextmanager
def tenant_context(tenant, user=None) -> Iterator[None]:
    """Run a block as `tenant` (and optionally `user`), restoring the previous context after."""
    t_token = _tenant_id.set(_coerce(tenant))
    u_token = _user_id.set(_coerce(user))
    try:
        yield
    finally:
        _tenant_id.reset(t_token)
        _user_id.reset(u_token)

