"""Migration 0005 (login throttles, secrets out of the app role's reach) upgrades and
downgrades, on PostgreSQL with its grants and on SQLite."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config

import saas
from saas.tenancy.rls import grant_app_role
from tests.support.postgres import create_test_database, drop_test_database


def _alembic(conn) -> Config:
    root = Path(saas.__file__).parent / "migrations"
    cfg = Config(str(root / "alembic.ini"))
    cfg.set_main_option("script_location", str(root))
    cfg.attributes["connection"] = conn
    return cfg


def _app_can_read_hashes(url: str) -> bool:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT password_hash FROM users")).all()
        return True
    except sa.exc.ProgrammingError as exc:
        assert "permission denied" in str(exc)
        return False
    finally:
        engine.dispose()


def test_upgrade_downgrade_upgrade_on_postgresql(app):
    tdb = create_test_database("mig5")
    owner = sa.create_engine(tdb.owner_url)
    try:
        with owner.begin() as conn:
            command.upgrade(_alembic(conn), "0004")
            # The grants as they were before 0005: every table, every column.
            conn.execute(sa.text(f'GRANT SELECT ON ALL TABLES IN SCHEMA public TO "{tdb.app_role}"'))
        assert _app_can_read_hashes(tdb.app_url)
        with owner.begin() as conn:
            command.upgrade(_alembic(conn), "0005")
            grant_app_role(conn, tdb.app_role)  # as `saas init` does after upgrading
        assert not _app_can_read_hashes(tdb.app_url)
        with owner.begin() as conn:
            command.downgrade(_alembic(conn), "0004")
            tables = set(sa.inspect(conn).get_table_names())
            assert "login_throttles" not in tables and "auth_secret_reads" not in tables
        assert _app_can_read_hashes(tdb.app_url)  # the table-wide grant is back
        with owner.begin() as conn:
            command.upgrade(_alembic(conn), "head")
            grant_app_role(conn, tdb.app_role)
        assert not _app_can_read_hashes(tdb.app_url)
    finally:
        owner.dispose()
        drop_test_database(tdb)


def test_upgrade_downgrade_upgrade_on_sqlite(app, tmp_path):
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'mig.db'}")
    try:
        for target, present in (("head", True), ("0004", False), ("head", True)):
            with engine.begin() as conn:
                cfg = _alembic(conn)
                (command.upgrade if present else command.downgrade)(cfg, target)
                columns = {c["name"] for c in sa.inspect(conn).get_columns("users")}
                assert ("totp_enabled" in columns) is present
                assert ("login_throttles" in sa.inspect(conn).get_table_names()) is present
    finally:
        engine.dispose()



def test_only_the_app_role_may_call_the_secret_functions(app, pg_database):
    """SECURITY DEFINER functions are executable by PUBLIC unless revoked: another role of the
    cluster must not read account secrets through them."""
    import uuid as uuid_mod

    from tests.support.postgres import ADMIN_URL

    admin = sa.create_engine(sa.engine.make_url(ADMIN_URL).set(database=pg_database.name))
    role = f"mt_other_{uuid_mod.uuid4().hex[:8]}"
    calls = ("auth_password_hash(gen_random_uuid())", "auth_totp_secret(gen_random_uuid())",
             "auth_recovery_codes_left(gen_random_uuid())",
             "auth_use_recovery_code(gen_random_uuid(), 'x')",
             "auth_set_recovery_codes(gen_random_uuid(), ARRAY['x'])")
    try:
        with admin.begin() as conn:
            conn.execute(sa.text(f'CREATE ROLE "{role}" NOLOGIN'))
            conn.execute(sa.text(f'GRANT USAGE ON SCHEMA public TO "{role}"'))
        with admin.connect() as conn:
            for call in calls:
                tx = conn.begin()
                conn.execute(sa.text(f'SET LOCAL ROLE "{role}"'))
                with pytest.raises(sa.exc.ProgrammingError, match="permission denied for function"):
                    conn.execute(sa.text(f"SELECT {call}"))
                tx.rollback()
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f'REVOKE ALL ON SCHEMA public FROM "{role}"'))
            conn.execute(sa.text(f'DROP ROLE IF EXISTS "{role}"'))
        admin.dispose()
