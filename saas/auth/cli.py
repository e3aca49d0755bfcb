"""`saas users …` and `saas tokens …`."""

from __future__ import annotations

import sys
from typing import NoReturn

import click
from flask.cli import with_appcontext
from flask_babel import gettext as _

from saas.auth import enrolment
from saas.auth.models import ROLE_LABELS, Role
from saas.hosts import console_url, tenant_url
from saas.tenancy import services

users_group = click.Group("users", help="Comptes utilisateurs.")
tokens_group = click.Group("tokens", help="Jetons d'API.")


def _fail(message: str) -> NoReturn:
    click.echo(message, err=True)
    raise SystemExit(1)


@users_group.command("create", help="Créer une personne, ou donner à une personne existante un rôle dans une autre collectivité.")
@click.option("--tenant", "slug", metavar="SLUG", help="Slug de la collectivité où la personne reçoit un rôle.")
@click.option("--platform-admin", is_flag=True,
              help="Administrateur de la plateforme (informatique de l'intercommunalité) au lieu de --tenant.")
@click.option("--email", required=True, metavar="ADRESSE", help="Adresse électronique (identifiant de connexion).")
@click.option("--name", default="", metavar="NOM", help="Nom affiché (obligatoire pour un nouveau compte).")
@click.option("--role", metavar="RÔLE", help="Rôle dans la collectivité : admin, agent ou elu.")
@click.option("--password-stdin", is_flag=True,
              help="Lire le mot de passe sur l'entrée standard au lieu d'en générer un.")
@with_appcontext
def create_user_command(slug: str | None, platform_admin: bool, email: str, name: str,
                        role: str | None, password_stdin: bool) -> None:
    """Create a person, or give an existing one a role in another commune."""
    if bool(slug) == platform_admin:
        _fail(_("Indiquez soit --tenant SLUG (avec --role), soit --platform-admin."))
    if slug and not role:
        _fail(_("--role est obligatoire avec --tenant (admin, agent ou elu)."))
    if platform_admin and role:
        _fail(_("--role ne s'emploie qu'avec --tenant."))
    password = None
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            _fail(_("Aucun mot de passe reçu sur l'entrée standard."))
    try:
        tenant = services.get_tenant(slug) if slug else None
        outcome = enrolment.enrol_user(email, name, tenant=tenant, role=role,
                                      platform_admin=platform_admin, password=password)
    except (services.TenancyError, enrolment.EnrolmentError) as exc:
        _fail(str(exc))
    user = outcome.user
    for notice in outcome.notices:
        click.echo(notice, err=True)
    click.echo(_("Compte créé : %(email)s", email=user.email) if outcome.user_created
               else _("Compte existant : %(email)s", email=user.email))
    if tenant is not None:
        role_label = ROLE_LABELS[Role(role)]
        if outcome.membership_created:
            click.echo(_("Rôle « %(role)s » dans « %(slug)s » : %(url)s",
                         role=role_label, slug=tenant.slug, url=tenant_url(tenant)))
        else:
            click.echo(_("Déjà membre de « %(slug)s » avec ce rôle : rien à faire.", slug=tenant.slug))
    elif outcome.platform_admin_granted:
        click.echo(_("Administrateur de la plateforme : %(url)s", url=console_url()))
    else:
        click.echo(_("Déjà administrateur de la plateforme : rien à faire."))
    if outcome.generated_password:
        click.echo(_("Mot de passe (affiché une seule fois, à transmettre de façon sûre) : %(pw)s",
                     pw=outcome.generated_password))
    if platform_admin or role == Role.ADMIN:
        click.echo(_("Un second facteur (TOTP) lui sera demandé à la première connexion."))


@users_group.command("reset-2fa")
@click.option("--email", required=True, help="Adresse électronique du compte.")
@click.option("--tenant", "slug",
              help="Slug de la collectivité dont la personne est membre (l'action est aussi "
                   "inscrite dans son journal d'audit).")
@with_appcontext
def reset_2fa_command(email: str, slug: str | None) -> None:
    """Réinitialiser la double authentification d'un compte (téléphone perdu).

    Le secret TOTP et les codes de secours sont effacés, les sessions du compte fermées ; la
    personne active de nouveau la double authentification à sa prochaine connexion. L'action
    est inscrite au journal d'audit de la plateforme.
    """
    from saas.auth import services as auth_services
    from saas.extensions import db

    tenant = None
    try:
        tenant = services.get_tenant(slug) if slug else None
    except services.TenancyError as exc:
        _fail(str(exc))
    user = auth_services.find_user(email)
    if user is None:
        _fail(_("Aucun compte pour « %(email)s ».", email=email.strip()))
    if tenant is not None and auth_services.role_in(user, tenant) is None:
        _fail(_("%(email)s n'est pas membre de « %(slug)s ».", email=user.email, slug=tenant.slug))
    try:
        done = auth_services.reset_second_factor(user, actor="cli", tenant=tenant)
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    if not done:
        click.echo(_("%(email)s n'a pas de double authentification : rien à faire.",
                     email=user.email))
        return
    click.echo(_("Double authentification de %(email)s réinitialisée ; ses sessions sont "
                 "fermées. Elle l'activera de nouveau à sa prochaine connexion.",
                 email=user.email))


# -- `saas tokens …` -------------------------------------------------------------------------


def _token_tenant(slug: str):
    from saas.tenancy import services as tenancy_services

    try:
        return tenancy_services.get_tenant(slug)
    except tenancy_services.TenancyError as exc:
        _fail(str(exc))


@tokens_group.command("create", help="Créer un jeton d'API et l'afficher une seule fois (seule son empreinte SHA-256 est conservée).")
@click.option("--tenant", "slug", required=True, metavar="SLUG", help="Slug de la collectivité du jeton.")
@click.option("--email", required=True, metavar="ADRESSE", help="Personne à qui appartient le jeton (membre de la collectivité).")
@click.option("--name", "label", default=None, metavar="LIBELLÉ", help="Libellé du jeton (par défaut : « cli »).")
@with_appcontext
def create_token_command(slug: str, email: str, label: str | None) -> None:
    """Create an API token and print it once (only its SHA-256 is stored)."""
    from saas.auth import tokens
    from saas.auth.services import find_user
    from saas.extensions import db

    tenant = _token_tenant(slug)
    user = find_user(email)
    if user is None:
        _fail(_("Aucun compte pour « %(email)s ». Voir `saas users create`.", email=email))
    try:
        token_str, token = tokens.create_token(user, tenant, label or "cli", actor="cli")
    except tokens.TokenError as exc:
        db.session.rollback()
        _fail(str(exc))
    # Read before the commit expires the row (reloading it needs the commune's context).
    message = _("Jeton « %(name)s » créé pour %(email)s dans « %(slug)s » (id %(id)s).",
                name=token.name, email=user.email, slug=tenant.slug, id=token.id)
    db.session.commit()
    click.echo(message, err=True)
    click.echo(_("Copiez-le maintenant : il ne sera plus jamais affiché."), err=True)
    # The secret alone on stdout, so `TOKEN=$(saas tokens create …)` works.
    click.echo(token_str)


@tokens_group.command("list", help="Lister les jetons d'API d'une collectivité (jamais leur secret).")
@click.option("--tenant", "slug", required=True, metavar="SLUG", help="Slug de la collectivité.")
@click.option("--json", "as_json", is_flag=True, help="Sortie JSON.")
@with_appcontext
def list_tokens_command(slug: str, as_json: bool) -> None:
    """List a commune's API tokens (never their secret)."""
    import json

    from saas.auth import tokens
    from saas.auth.models import User
    from saas.extensions import db
    from saas.tenancy.context import tenant_context

    tenant = _token_tenant(slug)
    with tenant_context(tenant):
        rows = db.session.execute(
            tokens.tokens_query().add_columns(User.email).join(User, User.id == tokens.ApiToken.user_id)
        ).all()
        items = [{
            "id": str(t.id), "name": t.name, "prefix": t.prefix, "email": email,
            "created_at": t.created_at.isoformat(),
            "last_used_at": t.last_used_at.isoformat() if t.last_used_at else None,
            "revoked_at": t.revoked_at.isoformat() if t.revoked_at else None,
        } for t, email in rows]
    if as_json:
        click.echo(json.dumps(items, ensure_ascii=False, indent=2))
        return
    if not items:
        click.echo(_("Aucun jeton dans « %(slug)s ».", slug=tenant.slug))
        return
    for item in items:
        state = (_("révoqué le %(d)s", d=item["revoked_at"][:16]) if item["revoked_at"]
                 else _("actif"))
        used = item["last_used_at"][:16] if item["last_used_at"] else _("jamais utilisé")
        click.echo(f"{item['id']}  {item['prefix']}…  {item['email']}  « {item['name']} »  "
                   f"{state}  ({used})")


@tokens_group.command("revoke", help="Révoquer un jeton d'API par son identifiant (voir « saas tokens list »).")
@click.option("--tenant", "slug", required=True, metavar="SLUG", help="Slug de la collectivité.")
@click.argument("token_id", metavar="IDENTIFIANT")
@with_appcontext
def revoke_token_command(slug: str, token_id: str) -> None:
    """Revoke an API token by its id (see `saas tokens list`)."""
    import uuid

    from saas.auth import tokens
    from saas.extensions import db
    from saas.tenancy.context import tenant_context

    tenant = _token_tenant(slug)
    try:
        tid = uuid.UUID(token_id)
    except ValueError:
        _fail(_("Identifiant de jeton invalide : « %(id)s ».", id=token_id))
    with tenant_context(tenant):
        token = tokens.get_token(tid)
        if token is None:
            _fail(_("Aucun jeton %(id)s dans « %(slug)s ».", id=token_id, slug=tenant.slug))
        changed = tokens.revoke_token(token, actor="cli")
        db.session.commit()
    click.echo(_("Jeton %(id)s révoqué.", id=token_id) if changed
               else _("Jeton %(id)s déjà révoqué : rien à faire.", id=token_id))


keys_group = click.Group("keys", help="Clé secrète de la plateforme (rotation).")


@keys_group.command("reencrypt", help=(
    "Re-chiffrer les secrets TOTP sous la clé actuelle, après une rotation de SAAS_SECRET_KEY.\n\n"
    "À lancer une fois la nouvelle clé en place et l'ancienne dans SAAS_SECRET_KEY_FALLBACKS ; "
    "ensuite l'ancienne clé peut être retirée sans rendre les seconds facteurs illisibles."))
@with_appcontext
def reencrypt_command() -> None:
    """Re-encrypt the TOTP secrets under the current key, after a SAAS_SECRET_KEY rotation.

    Run once the new key is in place and the old one in SAAS_SECRET_KEY_FALLBACKS; the old key
    can then be withdrawn without making the second factors unreadable.
    """
    from saas.auth import credentials, totp
    from saas.auth.models import User
    from saas.extensions import db

    moved = unreadable = kept = 0
    ids = db.session.execute(
        db.select(User.id).where(User.totp_enabled.is_(True)).order_by(User.email)
    ).scalars().all()
    db.session.commit()
    for user_id in ids:
        # One account per transaction: the database hands out few secrets per transaction.
        user = db.session.get(User, user_id)
        stored = credentials.totp_secret_enc(user)
        try:
            if stored and totp.under_former_key(stored):
                user.totp_secret_enc = totp.reencrypt_secret(stored)
                moved += 1
            else:
                kept += 1
        except totp.SecretUnreadable:
            unreadable += 1
            click.echo(_("Illisible avec toutes les clés connues : %(email)s", email=user.email),
                       err=True)
        db.session.commit()
    click.echo(_("%(moved)d secret(s) re-chiffré(s), %(kept)d déjà sous la clé actuelle, "
                 "%(bad)d illisible(s).", moved=moved, kept=kept, bad=unreadable))
    if unreadable:
        raise SystemExit(1)
