"""`saas audit verify`: walk every hash chain and report any edit or removal."""

from __future__ import annotations

import click
from flask.cli import with_appcontext
from flask_babel import gettext as _

from saas.audit.services import ChainReport, verify_chain
from saas.tenancy import services
from saas.tenancy.context import tenant_context

audit_group = click.Group("audit", help="Journal d'audit.")

# Brackets: no tenant slug can take this label.
PLATFORM_CHAIN = "[plateforme]"


def verify_all(slug: str | None = None) -> list[ChainReport]:
    """Verify each tenant's chain (inside its context, for RLS) and the platform's, or one tenant's."""
    tenants = [services.get_tenant(slug)] if slug else services.list_tenants()
    reports = []
    for tenant in tenants:
        with tenant_context(tenant):
            reports.append(verify_chain(tenant.id, tenant.slug))
    if slug is None:
        reports.append(verify_chain(None, PLATFORM_CHAIN))
    return reports


@audit_group.command("verify")
@click.option("--tenant", "slug", help="Ne vérifier que la chaîne de cette collectivité.")
@with_appcontext
def verify_command(slug: str | None) -> None:
    """Check every audit hash chain; exit non-zero on tampering."""
    try:
        reports = verify_all(slug)
    except services.TenancyError as exc:
        click.echo(str(exc), err=True)
        raise SystemExit(1) from None
    broken = [r for r in reports if not r.ok]
    for report in reports:
        if report.ok:
            click.echo(_("%(chain)s : ok (%(n)d entrées)", chain=report.chain, n=report.entries))
        else:
            click.echo(_("%(chain)s : ALTÉRÉE (%(n)d entrées lues)", chain=report.chain, n=report.entries))
            for error in report.errors:
                click.echo("  " + error)
    if broken:
        click.echo(_("%(bad)d chaîne(s) altérée(s) sur %(n)d : %(names)s", bad=len(broken), n=len(reports),
                     names=", ".join(r.chain for r in broken)), err=True)
        raise SystemExit(1)
    click.echo(_("%(n)d chaîne(s) vérifiée(s), aucune altération.", n=len(reports)))
