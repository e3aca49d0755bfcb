"""Console home: every tenant with its status."""

from __future__ import annotations

from flask import Blueprint, render_template

from saas.extensions import db
from saas.hostguards import console_admin_required
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
