"""`saas audit verify`: walk every chain, check it against its anchors, report any edit or removal."""

from __future__ import annotations

import click
from flask.cli import with_appcontext
from flask_babel import gettext as _

from saas.audit.anchors import AnchorError, read_anchors
from saas.audit.services import PLATFORM_CHAIN, ChainReport, verify_chain
from saas.tenancy import services
from saas.tenancy.context import tenant_context

audit_group = click.Group("audit", help="Journal d'audit.")


def _verify(tenant, label: str) -> ChainReport:
    try:
        anchors, problem = read_anchors(tenant), None
    except AnchorError as exc:
        anchors, problem = [], str(exc)
    report = verify_chain(tenant.id if tenant is not None else None, label, anchors)
    if problem:
        report.errors.append(f"{label}: {problem}")
    return report


def verify_all(slug: str | None = None) -> list[ChainReport]:
    """Verify each tenant's chain (inside its context, for RLS) and the platform's, or one tenant's."""
    tenants = [services.get_tenant(slug)] if slug else services.list_tenants()
    reports = []
    for tenant in tenants:
        with tenant_context(tenant):
            reports.append(_verify(tenant, tenant.slug))
    if slug is None:
        with tenant_context(None):
            reports.append(_verify(None, PLATFORM_CHAIN))
    return reports


def _details(report: ChainReport) -> list[str]:
    lines = []
    if report.legacy_until and report.keyed_from:
        lines.append(_("n°1 à %(last)d : empreintes sans clé (écrites avant les chaînes signées) ; "
                       "signées à partir du n°%(first)d (clés : %(keys)s)", last=report.legacy_until,
                       first=report.keyed_from, keys=", ".join(report.key_ids)))
    elif report.legacy_until:
        lines.append(_("n°1 à %(last)d : empreintes sans clé (écrites avant les chaînes signées)",
                       last=report.legacy_until))
    elif report.keyed_from:
        lines.append(_("toutes signées (clés : %(keys)s)", keys=", ".join(report.key_ids)))
    if report.last_anchor is not None:
        lines.append(_("%(n)d ancrage(s) vérifié(s) ; le dernier, du %(at)s, atteste le n°%(seq)d",
                       n=report.anchors, at=report.last_anchor.anchored_at.strftime("%Y-%m-%d %H:%M UTC"),
                       seq=report.last_anchor.seq))
    elif report.entries:
        lines.append(_("aucun ancrage : la suppression des dernières entrées ne serait pas détectée"))
    return lines


@audit_group.command("verify", help="Vérifier chaque chaîne d'audit et ses ancrages ; code de sortie non nul en cas d'altération.")
@click.option("--tenant", "slug", metavar="SLUG", help="Ne vérifier que la chaîne de cette collectivité.")
@with_appcontext
def verify_command(slug: str | None) -> None:
    """Check every audit chain and its anchors; exit non-zero on tampering."""
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
        for line in _details(report):
            click.echo("  " + line)
    if broken:
        click.echo(_("%(bad)d chaîne(s) altérée(s) sur %(n)d : %(names)s", bad=len(broken), n=len(reports),
                     names=", ".join(r.chain for r in broken)), err=True)
        raise SystemExit(1)
    click.echo(_("%(n)d chaîne(s) vérifiée(s), aucune altération.", n=len(reports)))
