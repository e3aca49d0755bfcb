"""A commune's people, managed by its administrators: invite, change roles, deactivate, reset
a second factor. Every function acts in the current commune (the request's host) and audits.

Rules: only the commune's own members can be acted on (another commune's person reads as
absent); the commune always keeps at least one administrator (the admins' memberships are
locked while counted, so two admins demoting each other at once cannot both succeed); an
invitation link is signed, bound to the person and her address, expires after seven days and
serves once (it carries a fingerprint of the password and session version, which choosing the
password changes). A person who already has an account (in another commune) gets a membership
here, keeps her account and password, and is told by mail.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import timedelta

from flask import g
from flask_babel import gettext as _

from saas import keys
from saas.audit.services import record
from saas.auth import services, tokens
from saas.auth.models import ApiToken, Membership, Role, User
from saas.auth.passwords import hash_password
from saas.extensions import db
from saas.hosts import tenant_url
from saas.mail import send_mail
from saas.tenancy.context import tenant_context
from saas.tenancy.models import Tenant

INVITATION_MAX_AGE = int(timedelta(days=7).total_seconds())
_INVITATION_SALT = "saas.auth.invitation"
# The job kind that mails an invitation or a new-membership notice (saas.auth.tasks).
INVITATION_MAIL = "auth.invitation_mail"
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


class MemberError(Exception):
    """A refused action; `status` is the HTTP status, the message (French) says why."""

    def __init__(self, message: str, status: int = 422) -> None:
        super().__init__(message)
        self.status = status


class NotAMember(MemberError):
    def __init__(self) -> None:
        super().__init__(_("Cette personne n'est pas membre de la commune."), 404)


@dataclass
class Member:
    membership: Membership
    user: User

    @property
    def invited(self) -> bool:
        """Invited, but has not chosen her password yet."""
        return not self.user.password_set


def _tenant() -> Tenant:
    tenant = g.get("tenant")
    if tenant is None:
        raise NotAMember()
    return tenant


def list_members() -> list[Member]:
    """The current commune's members, by name."""
    rows = db.session.execute(
        db.select(Membership, User).join(User, User.id == Membership.user_id)
        .order_by(User.name, User.email)
    ).all()
    return [Member(m, u) for m, u in rows]


def get_member(user_id) -> Member:
    """The current commune's member `user_id`; NotAMember (404) for anyone else."""
    try:
        uid = uuid.UUID(str(user_id))
    except ValueError:
        raise NotAMember() from None
    row = db.session.execute(
        db.select(Membership, User).join(User, User.id == Membership.user_id)
        .where(Membership.user_id == uid)
    ).first()
    if row is None:
        raise NotAMember()
    return Member(row[0], row[1])


def _check_role(role: str) -> str:
    if role not in {r.value for r in Role}:
        raise MemberError(_("Rôle inconnu : « %(role)s ».", role=role))
    return role


def _other_admins(member: Member) -> int:
    """How many other active administrators the commune has.

    Every admin membership (the target's included) is locked until the end of the
    transaction: of two admins demoting each other at once, the second waits, then re-reads
    the first's change and is refused."""
    rows = db.session.execute(
        db.select(Membership.user_id).join(User, User.id == Membership.user_id)
        .where(Membership.role == Role.ADMIN.value, User.active.is_(True),
               User.password_set.is_(True))
        .order_by(Membership.user_id)
        .with_for_update(of=Membership)
    ).all()
    return sum(1 for row in rows if row.user_id != member.user.id)


def _keep_an_admin(member: Member) -> None:
    if member.membership.role == Role.ADMIN.value and _other_admins(member) == 0:
        raise MemberError(_(
            "%(name)s est le dernier administrateur de la commune : nommez d'abord un autre "
            "administrateur.", name=member.user.name), 409)


# --- invitations ------------------------------------------------------------------------


def invite(email: str, name: str, role: str, *, actor: User) -> str:
    """Invite `email` into the current commune with `role`; returns what happened:
    "invited" (new account, link mailed), "resent" (invited before, new link mailed) or
    "added" (existing account, membership created and the person told by mail). Commits."""
    from saas.jobs import enqueue

    tenant = _tenant()
    email = services.normalise_email(email)
    name = (name or "").strip()
    role = _check_role(role)
    if not _EMAIL.match(email) or len(email) > 254:
        raise MemberError(_("Adresse électronique invalide : « %(email)s ».", email=email))
    if len(name) > 200:
        raise MemberError(_("Le nom ne doit pas dépasser 200 caractères."))
    user = services.find_user(email)
    try:
        if user is None:
            if not name:
                raise MemberError(_("Indiquez le nom de la personne invitée."))
            user = User(email=email, name=name, password_hash=None)
            db.session.add(user)
            db.session.flush()
            record("user.created", email, {"name": name, "invited_to": tenant.slug},
                   actor=actor, platform=True)
            outcome = "invited"
        else:
            existing = db.session.execute(
                db.select(Membership).where(Membership.user_id == user.id)).scalar_one_or_none()
            if existing is not None:
                if user.password_set:
                    raise MemberError(_("%(email)s est déjà membre de la commune.", email=email), 409)
                if existing.role != role:
                    existing.role = role
                outcome = "resent"
            else:
                outcome = "invited" if not user.password_set else "added"
            if not user.active:
                user.active = True
        if outcome != "resent":
            db.session.add(Membership(user_id=user.id, role=role, tenant_id=tenant.id))
        db.session.flush()
        record("membership.invited", email, {"role": role, "outcome": outcome}, actor=actor)
        record("membership.created" if outcome != "resent" else "membership.invited", email,
               {"role": role, "tenant": tenant.slug, "outcome": outcome}, actor=actor,
               platform=True)
        enqueue(INVITATION_MAIL, user_id=str(user.id), tenant_id=str(tenant.id),
                notice="added" if outcome == "added" else "invite", inviter=actor.name)
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    tokens.invalidate_token_cache()
    return outcome


def make_invitation_token(user: User, tenant: Tenant) -> str:
    return keys.serializer(_INVITATION_SALT).dumps({
        "u": str(user.id), "t": str(tenant.id), "e": user.email,
        "f": services._password_fingerprint(user)})


def check_invitation_token(token: str) -> tuple[User | None, str | None]:
    """(user, None) for a valid link on this commune's host, or (None, "expired" | "invalid"
    | "used")."""
    data, user, error = services.read_tenant_link(keys.serializer(_INVITATION_SALT), token,
                                                  INVITATION_MAX_AGE)
    if error:
        return None, error
    if user.email != data.get("e") or services.access_role(user) is None:
        return None, "invalid"
    if user.password_set or not keys.hmac_matches(str(data.get("f", "")),
                                                  services._fingerprint_data(user)):
        return None, "used"
    return user, None


def accept_invitation(user: User, password: str) -> bool:
    """Set the invited person's first password; False if the link has already served.

    As the password reset: one UPDATE that writes only while the session version is the one
    the link was checked against, and only while no password is set, and bumps the version.
    """
    version = user.session_version
    done = db.session.execute(
        db.update(User)
        .where(User.id == user.id, User.session_version == version,
               User.password_set.is_(False))
        .values(password_hash=hash_password(password), session_version=version + 1)
        .returning(User.id)
        .execution_options(synchronize_session=False)
    ).first()
    if done is None:
        db.session.rollback()
        return False
    db.session.expire(user)
    record("membership.invitation_accepted", user.email, {}, actor=user)
    db.session.commit()
    return True


def send_invitation_mail(user: User, tenant: Tenant, kind: str, inviter: str) -> bool:
    """Mail the invitation link (kind "invite") or the new-membership notice ("added").
    Runs in a job; the link is signed at sending, valid seven days. Nothing is sent to a
    person who has left the commune since (deactivated before the job ran)."""
    if not user.active or services.role_in(user, tenant) is None:
        return False
    if kind == "invite" and user.password_set:
        kind = "added"  # she chose a password meanwhile (another commune's invitation)
    if kind == "invite":
        link = tenant_url(tenant, "/auth/invitation/" + make_invitation_token(user, tenant))
        subject = _("Invitation à rejoindre %(place)s sur Mutualis", place=tenant.name)
        body = _(
            "Bonjour %(name)s,\n\n"
            "%(inviter)s vous invite à rejoindre l'espace de %(place)s sur Mutualis.\n\n"
            "Pour choisir votre mot de passe et activer votre compte, ouvrez ce lien dans les "
            "7 jours :\n\n%(link)s\n\n"
            "Le lien ne sert qu'une fois. Si vous ne vous attendiez pas à cette invitation, "
            "ignorez ce message.\n",
            name=user.name, inviter=inviter, place=tenant.name, link=link)
    else:
        link = tenant_url(tenant, "/auth/login")
        subject = _("Vous avez maintenant accès à %(place)s sur Mutualis", place=tenant.name)
        body = _(
            "Bonjour %(name)s,\n\n"
            "%(inviter)s vous a donné accès à l'espace de %(place)s sur Mutualis. Connectez-vous "
            "avec votre compte habituel (même adresse, même mot de passe) :\n\n%(link)s\n\n"
            "Depuis « Mon compte », vous pouvez passer d'une commune à l'autre.\n",
            name=user.name, inviter=inviter, place=tenant.name, link=link)
    send_mail(user.email, subject, body)
    with tenant_context(tenant):
        record("membership.invitation_mailed", user.email, {"kind": kind}, actor="system")
    return True


# --- roles, deactivation, second factor -------------------------------------------------


def change_role(user_id, role: str, *, actor: User) -> Member:
    """Give a member another role. Commits."""
    member = get_member(user_id)
    role = _check_role(role)
    previous = member.membership.role
    if previous == role:
        return member
    try:
        if role != Role.ADMIN.value:
            _keep_an_admin(member)
        member.membership.role = role
        db.session.flush()
        record("membership.role_changed", member.user.email, {"from": previous, "to": role},
               actor=actor)
        db.session.commit()
    except MemberError:
        db.session.rollback()
        raise
    tokens.invalidate_token_cache()
    return member


def deactivate(user_id, *, actor: User) -> Member:
    """End a member's access to the commune, at once: her membership is removed, her API
    tokens here revoked, her sessions here end at their next request (no membership); with no
    other commune left, her account is deactivated and every session ends. Commits."""
    member = get_member(user_id)
    user = member.user
    if user.id == actor.id:
        raise MemberError(_("Vous ne pouvez pas désactiver votre propre compte."), 409)
    role = member.membership.role
    try:
        _keep_an_admin(member)
        revoked = 0
        for token in db.session.execute(
                db.select(ApiToken).where(ApiToken.user_id == user.id,
                                          ApiToken.revoked_at.is_(None))).scalars():
            revoked += tokens.revoke_token(token, actor=actor)
        db.session.delete(member.membership)
        db.session.flush()
        with tenant_context(g.tenant, user=user):
            elsewhere = db.session.execute(
                db.select(db.func.count()).select_from(Membership)
                .where(Membership.user_id == user.id)
                .execution_options(all_tenants=True)).scalar()
        account_closed = not elsewhere and not user.is_platform_admin
        if account_closed:
            user.active = False
            user.session_version += 1  # every cookie of any host dies with the version
        db.session.flush()
        data = {"role": role, "tokens_revoked": revoked,
                "account_deactivated": account_closed}
        record("membership.deactivated", user.email, data, actor=actor)
        record("membership.deactivated", user.email, {**data, "tenant": g.tenant.slug},
               actor=actor, platform=True)
        db.session.commit()
    except MemberError:
        db.session.rollback()
        raise
    tokens.invalidate_token_cache()
    return member


def reset_second_factor(user_id, *, actor: User) -> bool:
    """Remove a member's second factor (lost phone); she enrols again at her next login."""
    member = get_member(user_id)
    done = services.reset_second_factor(member.user, actor=actor, tenant=g.tenant)
    db.session.commit()
    return done
