"""Demo data for `make run`: the shipped manifests plus one account per kind of person."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import click
from flask.cli import with_appcontext
from flask_babel import gettext as _

from saas.admin import provisioning
from saas.auth import enrolment
from saas.auth.models import ROLE_LABELS, Role
from saas.auth.services import find_user, reset_password
from saas.hosts import console_url, portal_url, tenant_url
from saas.tenancy import services
from saas.tenancy.context import tenant_context
from saas.tenancy.models import Tenant, TenantKind, TenantStatus

DEMO_DOMAIN = "example.org"  # reserved for documentation: no mail ever reaches a real person


@dataclass
class DemoAccount:
    """One demo login and where it can be used."""

    email: str
    name: str
    # (label, url) per place the account opens: the console or a commune with its role.
    places: list[tuple[str, str]] = field(default_factory=list)
    # Shown once; None when the account already existed and kept its password.
    password: str | None = None
    needs_totp: bool = False


@dataclass
class DemoResult:
    report: provisioning.ApplyReport
    accounts: list[DemoAccount] = field(default_factory=list)


Grant = tuple[Tenant | None, Role | None]  # (None, None): platform administration


def _plan(tenants: list[Tenant]) -> list[tuple[str, str, list[Grant]]]:
    """Return (email, name, grants) for every demo account."""
    communes = sorted((t for t in tenants if t.kind == TenantKind.COMMUNE), key=lambda t: t.population)
    plan: list[tuple[str, str, list[Grant]]] = [
        (f"dsi@{DEMO_DOMAIN}", "Service informatique (démo)", [(None, None)]),
    ]
    plan += [(f"admin.{t.slug}@{DEMO_DOMAIN}", f"Administration {t.name} (démo)", [(t, Role.ADMIN)])
             for t in tenants]
    if len(communes) >= 2:
        # The secrétaire de mairie shared by the two smallest communes: one person, two roles.
        plan.append((f"secretaire@{DEMO_DOMAIN}", "Secrétaire de mairie partagée (démo)",
                     [(t, Role.AGENT) for t in communes[:2]]))
    if communes:
        plan.append((f"elu@{DEMO_DOMAIN}", "Élu municipal (démo)", [(communes[-1], Role.ELU)]))
    return plan


def load_demo(tenants_dir: Path | str, *, reset_passwords: bool = False) -> DemoResult:
    """Apply the demo manifests and create the demo accounts that do not exist yet."""
    report = provisioning.apply_manifests(tenants_dir)
    result = DemoResult(report)
    if not report.ok:
        return result
    slugs = set(report.created) | set(report.updated) | set(report.unchanged)
    tenants = [t for t in services.list_tenants() if t.slug in slugs and t.status == TenantStatus.ACTIVE]
    for email, name, grants in _plan(tenants):
        account = DemoAccount(email, name)
        for tenant, role in grants:
            outcome = enrolment.enrol_user(email, name, tenant=tenant, role=role,
                                          platform_admin=tenant is None)
            account.password = account.password or outcome.generated_password
            if tenant is None:
                account.places.append((_("console intercommunale"), console_url()))
            else:
                account.places.append((f"{ROLE_LABELS[role]} · {tenant.name}", tenant_url(tenant)))
            account.needs_totp = account.needs_totp or tenant is None or role == Role.ADMIN
        if reset_passwords and account.password is None:
            account.password = enrolment.generate_password()
            # Outside any commune: the reset belongs to the platform's audit chain.
            with tenant_context(None):
                reset_password(find_user(email), account.password)
        result.accounts.append(account)
    return result


demo_group = click.Group("demo", help="Données de démonstration.")


@demo_group.command("load", help="Charger les communes de démonstration du dossier DOSSIER (par défaut : tenants) et leurs comptes de démonstration.")
@click.argument("directory", default="tenants", metavar="[DOSSIER]",
                type=click.Path(file_okay=False, path_type=str))
@click.option("--reset-passwords", is_flag=True,
              help="Donner un nouveau mot de passe aux comptes de démonstration déjà créés.")
@with_appcontext
def load_command(directory: str, reset_passwords: bool) -> None:
    """Load the demo communes of DIRECTORY (default: tenants) and their demo accounts."""
    result = load_demo(directory, reset_passwords=reset_passwords)
    if not result.report.ok:
        for error in result.report.errors:
            click.echo(str(error), err=True)
        click.echo(_("Démonstration non chargée : corrigez les manifestes."), err=True)
        raise SystemExit(1)
    click.echo(_("Collectivités : %(summary)s", summary=result.report.summary()))
    click.echo(_("Comptes de démonstration (mots de passe affichés une seule fois) :"))
    for account in result.accounts:
        password = account.password or _("inchangé (--reset-passwords pour en obtenir un nouveau)")
        click.echo(f"\n  {account.name}\n    {_('identifiant')} : {account.email}\n"
                   f"    {_('mot de passe')} : {password}")
        for label, url in account.places:
            click.echo(f"    {label} : {url}")
    click.echo("\n" + _(
        "Les administrateurs (plateforme et communes) doivent enrôler un second facteur (TOTP) à "
        "leur première connexion : gardez une application d'authentification à portée de main."))
    click.echo(_("Portail : %(url)s", url=portal_url()))
