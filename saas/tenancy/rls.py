"""PostgreSQL row-level security: the third wall, and the roles it relies on."""

from __future__ import annotations

import sqlalchemy as sa

# Tables that are deliberately not tenant-scoped. Anything else must carry tenant_id with RLS
# forced and a policy (tests/tenancy/test_schema.py fails otherwise).
PLATFORM_TABLES = {
    "alembic_version": "migration bookkeeping",
    "tenants": "the tenant registry itself",
    "tenant_domains": "host routing table, read before any tenant is known",
    "users": "people are platform-wide; memberships carry the tenant",
    "used_nonces": "one-time token ledger, holds no tenant data",
    "auth_secret_reads": "per-connection count of account secrets read in the current "
                         "transaction; the application role has no right on it",
    "auth_recovery_codes": "digests of second-factor recovery codes; accounts are platform-wide "
                           "and the application role has no right on it",
    "login_throttles": "failed-login counters per (account, client network), HMAC keys only; "
                       "accounts are platform-wide",
    "platform_audit_events": "the intercommunal IT staff's own audit chain",
    "job_queue": "job scheduling envelope (ids, states, times); payloads stay in RLS-protected jobs",
    "platform_jobs": "payloads of platform-wide jobs (backups, purges), which belong to no commune",
    "job_wait_histogram": "queue-wait counters per queue, for Prometheus; no tenant data",
    "ged_usage": "bytes stored per commune (quota and intercommunal reports); no document data",
    "ged_search": "GED full-text index: RLS enabled (the app role sees its commune only) but not "
                  "forced, so ged_search_top() (owner, filters on app.current_tenant) can use "
                  "its GIN index; see migrations 0003 and 0004",
}

# Columns the application role may not select: it reads one account's value at a time
# through the SECURITY DEFINER functions of migration 0005 (saas.auth.credentials).
SECRET_COLUMNS = {"users": ("password_hash", "totp_secret_enc")}
# Tables only the owner's functions use.
OWNER_ONLY_TABLES = ("auth_secret_reads", "auth_recovery_codes")

# Tables the application role may only read and append to.
APPEND_ONLY_TABLES = ("audit_events", "platform_audit_events")

TENANT_PREDICATE = "tenant_id = NULLIF(current_setting('app.current_tenant', true), '')::uuid"
USER_PREDICATE = "user_id = NULLIF(current_setting('app.current_user', true), '')::uuid"


def enable_rls(op, table: str, *, readable_by_user: bool = False) -> None:
    """Force RLS on a tenant table (no-op on SQLite); call from migrations after create_table."""
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
    op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
    op.execute(
        f"CREATE POLICY tenant_isolation ON {table} "
        f"USING ({TENANT_PREDICATE}) WITH CHECK ({TENANT_PREDICATE})"
    )
    if readable_by_user:
        # A person sees their own rows in every tenant (the commune switcher), read-only.
        op.execute(f"CREATE POLICY own_rows ON {table} FOR SELECT USING ({USER_PREDICATE})")


def grant_app_role(conn: sa.Connection, role: str) -> None:
    """Give the non-owner application role exactly the rights it needs."""
    q = sa.sql.quoted_name(role, quote=True)
    ident = conn.dialect.identifier_preparer.quote(q)
    conn.execute(sa.text(f"GRANT USAGE ON SCHEMA public TO {ident}"))
    conn.execute(sa.text(f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {ident}"))
    conn.execute(sa.text(f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {ident}"))
    conn.execute(sa.text(f"GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA public TO {ident}"))
    conn.execute(sa.text(f"REVOKE INSERT, UPDATE, DELETE ON alembic_version FROM {ident}"))
    for table in APPEND_ONLY_TABLES:
        conn.execute(sa.text(f"REVOKE UPDATE, DELETE, TRUNCATE ON {table} FROM {ident}"))
    existing = set(sa.inspect(conn).get_table_names())
    for table in OWNER_ONLY_TABLES:
        if table in existing:
            conn.execute(sa.text(f"REVOKE ALL ON {table} FROM {ident}"))
    for table, hidden in SECRET_COLUMNS.items():
        if table not in existing:
            continue
        # A table-wide SELECT would cover every column: replace it by the columns one by one
        # (re-run at each `saas init`, so a column added later is readable, unless listed).
        columns = [c["name"] for c in sa.inspect(conn).get_columns(table) if c["name"] not in hidden]
        quoted = ", ".join(conn.dialect.identifier_preparer.quote(c) for c in columns)
        conn.execute(sa.text(f"REVOKE SELECT ON {table} FROM {ident}"))
        conn.execute(sa.text(f"GRANT SELECT ({quoted}) ON {table} TO {ident}"))


def check_app_role(conn: sa.Connection) -> str | None:
    """Return why the connected role would bypass RLS, or None if it is safe."""
    row = conn.execute(sa.text(
        "SELECT rolsuper, rolbypassrls, current_user FROM pg_roles WHERE rolname = current_user"
    )).one()
    if row.rolsuper:
        return f"le rôle {row.current_user} est superutilisateur : la sécurité par ligne serait contournée"
    if row.rolbypassrls:
        return f"le rôle {row.current_user} a BYPASSRLS : la sécurité par ligne serait contournée"
    owned = conn.execute(sa.text(
        "SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND tableowner = current_user"
    )).scalar()
    if owned:
        return f"le rôle {row.current_user} possède des tables : utilisez un rôle applicatif distinct"
    return None
