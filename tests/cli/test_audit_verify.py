"""`saas audit verify`: intact chains pass; an edited or removed entry is found and named."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import ProgrammingError

from saas.audit.services import record
from saas.extensions import db
from saas.tenancy.context import tenant_context


@pytest.fixture
def chains(tenant_a, tenant_b):
    """Three entries in each commune's chain and two in the platform's."""
    for tenant in (tenant_a, tenant_b):
        with tenant_context(tenant):
            for n in range(1, 4):
                record("document.created", f"doc-{n}", {"n": n}, actor="test")
    record("console.login", "dsi@example.org", actor="test", platform=True)
    record("tenant.created", "commune-a", actor="test", platform=True)
    db.session.commit()
    return tenant_a, tenant_b


def _as_owner(pg_database, sql: str, tenant=None) -> int:
    """Run `sql` as the schema owner (RLS still applies to it: FORCE), return the row count."""
    engine = sa.create_engine(pg_database.owner_url)
    try:
        with engine.begin() as conn:
            if tenant is not None:
                conn.execute(sa.text("SELECT set_config('app.current_tenant', :t, true)"), {"t": str(tenant.id)})
            return conn.execute(sa.text(sql)).rowcount
    finally:
        engine.dispose()


def test_intact_chains_pass(cli, chains):
    result = cli("audit", "verify")

    assert result.exit_code == 0, result.output
    assert "commune-a : ok (3 entrées)" in result.stdout
    assert "commune-b : ok (3 entrées)" in result.stdout
    assert "[plateforme] : ok (2 entrées)" in result.stdout


def test_app_role_cannot_update_or_delete_audit_rows(app, chains):
    tenant_a, _ = chains
    for sql in ("UPDATE audit_events SET action = 'x'", "DELETE FROM audit_events",
                "UPDATE platform_audit_events SET action = 'x'"):
        with tenant_context(tenant_a):
            with pytest.raises(ProgrammingError, match="permission denied"):
                db.session.execute(sa.text(sql))
            db.session.rollback()


def test_edited_entry_is_named_and_exit_is_non_zero(cli, chains, pg_database):
    tenant_a, _ = chains
    changed = _as_owner(pg_database, "UPDATE audit_events SET target = 'doc-falsifié' WHERE seq = 2", tenant_a)
    assert changed == 1

    result = cli("audit", "verify")

    assert result.exit_code == 1
    assert "commune-a : ALTÉRÉE" in result.stdout
    assert "commune-a: n°2 a été modifiée (empreinte invalide)" in result.stdout
    assert "commune-b : ok (3 entrées)" in result.stdout
    assert "1 chaîne(s) altérée(s) sur 3 : commune-a" in result.stderr


def test_deleted_middle_entry_is_detected(cli, chains, pg_database):
    _, tenant_b = chains
    assert _as_owner(pg_database, "DELETE FROM audit_events WHERE seq = 2", tenant_b) == 1

    result = cli("audit", "verify", "--tenant", "commune-b")

    assert result.exit_code == 1
    assert "commune-b: entrée manquante avant le n°3 (attendu 2)" in result.stdout
    assert "commune-a" not in result.stdout


def test_tampered_platform_chain_is_detected(cli, chains, pg_database):
    assert _as_owner(pg_database, "UPDATE platform_audit_events SET actor = 'quelqu''un' WHERE seq = 1") == 1

    result = cli("audit", "verify")

    assert result.exit_code == 1
    assert "[plateforme]: n°1 a été modifiée" in result.stdout


def test_verify_one_tenant_and_unknown_tenant(cli, chains):
    ok = cli("audit", "verify", "--tenant", "commune-a")
    unknown = cli("audit", "verify", "--tenant", "atlantide")

    assert ok.exit_code == 0 and ok.stdout.startswith("commune-a : ok (3 entrées)")
    assert "[plateforme]" not in ok.stdout
    assert unknown.exit_code == 1 and "Collectivité inconnue" in unknown.stderr
