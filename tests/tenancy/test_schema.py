"""Every table is tenant-scoped under forced RLS, or explicitly a platform table (GitLab's
sharding-key test); and the models agree with the migrations."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

import saas
from saas.extensions import db
from saas.tenancy.rls import PLATFORM_TABLES
from saas.tenancy.scoping import TenantScoped


@pytest.fixture
def owner_conn(app, pg_database):
    _import_every_model_module()
    engine = sa.create_engine(pg_database.owner_url)
    with engine.connect() as conn:
        yield conn
    engine.dispose()


def _catalog(conn) -> dict[str, dict]:
    rows = conn.execute(sa.text("""
        SELECT c.relname AS name, c.relrowsecurity AS rls, c.relforcerowsecurity AS forced,
               (SELECT count(*) FROM pg_policy p WHERE p.polrelid = c.oid) AS policies,
               (SELECT format_type(a.atttypid, a.atttypmod) || CASE WHEN a.attnotnull THEN ' NOT NULL' ELSE '' END
                  FROM pg_attribute a
                 WHERE a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped) AS tenant_col
          FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p')
    """)).mappings()
    return {r["name"]: dict(r) for r in rows}


def test_every_table_is_tenant_scoped_or_allowlisted(owner_conn):
    catalog = _catalog(owner_conn)
    assert "memberships" in catalog and "tenants" in catalog
    problems = []
    for name, info in sorted(catalog.items()):
        if name in PLATFORM_TABLES:
            continue
        missing = []
        if info["tenant_col"] != "uuid NOT NULL":
            missing.append(f"tenant_id uuid NOT NULL (found {info['tenant_col']})")
        if not info["rls"]:
            missing.append("ENABLE ROW LEVEL SECURITY")
        if not info["forced"]:
            missing.append("FORCE ROW LEVEL SECURITY")
        if not info["policies"]:
            missing.append("a policy")
        if missing:
            problems.append(f"{name}: missing {', '.join(missing)} — call enable_rls(op, '{name}') "
                            "in the migration, or add the table to PLATFORM_TABLES with a reason")
    assert problems == []


def test_platform_allowlist_is_real_and_explained(owner_conn):
    catalog = _catalog(owner_conn)
    assert set(PLATFORM_TABLES) - set(catalog) == set(), "allowlisted tables that do not exist"
    assert all(reason.strip() for reason in PLATFORM_TABLES.values())


def test_every_tenant_scoped_model_is_rls_protected(owner_conn):
    catalog = _catalog(owner_conn)
    scoped = sorted(m.class_.__table__.name for m in db.Model.registry.mappers
                    if issubclass(m.class_, TenantScoped))
    assert "memberships" in scoped and "api_tokens" in scoped
    for table in scoped:
        assert table not in PLATFORM_TABLES, f"{table} is tenant-scoped but allowlisted"
        info = catalog.get(table)
        assert info is not None, f"model table {table} has no migration"
        assert info["rls"] and info["forced"] and info["policies"], table
        assert info["tenant_col"] == "uuid NOT NULL", table


def test_policies_use_the_transaction_setting(owner_conn):
    rows = owner_conn.execute(sa.text(
        "SELECT tablename, policyname, qual, with_check FROM pg_policies WHERE schemaname = 'public'"
    )).mappings().all()
    tenant_policies = [r for r in rows if r["policyname"] == "tenant_isolation"]
    assert tenant_policies
    for row in tenant_policies:
        assert "current_setting('app.current_tenant'" in row["qual"], row["tablename"]
        assert row["with_check"] and "current_setting('app.current_tenant'" in row["with_check"]


def _import_every_model_module() -> None:
    """Load every saas.*.models module, so a model nobody imports yet is compared too."""
    root = Path(saas.__file__).parent
    for path in sorted(root.rglob("models.py")):
        parts = path.relative_to(root.parent).with_suffix("").parts
        importlib.import_module(".".join(parts))


def test_models_and_migrations_agree(owner_conn):
    context = MigrationContext.configure(owner_conn, opts={"compare_type": True})
    diff = compare_metadata(context, db.metadata)
    assert diff == [], "models and migrations differ:\n" + "\n".join(map(repr, diff))
