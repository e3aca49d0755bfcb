"""Console home: every tenant with its status; the integrity page: each commune's last scrub."""

from __future__ import annotations

from flask import Blueprint, render_template

from saas.extensions import db
from saas.ged import public as ged
from saas.hostguards import console_admin_required
from saas.tenancy.context import tenant_context
from saas.tenancy.models import Tenant, TenantStatus

bp = Blueprint("console", __name__, url_prefix="/console")


@bp.get("/")
@console_admin_required
def home():
    tenants = db.session.execute(
        db.select(Tenant).order_by(Tenant.kind.desc(), Tenant.name)
    ).scalars().all()
    counts = {status: sum(1 for t in tenants if t.status == status) for status in TenantStatus}
    return render_template("console/home.html", tenants=tenants, counts=counts,
                           population=sum(t.population for t in tenants if t.kind == "commune"))


@bp.get("/integrite")
@console_admin_required
def integrity():
    """The last integrity scrub of every commune: counts and the documents it found damaged."""
    tenants = db.session.execute(
        db.select(Tenant).order_by(Tenant.kind.desc(), Tenant.name)).scalars().all()
    rows = []
    for tenant in tenants:
        # Each commune's runs are read as that commune (row-level security stays in force).
        with tenant_context(tenant):
            rows.append((tenant, ged.last_scrub()))
    damaged = sum(1 for _t, scrub in rows if scrub and (scrub.mismatched or scrub.missing))
    return render_template("console/integrity.html", rows=rows, damaged=damaged)
