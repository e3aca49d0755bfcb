"""Bytes a commune keeps: the per-file limit, the quota, the usage counter and its reports.

A commune's room is its quota less what its documents use (`ged_usage`) and what its
resumable uploads hold back: a live upload reserves its whole declared length from its
creation, an expired one still counts the pieces it stores until the sweep deletes them. The
reservation is read from the uploads' rows, so completing, terminating, expiring or sweeping an
upload releases it with no counter to keep in step. Every check that lets bytes in runs under
the commune's `ged_usage` row lock (`_lock_usage`), so two deposits or upload creations
cannot both take the same remaining room.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import sqlalchemy as sa
from flask_babel import gettext as _

from saas.config import current_settings
from saas.errors import AppError
from saas.extensions import db
from saas.ged.models import Upload, Usage
from saas.modelbase import utcnow
from saas.tenancy.models import Tenant, TenantSnapshot
from saas.units import format_size


def human_size(n: int | None) -> str:
    """French rendering of a byte count (« 1,5 Go »): the platform's one convention."""
    return format_size(n)


@dataclass(frozen=True)
class QuotaStatus:
    used: int
    quota: int  # 0: no quota
    # Held back by resumable uploads in progress (see reserved_bytes).
    reserved: int = 0

    @property
    def remaining(self) -> int | None:
        return None if not self.quota else max(0, self.quota - self.used - self.reserved)

    @property
    def percent(self) -> int | None:
        return None if not self.quota else min(100, round(100 * self.used / self.quota))


def usage_of(tenant_id: uuid.UUID) -> int:
    row = db.session.get(Usage, tenant_id)
    return row.used_bytes if row else 0


def reserved_bytes() -> int:
    """Bytes the current commune's unfinished resumable uploads hold back.

    A live upload: its whole declared length (reserved at creation, so its pieces fit).
    An expired one: the pieces it still stores (`offset`), until the sweep deletes it.
    """
    now = utcnow()
    held = sa.case((Upload.expires_at > now, Upload.length), else_=Upload.offset)
    stmt = sa.select(sa.func.coalesce(sa.func.sum(held), 0)).where(Upload.completed_at.is_(None))
    return int(db.session.execute(stmt).scalar_one())


def quota_status(tenant: TenantSnapshot) -> QuotaStatus:
    quota = int(tenant.quota_bytes or 0)
    # Reservations only count against a quota: without one, nothing reads them.
    return QuotaStatus(usage_of(tenant.id), quota, reserved_bytes() if quota else 0)


def quota_error(tenant: TenantSnapshot, incoming: int, used: int | None = None,
                reserved: int | None = None) -> AppError:
    used = usage_of(tenant.id) if used is None else used
    reserved = reserved_bytes() if reserved is None else reserved
    left = max(0, tenant.quota_bytes - used - reserved)
    if reserved:
        message = _("Quota de stockage dépassé : la commune dispose de %(quota)s, dont %(used)s "
                    "déjà utilisés et %(reserved)s réservés par des envois en cours ; ce fichier "
                    "(%(size)s) ne tient pas dans les %(left)s restants. Terminez ou abandonnez "
                    "les envois en cours, videz la corbeille ou demandez une extension au service "
                    "informatique de l'intercommunalité.",
                    quota=human_size(tenant.quota_bytes), used=human_size(used),
                    reserved=human_size(reserved), size=human_size(incoming),
                    left=human_size(left))
    else:
        message = _("Quota de stockage dépassé : la commune dispose de %(quota)s, dont %(used)s "
                    "déjà utilisés ; ce fichier (%(size)s) ne tient pas dans les %(left)s "
                    "restants. Videz la corbeille ou demandez une extension au service "
                    "informatique de l'intercommunalité.",
                    quota=human_size(tenant.quota_bytes), used=human_size(used),
                    size=human_size(incoming), left=human_size(left))
    return AppError(413, "quota_exceeded", message,
                    {"quota_bytes": tenant.quota_bytes, "used_bytes": used,
                     "reserved_bytes": reserved, "incoming_bytes": incoming})


def too_large_error(size: int | None = None) -> AppError:
    limit = current_settings().ged.max_upload
    return AppError(
        413, "file_too_large",
        _("Fichier trop volumineux : %(limit)s au plus par fichier.", limit=human_size(limit)),
        {"max_bytes": limit, **({"size": size} if size is not None else {})},
    )


def check_room(tenant: TenantSnapshot, incoming: int, *, slack: int = 0) -> QuotaStatus:
    """Refuse (413) before any byte is written when `incoming` cannot fit the size or quota;
    return the quota status read for the check."""
    if incoming - slack > current_settings().ged.max_upload:
        raise too_large_error(incoming)
    status = quota_status(tenant)
    if status.quota and status.used + status.reserved + incoming - slack > status.quota:
        raise quota_error(tenant, incoming, status.used, status.reserved)
    return status


def _lock_usage(tenant: TenantSnapshot) -> int:
    """Lock the commune's usage row in the open transaction (made if missing); its bytes used.

    Whoever adds bytes or reserves room holds this lock until it commits, and reads the
    reservations after taking it: under READ COMMITTED each statement sees what committed
    before it, so the second of two concurrent creations sees the first one's upload.
    """
    dialect = db.session.get_bind().dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    db.session.execute(insert(Usage).values(tenant_id=tenant.id, used_bytes=0, updated_at=utcnow())
                       .on_conflict_do_nothing(index_elements=["tenant_id"]))
    return int(db.session.execute(
        sa.select(Usage.used_bytes).where(Usage.tenant_id == tenant.id).with_for_update()
    ).scalar_one())


def reserve(tenant: TenantSnapshot, length: int) -> None:
    """Hold `length` bytes for a new resumable upload; 413 when they do not fit.

    Takes the usage lock: the caller adds the upload's row in the same transaction and commits,
    which makes the reservation visible and releases the lock.
    """
    if length > current_settings().ged.max_upload:
        raise too_large_error(length)
    used = _lock_usage(tenant)
    if tenant.quota_bytes:
        reserved = reserved_bytes()
        if used + reserved + length > tenant.quota_bytes:
            raise quota_error(tenant, length, used, reserved)


def add_usage(tenant: TenantSnapshot, delta: int, *, enforce: bool) -> None:
    """Add `delta` bytes to the counter in the open transaction; 413 if the quota would break.

    Enforced, the bytes must fit beside those used and those reserved by resumable uploads in
    progress (a completing upload marks itself complete first, releasing its own reservation).
    """
    used = _lock_usage(tenant)
    if enforce and tenant.quota_bytes and delta > 0:
        reserved = reserved_bytes()
        if used + reserved + delta > tenant.quota_bytes:
            raise quota_error(tenant, delta, used, reserved)
    db.session.execute(
        sa.update(Usage).where(Usage.tenant_id == tenant.id)
        .values(used_bytes=max(used + delta, 0), updated_at=utcnow())
        .execution_options(synchronize_session=False))


def usage_report() -> list[tuple[Tenant, int]]:
    """Every commune with its GED usage (for the intercommunality)."""
    rows = db.session.execute(
        sa.select(Tenant, sa.func.coalesce(Usage.used_bytes, 0))
        .outerjoin(Usage, Usage.tenant_id == Tenant.id).order_by(Tenant.name)).all()
    return [(tenant, int(used)) for tenant, used in rows]
