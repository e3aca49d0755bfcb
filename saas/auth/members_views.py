"""The commune administrators' « Utilisateurs » page: invite, change roles, deactivate, reset
a second factor. Forms post without JavaScript; every refusal is a page with its status."""

from __future__ import annotations

from flask import Blueprint, abort, flash, g, redirect, render_template, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required

from saas.auth import members
from saas.auth.forms import InviteForm, MemberActionForm, RoleForm
from saas.auth.models import ROLE_LABELS, Role
from saas.hostguards import tenant_host

bp = Blueprint("members", __name__, url_prefix="/utilisateurs")


@bp.before_request
@tenant_host
@login_required
def _commune_admins_only():
    membership = g.get("membership")
    if membership is None or membership.role != Role.ADMIN.value:
        abort(403)
    return None


def _page(invite_form=None, error=None, status=200):
    role_forms = {}
    people = members.list_members()
    for person in people:
        form = RoleForm(formdata=None, prefix=f"r{person.user.id.hex[:8]}")
        form.role.data = person.membership.role
        role_forms[person.user.id] = form
    return render_template(
        "auth/members.html", people=people, role_forms=role_forms,
        invite_form=invite_form or InviteForm(formdata=None), action_form=MemberActionForm(),
        role_labels={r.value: label for r, label in ROLE_LABELS.items()},
        error=error), status


@bp.get("/")
def index():
    return _page()


@bp.post("/inviter")
def invite():
    form = InviteForm()
    if not form.validate_on_submit():
        return _page(invite_form=form, status=422)
    try:
        outcome = members.invite(form.email.data, form.name.data, form.role.data,
                                 actor=current_user._get_current_object())
    except members.MemberError as exc:
        form.email.errors = [*form.email.errors, str(exc)]
        return _page(invite_form=form, status=exc.status)
    messages = {
        "invited": _("Invitation envoyée à %(email)s : la personne choisira son mot de passe "
                     "avec le lien reçu (valable 7 jours)."),
        "resent": _("Nouvelle invitation envoyée à %(email)s."),
        "added": _("%(email)s avait déjà un compte Mutualis : elle a maintenant accès à la "
                   "commune et en est prévenue par courriel."),
    }
    flash(messages[outcome] % {"email": form.email.data.strip().lower()}, "success")
    return redirect(url_for("members.index"))


def _refused(exc: members.MemberError):
    if exc.status == 404:
        abort(404)
    return _page(error=str(exc), status=exc.status)


@bp.post("/<user_id>/role")
def change_role(user_id: str):
    try:
        member = members.get_member(user_id)
    except members.NotAMember:
        abort(404)
    form = RoleForm(prefix=f"r{member.user.id.hex[:8]}")
    if not form.validate_on_submit():
        return _page(error=_("Choisissez un rôle dans la liste."), status=422)
    try:
        members.change_role(user_id, form.role.data, actor=current_user._get_current_object())
    except members.MemberError as exc:
        return _refused(exc)
    flash(_("Rôle de %(name)s : %(role)s.", name=member.user.name,
            role=ROLE_LABELS[Role(form.role.data)]), "success")
    return redirect(url_for("members.index"))


@bp.post("/<user_id>/desactiver")
def deactivate(user_id: str):
    if not MemberActionForm().validate_on_submit():
        abort(400)
    try:
        member = members.deactivate(user_id, actor=current_user._get_current_object())
    except members.MemberError as exc:
        return _refused(exc)
    flash(_("L'accès de %(name)s à la commune est désactivé : ses sessions et ses jetons "
            "d'API ne fonctionnent plus.", name=member.user.name), "success")
    return redirect(url_for("members.index"))


@bp.post("/<user_id>/reinitialiser-2fa")
def reset_2fa(user_id: str):
    if not MemberActionForm().validate_on_submit():
        abort(400)
    try:
        member = members.get_member(user_id)
        done = members.reset_second_factor(user_id, actor=current_user._get_current_object())
    except members.MemberError as exc:
        return _refused(exc)
    if done:
        flash(_("Double authentification de %(name)s réinitialisée : elle l'activera de "
                "nouveau à sa prochaine connexion.", name=member.user.name), "success")
    else:
        flash(_("%(name)s n'avait pas de double authentification.", name=member.user.name), "info")
    return redirect(url_for("members.index"))
