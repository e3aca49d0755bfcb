"""Tenant look-ups shared by every layer: by slug, the list, the French status labels."""

from __future__ import annotations

from flask_babel import gettext as _
from sqlalchemy.orm import selectinload

from saas.extensions import db
from saas.tenancy.models import Tenant, TenantStatus


class TenancyError(Exception):
    """A refused operation; the message (French) says what to do."""


def status_label(status: str) -> str:
    """Return the French label of a tenant status."""
    return {
        TenantStatus.ACTIVE: _("active"),
        TenantStatus.SUSPENDED: _("suspendue"),
        TenantStatus.ARCHIVED: _("archivée"),
    }.get(status, status)


def get_tenant(slug: str) -> Tenant:
    """Return the tenant with this slug or raise TenancyError."""
    tenant = db.session.execute(db.select(Tenant).where(Tenant.slug == slug)).scalar_one_or_none()
    if tenant is None:
        raise TenancyError(_("Collectivité inconnue : « %(slug)s ». Voir `saas tenants list`.", slug=slug))
    return tenant


def list_tenants() -> list[Tenant]:
    """Return every tenant, the intercommunality first, then by name."""
    return list(db.session.execute(
        db.select(Tenant).options(selectinload(Tenant.domains)).order_by(Tenant.kind.desc(), Tenant.name)
    ).scalars())


def tenant_as_dict(tenant: Tenant) -> dict:
    """Return the public description of a tenant (`saas tenants list --json`)."""
    return {
        "slug": tenant.slug,
        "name": tenant.name,
        "kind": tenant.kind,
        "insee": tenant.insee,
        "siren": tenant.siren,
        "population": tenant.population,
        "departement": tenant.departement,
        "arrondissement": tenant.arrondissement,
        "status": tenant.status,
        "origins": list(tenant.origins),
        "domains": [d.domain for d in tenant.domains],
        "modules": list(tenant.modules),
        "quota_bytes": tenant.quota_bytes,
    }
