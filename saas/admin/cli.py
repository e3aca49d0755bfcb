"""`saas tenants …`: apply manifests, list, suspend, reactivate."""

from __future__ import annotations

import json
from typing import NoReturn

import click
from flask.cli import with_appcontext
from flask_babel import gettext as _

from saas.admin import provisioning
from saas.storage import StorageError
from saas.tenancy import services
from saas.tenancy.models import TenantStatus

tenants_group = click.Group("tenants", help="Collectivités hébergées.")


def _fail(message: str) -> NoReturn:
    click.echo(message, err=True)
    raise SystemExit(1)


@tenants_group.command("apply", help="Créer ou mettre à jour les collectivités décrites par les manifestes du dossier DOSSIER.")
@click.argument("directory", metavar="DOSSIER", type=click.Path(file_okay=False, path_type=str))
@click.option("--prune", is_flag=True,
              help="Archiver les collectivités absentes du dossier (leurs données sont conservées).")
@click.option("--dry-run", is_flag=True, help="Afficher ce qui changerait sans rien enregistrer.")
@with_appcontext
def apply_command(directory: str, prune: bool, dry_run: bool) -> None:
    """Create or update the tenants described by the manifests in DIRECTORY."""
    try:
        report = provisioning.apply_manifests(directory, prune=prune, dry_run=dry_run)
    except StorageError as exc:
        _fail(_("Stockage objet injoignable ou en erreur (%(detail)s) : aucune modification "
                "enregistrée ; relancez la commande une fois le stockage rétabli.", detail=exc))
    if not report.ok:
        for error in report.errors:
            click.echo(str(error), err=True)
        _fail(_("Aucune modification : %(n)d erreur(s) dans les manifestes.", n=len(report.errors)))
    if dry_run:
        click.echo(_("Simulation (--dry-run) : rien n'est enregistré."))
    for slug in report.created:
        click.echo(_("+ %(slug)s : créée", slug=slug))
    for slug, fields in report.updated.items():
        detail = ", ".join(fields) or _("manifeste enregistré")
        click.echo(_("~ %(slug)s : mise à jour (%(fields)s)", slug=slug, fields=detail))
    for slug in report.archived:
        click.echo(_("- %(slug)s : archivée (absente du dossier ; données conservées)", slug=slug))
    for slug in report.buckets_created:
        click.echo(_("  espace de stockage créé pour %(slug)s", slug=slug))
    click.echo(report.summary())


@tenants_group.command("list", help="Lister les collectivités : slug, nom, code INSEE et statut.")
@click.option("--json", "as_json", is_flag=True, help="Sortie JSON pour les scripts.")
@with_appcontext
def list_command(as_json: bool) -> None:
    """List every tenant with its slug, name, INSEE code and status."""
    tenants = services.list_tenants()
    if as_json:
        click.echo(json.dumps([services.tenant_as_dict(t) for t in tenants], ensure_ascii=False, indent=2))
        return
    if not tenants:
        click.echo(_("Aucune collectivité. Créez-les avec `saas tenants apply tenants/`."))
        return
    rows = [(t.slug, t.name, t.insee or "—", services.status_label(t.status)) for t in tenants]
    table = [(_("slug"), _("nom"), _("INSEE"), _("statut")), *rows]
    widths = [max(len(row[i]) for row in table) for i in range(4)]
    for row in table:
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


def _change_status(slug: str, status: TenantStatus, reason: str | None = None) -> None:
    try:
        tenant, changed = provisioning.set_status(slug, status, reason=(reason or "").strip() or None)
    except services.TenancyError as exc:
        _fail(str(exc))
    label = services.status_label(tenant.status)
    if changed:
        click.echo(_("« %(slug)s » est maintenant %(status)s.", slug=slug, status=label))
    else:
        click.echo(_("« %(slug)s » était déjà %(status)s : rien à faire.", slug=slug, status=label))


@tenants_group.command("suspend", help="Suspendre une collectivité : son adresse répond 403 jusqu'à sa réactivation.")
@click.argument("slug")
@click.option("--reason", help="Motif, inscrit au journal d'audit et affiché dans la console.")
@with_appcontext
def suspend_command(slug: str, reason: str | None) -> None:
    """Suspend a tenant: its host answers 403 until it is reactivated."""
    _change_status(slug, TenantStatus.SUSPENDED, reason)


@tenants_group.command("reactivate", help="Réactiver une collectivité suspendue.")
@click.argument("slug")
@click.option("--reason", help="Motif, inscrit au journal d'audit et affiché dans la console.")
@with_appcontext
def reactivate_command(slug: str, reason: str | None) -> None:
    """Reactivate a suspended tenant."""
    _change_status(slug, TenantStatus.ACTIVE, reason)
