"""Console home: every tenant with its status and usage, suspend and reactivate with a reason;
the integrity page: each commune's last scrub. Platform administrators only."""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import format_datetime
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from flask_wtf import FlaskForm
from wtforms import TextAreaField
from wtforms.validators import DataRequired, Length

from saas.admin import provisioning
from saas.audit.models import AuditEvent
from saas.auth.models import Membership
from saas.extensions import db
from saas.ged import public as ged
from saas.hostguards import console_admin_required
from saas.tenancy.context import tenant_context
from saas.tenancy.models import Tenant, TenantStatus
from saas.tenancy.services import TenancyError

bp = Blueprint("console", __name__, url_prefix="/console")

REASON_MAX = 500
_CONTROL = {chr(n) for n in range(32)} - {"\n", "\r", "\t"}


class StatusForm(FlaskForm):
    reason = TextAreaField(_l("Motif"), validators=[
        DataRequired(message=_l("Indiquez le motif : il est inscrit au journal d'audit.")),
        Length(max=REASON_MAX, message=_l("Le motif ne doit pas dépasser %(n)d caractères.",
                                          n=REASON_MAX))])


def _usage(tenant: Tenant) -> dict:
    """Storage, documents, members and last activity of one commune, read as that commune."""
    with tenant_context(tenant):
        used, documents = ged.usage_summary()
        users = db.session.execute(
            db.select(db.func.count()).select_from(Membership)).scalar() or 0
        last = db.session.execute(db.select(db.func.max(AuditEvent.created_at))).scalar()
    return {"used": used, "documents": documents, "users": int(users), "last_activity": last}


def _home(forms: dict | None = None, status: int = 200):
    tenants = db.session.execute(
        db.select(Tenant).order_by(Tenant.kind.desc(), Tenant.name)
    ).scalars().all()
    counts = {status: sum(1 for t in tenants if t.status == status) for status in TenantStatus}
    usage = {t.id: _usage(t) for t in tenants}
    forms = forms or {}
    return render_template(
        "console/home.html", tenants=tenants, counts=counts, usage=usage,
        changes=provisioning.last_status_changes(),
        forms={t.slug: forms.get(t.slug) or StatusForm(formdata=None, prefix=t.slug)
               for t in tenants},
        fmt_when=lambda when: format_datetime(when, "d MMM yyyy HH:mm"),
        population=sum(t.population for t in tenants if t.kind == "commune")), status


@bp.get("/")
@console_admin_required
def home():
    return _home()


@bp.post("/communes/<slug>/statut")
@console_admin_required
def change_status(slug: str):
    """Suspend or reactivate a commune, with a mandatory reason (as `saas tenants suspend`)."""
    wanted = request.form.get("status")
    if wanted not in (TenantStatus.SUSPENDED.value, TenantStatus.ACTIVE.value):
        abort(400)
    tenant = db.session.execute(db.select(Tenant).where(Tenant.slug == slug[:40])).scalar_one_or_none()
    if tenant is None:
        abort(404)
    form = StatusForm(prefix=tenant.slug)
    if form.reason.data:
        form.reason.data = form.reason.data.translate({ord(c): None for c in _CONTROL}).strip()
    if not form.validate_on_submit():
        return _home({tenant.slug: form}, status=422)
    try:
        tenant, changed = provisioning.set_status(
            tenant.slug, TenantStatus(wanted), actor=current_user._get_current_object(),
            reason=form.reason.data)
    except TenancyError as exc:
        flash(str(exc), "error")
        return redirect(url_for("console.home"))
    if changed:
        message = (_("%(name)s est suspendue : son site répond « service suspendu ».", name=tenant.name)
                   if wanted == TenantStatus.SUSPENDED.value
                   else _("%(name)s est réactivée.", name=tenant.name))
        flash(message, "success")
    else:
        flash(_("%(name)s était déjà dans cet état : rien à faire.", name=tenant.name), "info")
    return redirect(url_for("console.home") + f"#commune-{tenant.slug}")


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
