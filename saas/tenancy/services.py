"""Tenant writes: apply manifests, suspend, reactivate, enrol people. Each call is one transaction."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa
from flask import current_app
from flask_babel import gettext as _
from sqlalchemy.orm import selectinload

from saas.audit.services import record
from saas.auth.models import Membership, Role, User
from saas.auth.passwords import hash_password, password_problem
from saas.auth.services import find_user, normalise_email
from saas.extensions import db
from saas.storage import get_store
from saas.tenancy.context import tenant_context
from saas.tenancy.manifests import ManifestError, TenantManifest, load_directory
from saas.tenancy.models import Tenant, TenantDomain, TenantStatus

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


class TenancyError(Exception):
    """A refused operation; the message (French) says what to do."""


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


def status_label(status: str) -> str:
    """Return the French label of a tenant status."""
    return {
        TenantStatus.ACTIVE: _("active"),
        TenantStatus.SUSPENDED: _("suspendue"),
        TenantStatus.ARCHIVED: _("archivée"),
    }.get(status, status)


def get_tenant(slug: str) -> Tenant:
    """Return the tenant with this slug or raise TenancyError."""
    tenant = db.session.execute(db.select(Tenant).where(Tenant.slug == slug)).scalar_one_or_none()
    if tenant is None:
        raise TenancyError(_("Collectivité inconnue : « %(slug)s ». Voir `saas tenants list`.", slug=slug))
    return tenant


def list_tenants() -> list[Tenant]:
    """Return every tenant, the intercommunality first, then by name."""
    return list(db.session.execute(
        db.select(Tenant).options(selectinload(Tenant.domains)).order_by(Tenant.kind.desc(), Tenant.name)
    ).scalars())


def tenant_as_dict(tenant: Tenant) -> dict:
    """Return the public description of a tenant (`saas tenants list --json`)."""
    return {
        "slug": tenant.slug,
        "name": tenant.name,
        "kind": tenant.kind,
        "insee": tenant.insee,
        "siren": tenant.siren,
        "population": tenant.population,
        "departement": tenant.departement,
        "arrondissement": tenant.arrondissement,
        "status": tenant.status,
        "origins": list(tenant.origins),
        "domains": [d.domain for d in tenant.domains],
        "modules": list(tenant.modules),
        "quota_bytes": tenant.quota_bytes,
    }


def set_status(slug: str, status: TenantStatus, *, actor: str = "cli") -> tuple[Tenant, bool]:
    """Suspend or reactivate a tenant; return it and whether its status changed."""
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
        _audit(tenant, action, {"previous_status": previous}, actor)
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    return tenant, True


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
        raise TenancyError(_("Adresse électronique invalide : « %(email)s ».", email=email))
    if (tenant is None) == (not platform_admin):
        raise TenancyError(_("Indiquez soit une collectivité (--tenant), soit --platform-admin."))
    if tenant is not None:
        if role not in {r.value for r in Role}:
            raise TenancyError(_("Rôle inconnu : « %(role)s » (admin, agent ou elu).", role=role))
        if tenant.status == TenantStatus.ARCHIVED:
            raise TenancyError(_("« %(slug)s » est archivée : on n'y ajoute plus de membres.", slug=tenant.slug))

    user = find_user(email)
    outcome: Enrolment
    try:
        if user is None:
            if not name:
                raise TenancyError(_("Le nom de la personne est obligatoire (--name)."))
            generated = None
            if password is None:
                password = generated = generate_password()
            problem = password_problem(password, email=email, name=name)
            if problem:
                raise TenancyError(problem)
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
            raise TenancyError(_(
                "%(email)s est déjà membre de « %(slug)s » avec le rôle « %(role)s » ; "
                "un changement de rôle se fait depuis l'administration de la commune.",
                email=user.email, slug=tenant.slug, role=membership.role))
        db.session.add(Membership(user_id=user.id, role=role, tenant_id=tenant.id))
        db.session.flush()
        data = {"role": role}
        record("membership.created", user.email, data, actor=actor)
    record("membership.created", user.email, {**data, "tenant": tenant.slug}, actor=actor, platform=True)
    return True
