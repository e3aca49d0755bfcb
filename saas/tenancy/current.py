"""`current_tenant()`: the commune a request or a job acts for, as one read-only snapshot."""

from __future__ import annotations

from flask import g, has_app_context

from saas.extensions import db
from saas.tenancy.context import current_tenant_id
from saas.tenancy.models import Tenant, TenantSnapshot


class NoTenantError(RuntimeError):
    """Tenant-owned work was called outside any commune's context (a programming error)."""


def current_tenant() -> TenantSnapshot:
    """The current commune: the request's host snapshot, or one loaded for a job or a CLI call.

    Raises NoTenantError outside a commune's context. Changing a commune goes through its
    `Tenant` row (`db.session.get(Tenant, current_tenant().id)`), never through the snapshot.
    """
    tenant_id = current_tenant_id()
    if tenant_id is None:
        raise NoTenantError("no commune in this context")
    cached = g.get("tenant") if has_app_context() else None
    if cached is not None and cached.id == tenant_id:
        return cached
    row = db.session.get(Tenant, tenant_id)
    if row is None:
        raise NoTenantError(f"commune {tenant_id} does not exist")
    snapshot = row.snapshot()
    if has_app_context() and g.get("tenant") is None:
        g.tenant = snapshot  # later calls in this job or command pay no query
    return snapshot
