"""Enrolment: create a person (or find them by e-mail) and give them a role in a commune."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field

from flask_babel import gettext as _

from saas.audit.services import record
from saas.auth.models import Membership, Role, User
from saas.auth.passwords import hash_password, password_problem
from saas.auth.services import find_user, normalise_email
from saas.extensions import db
from saas.tenancy.context import tenant_context
from saas.tenancy.models import Tenant, TenantStatus

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


class EnrolmentError(Exception):
    """A refused enrolment; the message (French) says what to do."""


@dataclass
class Enrolment:
    """The outcome of `enrol_user`."""

    user: User
    user_created: bool
    # The generated password, to show once; None when the person chose it or already had one.
    generated_password: str | None = None
    membership_created: bool = False
    platform_admin_granted: bool = False
    notices: list[str] = field(default_factory=list)


def generate_password() -> str:
    """Return a strong random password that the policy accepts."""
    while True:
        candidate = secrets.token_urlsafe(18)
        if password_problem(candidate) is None:
            return candidate


def enrol_user(email: str, name: str, *, tenant: Tenant | None = None, role: str | None = None,
               platform_admin: bool = False, password: str | None = None,
               actor: str = "cli") -> Enrolment:
    """Create the person if needed, then give them a role in `tenant` or platform administration.

    A person already known by this e-mail (case-insensitive) keeps their account and password
    and gains the new membership: the shared secrétaire de mairie is one user in several communes.
    """
    email = normalise_email(email)
    name = (name or "").strip()
    if not _EMAIL.match(email) or len(email) > 254:
        raise EnrolmentError(_("Adresse électronique invalide : « %(email)s ».", email=email))
    if (tenant is None) == (not platform_admin):
        raise EnrolmentError(_("Indiquez soit une collectivité (--tenant), soit --platform-admin."))
    if tenant is not None:
        if role not in {r.value for r in Role}:
            raise EnrolmentError(_("Rôle inconnu : « %(role)s » (admin, agent ou elu).", role=role))
        if tenant.status == TenantStatus.ARCHIVED:
            raise EnrolmentError(_("« %(slug)s » est archivée : on n'y ajoute plus de membres.", slug=tenant.slug))

    user = find_user(email)
    outcome: Enrolment
    try:
        if user is None:
            if not name:
                raise EnrolmentError(_("Le nom de la personne est obligatoire (--name)."))
            generated = None
            if password is None:
                password = generated = generate_password()
            problem = password_problem(password, email=email, name=name)
            if problem:
                raise EnrolmentError(problem)
            user = User(email=email, name=name, password_hash=hash_password(password))
            db.session.add(user)
            db.session.flush()
            record("user.created", email, {"name": name}, actor=actor, platform=True)
            outcome = Enrolment(user, True, generated_password=generated)
        else:
            outcome = Enrolment(user, False)
            if password is not None:
                outcome.notices.append(_("Compte existant : son mot de passe n'est pas modifié."))
            if name and name != user.name:
                outcome.notices.append(_("Compte existant : le nom « %(name)s » est conservé.", name=user.name))
        if platform_admin:
            if not user.is_platform_admin:
                user.is_platform_admin = True
                db.session.flush()
                record("user.platform_admin_granted", email, {}, actor=actor, platform=True)
                outcome.platform_admin_granted = True
        else:
            outcome.membership_created = _add_membership(user, tenant, role, actor)
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    return outcome


def _add_membership(user: User, tenant: Tenant, role: str, actor: str) -> bool:
    with tenant_context(tenant):
        membership = db.session.execute(
            db.select(Membership).where(Membership.user_id == user.id)
        ).scalar_one_or_none()
        if membership is not None:
            if membership.role == role:
                return False
            raise EnrolmentError(_(
                "%(email)s est déjà membre de « %(slug)s » avec le rôle « %(role)s » ; "
                "un changement de rôle se fait depuis l'administration de la commune.",
                email=user.email, slug=tenant.slug, role=membership.role))
        db.session.add(Membership(user_id=user.id, role=role, tenant_id=tenant.id))
        db.session.flush()
        data = {"role": role}
        record("membership.created", user.email, data, actor=actor)
    record("membership.created", user.email, {**data, "tenant": tenant.slug}, actor=actor, platform=True)
    return True
