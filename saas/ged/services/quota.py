"""Bytes a commune keeps: the per-file limit, the quota, the usage counter and its reports."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import sqlalchemy as sa
from flask_babel import gettext as _

from saas.config import current_settings
from saas.errors import AppError
from saas.extensions import db
from saas.ged.models import Usage
from saas.modelbase import utcnow
from saas.tenancy.models import Tenant, TenantSnapshot


def human_size(n: int | None) -> str:
    """French rendering of a byte count (« 1,5 Go »)."""
    if n is None:
        return "—"
    value = float(n)
    for unit in ("octets", "Ko", "Mo", "Go", "To"):
        if value < 1024 or unit == "To":
            if unit == "octets":
                return f"{int(value)} {unit}"
            return f"{value:.1f} {unit}".replace(".", ",")
        value /= 1024
    return f"{n} octets"


@dataclass(frozen=True)
class QuotaStatus:
    used: int
    quota: int  # 0: no quota

    @property
    def remaining(self) -> int | None:
        return None if not self.quota else max(0, self.quota - self.used)

    @property
    def percent(self) -> int | None:
        return None if not self.quota else min(100, round(100 * self.used / self.quota))


def usage_of(tenant_id: uuid.UUID) -> int:
    row = db.session.get(Usage, tenant_id)
    return row.used_bytes if row else 0


def quota_status(tenant: TenantSnapshot) -> QuotaStatus:
    return QuotaStatus(usage_of(tenant.id), int(tenant.quota_bytes or 0))


def quota_error(tenant: TenantSnapshot, incoming: int, used: int | None = None) -> AppError:
    used = usage_of(tenant.id) if used is None else used
    return AppError(
        413, "quota_exceeded",
        _("Quota de stockage dépassé : la commune dispose de %(quota)s, dont %(used)s déjà "
          "utilisés ; ce fichier (%(size)s) ne tient pas dans les %(left)s restants. Videz la "
          "corbeille ou demandez une extension au service informatique de l'intercommunalité.",
          quota=human_size(tenant.quota_bytes), used=human_size(used), size=human_size(incoming),
          left=human_size(max(0, tenant.quota_bytes - used))),
        {"quota_bytes": tenant.quota_bytes, "used_bytes": used, "incoming_bytes": incoming},
    )


def too_large_error(size: int | None = None) -> AppError:
    limit = current_settings().ged.max_upload
    return AppError(
        413, "file_too_large",
        _("Fichier trop volumineux : %(limit)s au plus par fichier.", limit=human_size(limit)),
        {"max_bytes": limit, **({"size": size} if size is not None else {})},
    )


def check_room(tenant: TenantSnapshot, incoming: int, *, slack: int = 0) -> None:
    """Refuse (413) before any byte is written when `incoming` cannot fit the size or quota."""
    if incoming - slack > current_settings().ged.max_upload:
        raise too_large_error(incoming)
    status = quota_status(tenant)
    if status.quota and status.used + incoming - slack > status.quota:
        raise quota_error(tenant, incoming, status.used)


def add_usage(tenant: TenantSnapshot, delta: int, *, enforce: bool) -> None:
    """Add `delta` bytes to the counter in the open transaction; 413 if the quota would break."""
    ts = utcnow()
    dialect = db.session.get_bind().dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    db.session.execute(insert(Usage).values(tenant_id=tenant.id, used_bytes=0, updated_at=ts)
                       .on_conflict_do_nothing(index_elements=["tenant_id"]))
    stmt = (sa.update(Usage).where(Usage.tenant_id == tenant.id)
            .values(used_bytes=sa.func.greatest(Usage.used_bytes + delta, 0)
                    if dialect == "postgresql" else sa.func.max(Usage.used_bytes + delta, 0),
                    updated_at=ts))
    if enforce and tenant.quota_bytes and delta > 0:
        stmt = stmt.where(Usage.used_bytes + delta <= tenant.quota_bytes)
    result = db.session.execute(stmt.execution_options(synchronize_session=False))
    if result.rowcount != 1:
        raise quota_error(tenant, delta)


def usage_report() -> list[tuple[Tenant, int]]:
    """Every commune with its GED usage (for the intercommunality)."""
    rows = db.session.execute(
        sa.select(Tenant, sa.func.coalesce(Usage.used_bytes, 0))
        .outerjoin(Usage, Usage.tenant_id == Tenant.id).order_by(Tenant.name)).all()
    return [(tenant, int(used)) for tenant, used in rows]
