"""`saas tenants apply`: creation, idempotence, updates, --dry-run, --prune, custom domains."""

from __future__ import annotations

import uuid
from pathlib import Path

import sqlalchemy as sa

from saas.audit.models import AuditEvent, PlatformAuditEvent
from saas.auth.models import Membership
from saas.extensions import db
from saas.storage import StorageError, get_store
from saas.tenancy.context import tenant_context
from saas.tenancy.manifests import load_directory
from saas.tenancy.models import Tenant, TenantDomain
from tests.tenancy.manifest_files import siren_for, write_manifest

REPO = Path(__file__).resolve().parents[2]


def _tenant(slug: str) -> Tenant:
    db.session.expire_all()
    return db.session.execute(db.select(Tenant).where(Tenant.slug == slug)).scalar_one()


def _actions(tenant: Tenant | None) -> list[tuple[str, str, str]]:
    model = AuditEvent if tenant else PlatformAuditEvent
    if tenant is None:
        rows = db.session.execute(sa.select(model).order_by(model.seq)).scalars().all()
        return [(r.action, r.target, r.actor) for r in rows]
    with tenant_context(tenant):
        rows = db.session.execute(sa.select(model).order_by(model.seq)).scalars().all()
        return [(r.action, r.target, r.actor) for r in rows]


def test_apply_creates_every_tenant_with_its_bucket_and_audit(cli, manifest_dir):
    # Buckets outlive the per-test truncation: a slug no other test uses.
    slug = f"g{uuid.uuid4().hex[:8]}"
    write_manifest(manifest_dir, slug, 3, name="Gamma", domains=["demarches.gamma.example"],
                   quota="1.5 GiB", branding={"primary_color": "#8A3B12", "logo_text": "Gamma"})
    assert not get_store().bucket_exists(slug)

    result = cli("tenants", "apply", str(manifest_dir))

    assert result.exit_code == 0, result.output
    assert f"  espace de stockage créé pour {slug}" in result.stdout
    assert result.stdout.strip().splitlines()[-1] == "3 created, 0 updated, 0 unchanged"
    gamma = _tenant(slug)
    assert (gamma.name, gamma.kind, gamma.insee, gamma.departement, gamma.population) == (
        "Gamma", "commune", "44803", "44", 1500)
    assert gamma.status == "active"
    assert gamma.origins == [f"https://www.{slug}.example"]
    assert gamma.modules == ["ged", "actes"]
    assert gamma.quota_bytes == int(1.5 * 2**30)
    assert gamma.branding == {"primary_color": "#8a3b12", "logo_text": "Gamma"}
    assert gamma.manifest_digest and len(gamma.manifest_digest) == 64
    assert db.session.execute(sa.select(TenantDomain.domain, TenantDomain.tenant_id)).all() == [
        ("demarches.gamma.example", gamma.id)]
    assert all(get_store().bucket_exists(s) for s in ("alpha", "beta", slug))
    assert ("tenant.created", slug, "cli") in _actions(None)
    assert _actions(gamma) == [("tenant.created", slug, "cli")]


def test_second_apply_on_same_directory_changes_nothing(cli, manifest_dir, db_state):
    assert cli("tenants", "apply", str(manifest_dir)).exit_code == 0
    before = db_state()

    result = cli("tenants", "apply", str(manifest_dir))

    assert result.exit_code == 0, result.output
    assert result.stdout.strip().splitlines()[-1] == "0 created, 0 updated, 2 unchanged"
    assert db_state() == before


def test_reordering_lists_or_recasing_a_colour_is_not_a_change(cli, manifest_dir):
    assert cli("tenants", "apply", str(manifest_dir)).exit_code == 0
    write_manifest(manifest_dir, "alpha", 1, modules=["actes", "ged"], branding={"primary_color": "#1f5c99"})

    result = cli("tenants", "apply", str(manifest_dir))

    assert result.stdout.strip().splitlines()[-1] == "0 created, 0 updated, 2 unchanged"


def test_changed_manifest_is_updated_and_audited_with_its_changes(cli, manifest_dir):
    assert cli("tenants", "apply", str(manifest_dir)).exit_code == 0
    write_manifest(manifest_dir, "beta", 2, population=3600, name="Beta-sur-Mer")

    result = cli("tenants", "apply", str(manifest_dir))

    assert result.exit_code == 0, result.output
    assert "~ beta : mise à jour (name, population)" in result.stdout
    assert result.stdout.strip().splitlines()[-1] == "0 created, 1 updated, 1 unchanged"
    beta = _tenant("beta")
    assert (beta.population, beta.name) == (3600, "Beta-sur-Mer")
    with tenant_context(beta):
        last = db.session.execute(sa.select(AuditEvent).order_by(AuditEvent.seq.desc()).limit(1)).scalar_one()
    assert last.action == "tenant.updated"
    assert last.data["changes"]["population"] == [1000, 3600]
    assert ("tenant.updated", "beta", "cli") in _actions(None)


def test_custom_domain_serves_the_tenant_right_after_apply(cli, manifest_dir, app):
    write_manifest(manifest_dir, "alpha", 1, domains=["demarches.alpha.example"],
                   branding={"primary_color": "#2E6B30"})
    assert cli("tenants", "apply", str(manifest_dir)).exit_code == 0

    response = app.test_client().get("/theme.css", headers={"Host": "demarches.alpha.example"})

    assert response.status_code == 200
    assert "#2e6b30" in response.get_data(as_text=True)


def test_domain_can_move_between_two_communes_in_one_apply(cli, manifest_dir):
    write_manifest(manifest_dir, "alpha", 1, domains=["mairie.example"])
    assert cli("tenants", "apply", str(manifest_dir)).exit_code == 0
    write_manifest(manifest_dir, "alpha", 1)
    write_manifest(manifest_dir, "beta", 2, domains=["mairie.example"])

    result = cli("tenants", "apply", str(manifest_dir))

    assert result.exit_code == 0, result.output
    assert result.stdout.strip().splitlines()[-1] == "0 created, 2 updated, 0 unchanged"
    assert [d.domain for d in _tenant("beta").domains] == ["mairie.example"]
    assert _tenant("alpha").domains == []


def test_dry_run_reports_without_writing(cli, manifest_dir, db_state):
    # Buckets outlive the per-test truncation: a slug no other test uses.
    slug = f"dry{uuid.uuid4().hex[:8]}"
    write_manifest(manifest_dir, slug, 3)
    before = db_state()

    result = cli("tenants", "apply", str(manifest_dir), "--dry-run")

    assert result.exit_code == 0, result.output
    assert "Simulation" in result.stdout
    assert result.stdout.strip().splitlines()[-1] == "3 created, 0 updated, 0 unchanged"
    assert db_state() == before
    assert not get_store().bucket_exists(slug)


def test_storage_failure_leaves_the_database_untouched(cli, manifest_dir, db_state, app, monkeypatch):
    def refuse(tenant):
        raise StorageError("connexion refusée")

    monkeypatch.setattr(app.extensions["saas_store"], "ensure_bucket", refuse)
    before = db_state()

    result = cli("tenants", "apply", str(manifest_dir))

    assert result.exit_code == 1
    assert "Stockage objet injoignable ou en erreur (connexion refusée)" in result.stderr
    assert db_state() == before


def test_missing_manifest_is_left_alone_without_prune(cli, manifest_dir):
    assert cli("tenants", "apply", str(manifest_dir)).exit_code == 0
    (manifest_dir / "beta.toml").unlink()

    result = cli("tenants", "apply", str(manifest_dir))

    assert result.stdout.strip().splitlines()[-1] == "0 created, 0 updated, 1 unchanged"
    assert _tenant("beta").status == "active"


def test_prune_archives_absent_tenant_and_keeps_its_data(cli, manifest_dir, make_user):
    assert cli("tenants", "apply", str(manifest_dir)).exit_code == 0
    beta = _tenant("beta")
    make_user(beta, "agent", "agent@beta.example")
    (manifest_dir / "beta.toml").unlink()

    result = cli("tenants", "apply", str(manifest_dir), "--prune")

    assert result.exit_code == 0, result.output
    assert "- beta : archivée" in result.stdout
    assert result.stdout.strip().splitlines()[-1] == "0 created, 0 updated, 1 unchanged, 1 archived"
    beta = _tenant("beta")
    assert beta.status == "archived"
    assert get_store().bucket_exists("beta")
    with tenant_context(beta):
        assert db.session.execute(sa.select(sa.func.count(Membership.id))).scalar() == 1
        assert [a for a, *_ in _actions(beta)] == ["tenant.created", "tenant.archived"]
    again = cli("tenants", "apply", str(manifest_dir), "--prune")
    assert again.stdout.strip().splitlines()[-1] == "0 created, 0 updated, 1 unchanged, 0 archived"


def test_manifest_coming_back_reactivates_a_pruned_tenant(cli, manifest_dir):
    assert cli("tenants", "apply", str(manifest_dir)).exit_code == 0
    saved = (manifest_dir / "beta.toml").read_text()
    (manifest_dir / "beta.toml").unlink()
    assert cli("tenants", "apply", str(manifest_dir), "--prune").exit_code == 0
    (manifest_dir / "beta.toml").write_text(saved)

    result = cli("tenants", "apply", str(manifest_dir))

    assert "~ beta : mise à jour (status)" in result.stdout
    assert _tenant("beta").status == "active"


def test_unchanged_apply_keeps_a_suspension_decided_on_the_command_line(cli, manifest_dir):
    assert cli("tenants", "apply", str(manifest_dir)).exit_code == 0
    assert cli("tenants", "suspend", "alpha").exit_code == 0

    result = cli("tenants", "apply", str(manifest_dir))

    assert result.stdout.strip().splitlines()[-1] == "0 created, 0 updated, 2 unchanged"
    assert _tenant("alpha").status == "suspended"


def test_declared_status_is_applied(cli, manifest_dir):
    write_manifest(manifest_dir, "alpha", 1, status="suspended")

    assert cli("tenants", "apply", str(manifest_dir)).exit_code == 0

    assert _tenant("alpha").status == "suspended"
    assert _tenant("beta").status == "active"


def test_existing_tenant_created_outside_manifests_is_adopted(cli, manifest_dir, make_tenant):
    make_tenant("alpha", name="Ancien nom", siren=siren_for(801), insee="44801")

    result = cli("tenants", "apply", str(manifest_dir))

    assert result.exit_code == 0, result.output
    assert result.stdout.strip().splitlines()[-1] == "1 created, 1 updated, 0 unchanged"
    assert _tenant("alpha").name == "Commune Alpha"


def test_shipped_demo_manifests_apply_cleanly(cli):
    result = cli("tenants", "apply", str(REPO / "tenants"))

    assert result.exit_code == 0, result.output
    manifests, errors = load_directory(REPO / "tenants", base_domain="mutualis.test")
    assert errors == []
    assert result.stdout.strip().splitlines()[-1] == f"{len(manifests)} created, 0 updated, 0 unchanged"
    kinds = {m.kind for m in manifests}
    populations = sorted(m.population for m in manifests if m.kind == "commune")
    assert kinds == {"commune", "epci"}
    assert populations[0] < 1000 and any(1000 <= p < 3500 for p in populations) and populations[-1] > 3500
    assert {m.departement for m in manifests} == {"44"}
    assert all(m.siren.startswith("21") for m in manifests if m.kind == "commune")
    again = cli("tenants", "apply", str(REPO / "tenants"))
    assert again.stdout.strip().splitlines()[-1] == f"0 created, 0 updated, {len(manifests)} unchanged"


def test_apply_in_embedded_mode(sqlite_app, tmp_path):
    from click.testing import CliRunner
    from flask.cli import ScriptInfo

    from saas.cli import main

    directory = tmp_path / "manifests"
    directory.mkdir()
    write_manifest(directory, "alpha", 1, domains=["demarches.alpha.example"])

    result = CliRunner().invoke(main, ["tenants", "apply", str(directory)],
                                obj=ScriptInfo(create_app=lambda: sqlite_app), catch_exceptions=False)

    assert result.exit_code == 0, result.output
    assert result.stdout.strip().splitlines()[-1] == "1 created, 0 updated, 0 unchanged"
    alpha = _tenant("alpha")
    assert [d.domain for d in alpha.domains] == ["demarches.alpha.example"]
    assert get_store().bucket_exists(alpha)
    with tenant_context(alpha):
        assert [a for a, *_ in _actions(alpha)] == ["tenant.created"]
