"""Provisioning communes: apply the declarative manifests, suspend, reactivate, archive.

Creating a commune also creates its bucket, and every change is written to the platform's and
the commune's audit chains, so this sits above tenancy, storage and audit.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa
from flask import current_app
from flask_babel import gettext as _
from sqlalchemy.orm import selectinload

from saas.audit.services import record
from saas.extensions import db
from saas.storage import get_store
from saas.tenancy.context import tenant_context
from saas.tenancy.manifests import ManifestError, TenantManifest, load_directory
from saas.tenancy.models import Tenant, TenantDomain, TenantStatus
from saas.tenancy.services import TenancyError, get_tenant, status_label


@dataclass
class ApplyReport:
    """What `apply_manifests` did (or would do, in a dry run)."""

    prune: bool = False
    dry_run: bool = False
    errors: list[ManifestError] = field(default_factory=list)
    created: list[str] = field(default_factory=list)
    updated: dict[str, list[str]] = field(default_factory=dict)
    unchanged: list[str] = field(default_factory=list)
    archived: list[str] = field(default_factory=list)
    buckets_created: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors

    def summary(self) -> str:
        """Return the machine-read summary line (English words are part of the contract)."""
        line = f"{len(self.created)} created, {len(self.updated)} updated, {len(self.unchanged)} unchanged"
        if self.prune:
            line += f", {len(self.archived)} archived"
        return line


def _audit(tenant: Tenant, action: str, data: dict, actor: str) -> None:
    """Record a tenant event in the platform's chain and in the tenant's own chain."""
    record(action, tenant.slug, data, actor=actor, platform=True)
    with tenant_context(tenant):
        record(action, tenant.slug, data, actor=actor)


def _lock(name: str) -> None:
    # Two concurrent applies would race on the same slugs; serialise them.
    if db.session.get_bind().dialect.name == "postgresql":
        db.session.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext(:k))"), {"k": name})


def apply_manifests(directory: Path | str, *, prune: bool = False, dry_run: bool = False,
                    actor: str = "cli") -> ApplyReport:
    """Create or update the tenants described in `directory`; archive the others with `prune`.

    Every manifest is validated first; with any error nothing is written.
    """
    settings = current_app.config["SAAS_SETTINGS"]
    manifests, errors = load_directory(Path(directory), base_domain=settings.base_domain)
    report = ApplyReport(prune=prune, dry_run=dry_run, errors=errors)
    if errors:
        return report
    try:
        _lock("tenants.apply")
        existing = {t.slug: t for t in db.session.execute(
            db.select(Tenant).options(selectinload(Tenant.domains))).scalars()}
        report.errors = _conflicts(manifests, existing, prune)
        if report.errors:
            db.session.rollback()
            return report
        domains_before = _release_domains(manifests, existing)
        for manifest in manifests:
            tenant = existing.get(manifest.slug)
            if tenant is None:
                existing[manifest.slug] = _create(manifest, actor)
                report.created.append(manifest.slug)
            elif tenant.manifest_digest != manifest.digest:
                report.updated[manifest.slug] = _update(
                    tenant, manifest, domains_before[manifest.slug], actor)
            else:
                report.unchanged.append(manifest.slug)
        if prune:
            wanted = {m.slug for m in manifests}
            for slug, tenant in sorted(existing.items()):
                if slug not in wanted and tenant.status != TenantStatus.ARCHIVED:
                    _archive(tenant, actor)
                    report.archived.append(slug)
        if dry_run:
            db.session.rollback()
            return report
        # Buckets before commit: if the store fails, no tenant is left without its bucket.
        store = get_store()
        for manifest in manifests:
            tenant = existing[manifest.slug]
            if tenant.status != TenantStatus.ARCHIVED and store.ensure_bucket(tenant):
                report.buckets_created.append(manifest.slug)
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    current_app.extensions["saas_domain_cache"].refresh()
    return report


def _conflicts(manifests: list[TenantManifest], existing: dict[str, Tenant],
               prune: bool) -> list[ManifestError]:
    """Values a manifest claims that a tenant outside the directory already holds."""
    wanted = {m.slug for m in manifests}
    others = [t for slug, t in existing.items() if slug not in wanted]
    sirens = {t.siren: t for t in others}
    domains = {d.domain: t for t in others for d in t.domains}
    # An INSEE code is not unique in the database (a commune nouvelle takes a predecessor's
    # code), but two live tenants must not share it; pruned tenants are about to be archived.
    insees = {t.insee: t for t in others if t.insee and t.status != TenantStatus.ARCHIVED and not prune}
    errors = []
    for m in manifests:
        claims = [("siren", m.siren, sirens), ("insee", m.insee, insees)]
        claims += [("domains", d, domains) for d in m.domains]
        for field_name, value, holders in claims:
            holder = holders.get(value) if value else None
            if holder is not None:
                errors.append(ManifestError(str(m.path), field_name, _(
                    "« %(value)s » appartient déjà à la collectivité « %(slug)s » (%(status)s), absente "
                    "du dossier ; un changement de slug n'est pas pris en charge", value=value,
                    slug=holder.slug, status=status_label(holder.status))))
    return errors


def _release_domains(manifests: list[TenantManifest], existing: dict[str, Tenant]) -> dict[str, list[str]]:
    """Drop the domains changed manifests no longer declare; return each tenant's domains before."""
    # Freed before anything is added, so a domain moving between two communes in one apply
    # does not collide with itself on the primary key.
    before: dict[str, list[str]] = {}
    for m in manifests:
        tenant = existing.get(m.slug)
        if tenant is None or tenant.manifest_digest == m.digest:
            continue
        before[m.slug] = sorted(d.domain for d in tenant.domains)
        for domain in [d for d in tenant.domains if d.domain not in m.domains]:
            tenant.domains.remove(domain)
    db.session.flush()
    return before


def _create(manifest: TenantManifest, actor: str) -> Tenant:
    tenant = Tenant(**manifest.tenant_columns(), status=manifest.status or TenantStatus.ACTIVE.value,
                    manifest_digest=manifest.digest)
    tenant.domains = [TenantDomain(domain=d) for d in manifest.domains]
    db.session.add(tenant)
    db.session.flush()
    _audit(tenant, "tenant.created", {**manifest.normalised(), "status": tenant.status}, actor)
    return tenant


def _update(tenant: Tenant, manifest: TenantManifest, domains_before: list[str],
            actor: str) -> list[str]:
    """Bring `tenant` in line with `manifest`; return the names of the fields that changed."""
    changes: dict[str, list] = {}
    for name, value in manifest.tenant_columns().items():
        if getattr(tenant, name) != value:
            changes[name] = [getattr(tenant, name), value]
            setattr(tenant, name, value)
    if domains_before != list(manifest.domains):
        changes["domains"] = [domains_before, list(manifest.domains)]
        kept = {d.domain for d in tenant.domains}
        tenant.domains.extend(TenantDomain(domain=d) for d in manifest.domains if d not in kept)
    status = manifest.status
    if status is None and tenant.status == TenantStatus.ARCHIVED and tenant.manifest_digest is None:
        # Archived by --prune because its manifest was missing: the manifest is back.
        status = TenantStatus.ACTIVE.value
    if status is not None and status != tenant.status:
        changes["status"] = [tenant.status, status]
        tenant.status = status
    tenant.manifest_digest = manifest.digest
    db.session.flush()
    _audit(tenant, "tenant.updated", {"changes": changes}, actor)
    return sorted(changes)


def _archive(tenant: Tenant, actor: str) -> None:
    previous = tenant.status
    tenant.status = TenantStatus.ARCHIVED.value
    # No manifest describes it any more; if one comes back, apply treats it as a change.
    tenant.manifest_digest = None
    db.session.flush()
    _audit(tenant, "tenant.archived", {"reason": "manifest_missing", "previous_status": previous}, actor)


def set_status(slug: str, status: TenantStatus, *, actor="cli",
               reason: str | None = None) -> tuple[Tenant, bool]:
    """Suspend or reactivate a tenant; return it and whether its status changed.

    `reason` (required from the console) is written to both audit chains and shown on the
    commune's row of the console (`last_status_change`)."""
    tenant = get_tenant(slug)
    if tenant.status == TenantStatus.ARCHIVED:
        raise TenancyError(_(
            "« %(slug)s » est archivée : remettez son manifeste dans le dossier des manifestes "
            "puis lancez `saas tenants apply`.", slug=slug))
    if tenant.status == status:
        return tenant, False
    previous = tenant.status
    tenant.status = status.value
    action = "tenant.suspended" if status == TenantStatus.SUSPENDED else "tenant.reactivated"
    try:
        db.session.flush()
        data = {"previous_status": previous}
        if reason:
            data["reason"] = reason
        _audit(tenant, action, data, actor)
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    return tenant, True


@dataclass
class StatusChange:
    action: str
    reason: str | None
    actor: str
    at: object


def last_status_changes() -> dict[str, StatusChange]:
    """Each tenant's latest suspension or reactivation, from the platform's audit chain."""
    from saas.audit.models import PlatformAuditEvent

    rows = db.session.execute(
        sa.select(PlatformAuditEvent.target, PlatformAuditEvent.action, PlatformAuditEvent.data,
                  PlatformAuditEvent.actor, PlatformAuditEvent.created_at)
        .where(PlatformAuditEvent.action.in_(("tenant.suspended", "tenant.reactivated")))
        .order_by(PlatformAuditEvent.seq)
    ).all()
    latest: dict[str, StatusChange] = {}
    for row in rows:
        data = row.data if isinstance(row.data, dict) else {}
        latest[row.target] = StatusChange(row.action, data.get("reason"), row.actor, row.created_at)
    return latest
