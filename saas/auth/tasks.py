"""Identity jobs: the password-reset mail, and forgetting expired one-time nonces."""

from __future__ import annotations

import uuid
from datetime import datetime

from saas.auth import members
from saas.auth.models import User
from saas.auth.services import (
    LOCK_MAIL,
    RECOVERY_MAIL,
    RESET_MAIL,
    purge_expired_nonces,
    purge_expired_throttles,
    send_lock_mail,
    send_recovery_mail,
    send_reset_mail,
)
from saas.extensions import db
from saas.jobs import QueueNames, job_kind, periodic
from saas.tenancy.models import Tenant

# Every mail job: on the mail queue, retried for about an hour when the SMTP server is away.
_MAIL_JOB = dict(queue=QueueNames.MAIL, platform=True, timeout=120, max_attempts=6, backoff=30,
                 max_backoff=600)


@job_kind(RESET_MAIL, **_MAIL_JOB)
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


@job_kind(LOCK_MAIL, **_MAIL_JOB)
def lock_mail(email: str, scope: str, until: str, network: str,
              tenant_id: str | None = None) -> dict:
    """Tell the owner of `email` (if the address has an account) that its login was locked.

    Queued once per lock, for any address (the request must not tell whether it has an
    account); the result says nothing of that either, the mail log does.
    """
    tenant = db.session.get(Tenant, uuid.UUID(tenant_id)) if tenant_id else None
    send_lock_mail(email, scope, datetime.fromisoformat(until), network, tenant)
    return {"done": True}


@job_kind(RECOVERY_MAIL, **_MAIL_JOB)
def recovery_mail(user_id: str, left: int, network: str, tenant_id: str | None = None) -> dict:
    """Tell the owner that one of her recovery codes was used to log in."""
    user = db.session.get(User, uuid.UUID(user_id))
    tenant = db.session.get(Tenant, uuid.UUID(tenant_id)) if tenant_id else None
    if user is None:
        return {"done": False}
    return {"done": send_recovery_mail(user, int(left), tenant, network)}


@job_kind(members.INVITATION_MAIL, **_MAIL_JOB)
def invitation_mail(user_id: str, tenant_id: str, notice: str, inviter: str) -> dict:
    """Mail an invitation link, or tell an existing account it now has access to a commune."""
    user = db.session.get(User, uuid.UUID(user_id))
    tenant = db.session.get(Tenant, uuid.UUID(tenant_id))
    if user is None or tenant is None or not tenant.is_active:
        return {"done": False}
    return {"done": members.send_invitation_mail(user, tenant, notice, inviter)}


@job_kind("auth.purge_nonces", queue=QueueNames.MAINTENANCE, platform=True, timeout=600,
          max_attempts=3, backoff=300)
def purge_nonces() -> dict:
    """Delete the one-time nonces (logouts, commune switches) whose tokens have expired, and
    the failed-login counters whose window and lock are over."""
    return {"deleted": purge_expired_nonces(), "throttles": purge_expired_throttles()}


periodic("auth.purge_nonces", "auth.purge_nonces", every=3600)
