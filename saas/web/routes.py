"""The portal (base domain) and a commune's home page."""

from __future__ import annotations

import re

from flask import Blueprint, g, render_template
from flask_login import login_required

from saas.extensions import db
from saas.hostguards import portal_host, tenant_host
from saas.tenancy.models import Tenant, TenantStatus

bp = Blueprint("web", __name__)

_COLOR = re.compile(r"^#[0-9a-fA-F]{6}$")


@bp.get("/")
def index():
    if g.host_kind == "portal":
        return portal()
    if g.host_kind == "console":
        from saas.admin.routes import home

        return home()
    return tenant_home()


@portal_host
def portal():
    tenants = db.session.execute(
        db.select(Tenant).where(Tenant.status == TenantStatus.ACTIVE).order_by(Tenant.kind.desc(), Tenant.name)
    ).scalars().all()
    return render_template("web/portal.html", tenants=tenants)


@tenant_host
@login_required
def tenant_home():
    return render_template("web/home.html")


@bp.get("/theme.css")
@tenant_host
def theme_css():
    color = g.tenant.primary_color
    if not _COLOR.match(color):
        color = "#000091"
    body = f":root {{ --brand: {color}; }}\n"
    return body, 200, {"Content-Type": "text/css; charset=utf-8", "Cache-Control": "public, max-age=300"}
