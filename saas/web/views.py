"""The portal (base domain) and a commune's home page."""

from __future__ import annotations

import re

from flask import Blueprint, current_app, g, render_template, url_for
from flask_babel import lazy_gettext as _l
from flask_login import login_required

from saas.extensions import db
from saas.hostguards import portal_host, tenant_host
from saas.tenancy.models import Tenant, TenantStatus

bp = Blueprint("web", __name__)

_COLOR = re.compile(r"^#[0-9a-fA-F]{6}$")

# What each module will offer, shown on the commune's dashboard until the module exists.
MODULE_CARDS = {
    "ged": (_l("Documents"), _l("Gestion électronique des documents : classement, versions, "
                                "recherche et partage intercommunal.")),
    "parapheur": (_l("Parapheur"), _l("Circuits de visa et de signature électronique.")),
    "actes": (_l("Contrôle de légalité"), _l("Télétransmission des actes à la préfecture (@ctes).")),
    "helios": (_l("Comptabilité"), _l("Flux comptables PES vers la trésorerie (Hélios).")),
    "seances": (_l("Séances"), _l("Ordres du jour, convocations, votes et délibérations.")),
    "citoyens": (_l("Services aux habitants"), _l("Démarches en ligne et publication des actes.")),
    "paie": (_l("Paie"), _l("Bulletins de paie remis dans l'espace de chaque agent.")),
}


@bp.get("/")
def index():
    if g.host_kind == "portal":
        return portal()
    if g.host_kind == "console":
        from saas.admin.views import home

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
    # A module whose pages exist links to them; the others are announced as coming.
    modules = [
        (key, *MODULE_CARDS[key],
         url_for(f"{key}.index") if f"{key}.index" in current_app.view_functions else None)
        for key in g.tenant.modules if key in MODULE_CARDS
    ]
    return render_template("web/home.html", modules=modules)


@bp.get("/theme.css")
@tenant_host
def theme_css():
    color = g.tenant.primary_color
    if not _COLOR.match(color):
        color = "#000091"
    body = f":root {{ --brand: {color}; }}\n"
    return body, 200, {"Content-Type": "text/css; charset=utf-8", "Cache-Control": "public, max-age=300"}
