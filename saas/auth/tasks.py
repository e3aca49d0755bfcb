"""Identity jobs: the password-reset mail, and forgetting expired one-time nonces."""

from __future__ import annotations

import uuid

from saas.auth.services import RESET_MAIL, purge_expired_nonces, send_reset_mail
from saas.extensions import db
from saas.jobs import QueueNames, job_kind, periodic
from saas.tenancy.models import Tenant


@job_kind(RESET_MAIL, queue=QueueNames.MAIL, platform=True, timeout=120,
          max_attempts=6, backoff=30, max_backoff=600)
def reset_mail(email: str, tenant_id: str | None = None, ip: str | None = None) -> dict:
    """Mail a reset link if `email` has access to the commune (or the console when None).

    A platform job whatever the host: the request that queued it must not learn whether the
    account exists, and the commune's context is entered here once the tenant is known. The
    result says only whether the host still exists; whether a mail went out is in the audit.
    """
    tenant = None
    if tenant_id is not None:
        tenant = db.session.get(Tenant, uuid.UUID(tenant_id))
        if tenant is None or not tenant.is_active:
            return {"done": False, "reason": "closed"}
    send_reset_mail(email, tenant, ip)
    return {"done": True}


@job_kind("auth.purge_nonces", queue=QueueNames.MAINTENANCE, platform=True, timeout=600,
          max_attempts=3, backoff=300)
def purge_nonces() -> dict:
    """Delete the one-time nonces (logouts, commune switches) whose tokens have expired."""
    return {"deleted": purge_expired_nonces()}


periodic("auth.purge_nonces", "auth.purge_nonces", every=3600)
