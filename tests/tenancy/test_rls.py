"""The third wall: PostgreSQL row-level security, exercised with raw SQL as the app role."""

from __future__ import annotations

import uuid

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError

from saas.extensions import db
from saas.tenancy.context import set_tenant, tenant_context
from saas.tenancy.rls import check_app_role

MEMBERSHIP_TENANTS = sa.text("SELECT DISTINCT tenant_id FROM memberships")


@pytest.fixture
def two_communes(tenant_a, tenant_b, make_user):
    make_user(tenant_a, "agent")
    make_user(tenant_a, "admin")
    make_user(tenant_b, "agent")
    return tenant_a, tenant_b


def _raw_tenant_ids() -> set[uuid.UUID]:
    return set(db.session.execute(MEMBERSHIP_TENANTS).scalars())


def test_the_connected_role_cannot_bypass_rls(app):
    conn = db.session.connection()
    assert check_app_role(conn) is None
    row = conn.execute(sa.text(
        "SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user")).one()
    assert (row.rolsuper, row.rolbypassrls) == (False, False)
    owned = conn.execute(sa.text(
        "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = 'public' AND pg_get_userbyid(c.relowner) = current_user")).scalar()
    assert owned == 0


def test_check_app_role_flags_an_owner(app, pg_database):
    engine = sa.create_engine(pg_database.owner_url)
    try:
        with engine.connect() as conn:
            problem = check_app_role(conn)
    finally:
        engine.dispose()
    assert problem is not None and "possède des tables" in problem


def test_raw_sql_sees_only_the_current_tenant(app, two_communes):
    tenant_a, tenant_b = two_communes
    db.session.rollback()
    with tenant_context(tenant_a):
        assert _raw_tenant_ids() == {tenant_a.id}
        count = db.session.execute(sa.text("SELECT count(*) FROM memberships")).scalar()
        assert count == 2
    db.session.rollback()
    with tenant_context(tenant_b):
        assert _raw_tenant_ids() == {tenant_b.id}
    db.session.rollback()


def test_raw_sql_without_tenant_sees_nothing(app, two_communes):
    db.session.rollback()
    set_tenant(None)
    assert db.session.execute(sa.text("SELECT count(*) FROM memberships")).scalar() == 0
    assert db.session.execute(sa.text("SELECT count(*) FROM api_tokens")).scalar() == 0
    # An explicit WHERE on the id changes nothing: the policy is applied first.
    tenant_a = two_communes[0]
    assert db.session.execute(
        sa.text("SELECT count(*) FROM memberships WHERE tenant_id = :t"), {"t": tenant_a.id}
    ).scalar() == 0
    db.session.rollback()


def test_insert_with_another_tenants_id_violates_with_check(app, two_communes, make_user):
    tenant_a, tenant_b = two_communes
    outsider = make_user(None)
    db.session.rollback()
    with tenant_context(tenant_a):
        with pytest.raises(DBAPIError) as excinfo:
            db.session.execute(sa.text(
                "INSERT INTO memberships (id, tenant_id, user_id, role, created_at, updated_at) "
                "VALUES (:id, :t, :u, 'agent', now(), now())"
            ), {"id": uuid.uuid4(), "t": tenant_b.id, "u": outsider.id})
        assert "row-level security" in str(excinfo.value.orig)
        db.session.rollback()
    # The same insert for the current tenant goes through (so the failure above is the policy).
    with tenant_context(tenant_a):
        db.session.execute(sa.text(
            "INSERT INTO memberships (id, tenant_id, user_id, role, created_at, updated_at) "
            "VALUES (:id, :t, :u, 'agent', now(), now())"
        ), {"id": uuid.uuid4(), "t": tenant_a.id, "u": outsider.id})
        db.session.commit()
        assert _raw_tenant_ids() == {tenant_a.id}


def test_update_cannot_move_a_row_to_another_tenant(app, two_communes):
    tenant_a, tenant_b = two_communes
    db.session.rollback()
    with tenant_context(tenant_a):
        with pytest.raises(DBAPIError, match="row-level security"):
            db.session.execute(sa.text("UPDATE memberships SET tenant_id = :b"), {"b": tenant_b.id})
        db.session.rollback()
    with tenant_context(tenant_b):
        # Updating or deleting B's rows from B's context works; A's rows are invisible here.
        deleted = db.session.execute(sa.text("DELETE FROM memberships WHERE tenant_id = :a"),
                                     {"a": tenant_a.id}).rowcount
        assert deleted == 0
        db.session.rollback()


def test_switching_tenant_inside_an_open_transaction_repoints_rls(app, two_communes):
    tenant_a, tenant_b = two_communes
    db.session.rollback()
    with tenant_context(tenant_a):
        assert _raw_tenant_ids() == {tenant_a.id}
        assert db.session().in_transaction()
        connection = db.session.connection()
        with tenant_context(tenant_b):
            # Same transaction, same connection: only the setting moved.
            assert db.session.connection() is connection
            assert _raw_tenant_ids() == {tenant_b.id}
            setting = db.session.execute(
                sa.text("SELECT current_setting('app.current_tenant', true)")).scalar()
            assert setting == str(tenant_b.id)
        assert _raw_tenant_ids() == {tenant_a.id}
    assert _raw_tenant_ids() == set()
    db.session.rollback()


def test_setting_is_transaction_local_and_does_not_leak_through_the_pool(app, two_communes):
    tenant_a, _tenant_b = two_communes
    db.session.rollback()
    with tenant_context(tenant_a):
        assert _raw_tenant_ids() == {tenant_a.id}
        db.session.commit()
    # A raw connection from the same pool, outside the ORM session: nothing is set any more.
    with db.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT current_setting('app.current_tenant', true)")).scalar() in ("", None)
        assert conn.execute(MEMBERSHIP_TENANTS).all() == []


# -- how the settings reach PostgreSQL (saas/tenancy/scoping.py) ---------------------------------


def test_rolled_back_savepoint_does_not_leave_the_wrong_tenant(app, two_communes):
    """A savepoint rollback reverts PostgreSQL's settings: they must be sent again, or the next
    query in B's context would run with A's setting."""
    tenant_a, tenant_b = two_communes
    db.session.rollback()
    with tenant_context(tenant_a):
        assert _raw_tenant_ids() == {tenant_a.id}
        savepoint = db.session.begin_nested()
        with tenant_context(tenant_b):
            assert _raw_tenant_ids() == {tenant_b.id}
            savepoint.rollback()  # PostgreSQL is back to A's setting here
            assert _raw_tenant_ids() == {tenant_b.id}
        assert _raw_tenant_ids() == {tenant_a.id}
    db.session.rollback()


def test_settings_ride_with_begin_and_keep_the_isolation_level(app, two_communes):
    tenant_a, _tenant_b = two_communes
    with db.engine.connect() as conn:
        conn = conn.execution_options(isolation_level="SERIALIZABLE")
        with tenant_context(tenant_a):
            row = conn.execute(sa.text(
                "SELECT current_setting('transaction_isolation'), "
                "current_setting('app.current_tenant', true), (SELECT count(*) FROM memberships)"
            )).one()
        conn.rollback()
    assert tuple(row) == ("serializable", str(tenant_a.id), 2)


def test_refresh_rls_settings_serves_raw_dbapi_use(app, two_communes):
    from saas.tenancy.scoping import refresh_rls_settings

    tenant_a, tenant_b = two_communes
    db.session.rollback()
    with tenant_context(tenant_a):
        assert _raw_tenant_ids() == {tenant_a.id}
        with tenant_context(tenant_b):
            # Code that bypasses SQLAlchemy (a COPY, say) asks for the settings explicitly.
            refresh_rls_settings()
            cursor = db.session.connection().connection.dbapi_connection.cursor()
            cursor.execute("SELECT DISTINCT tenant_id FROM memberships")
            assert {row[0] for row in cursor.fetchall()} == {tenant_b.id}
            cursor.close()
    db.session.rollback()


def test_prescoped_statements_filter_and_refuse_all_tenants(app, two_communes):
    from saas.auth.models import Membership
    from saas.tenancy.scoping import prescoped

    tenant_a, tenant_b = two_communes
    stmt = prescoped(sa.select(Membership.tenant_id))
    with tenant_context(tenant_b):
        assert set(db.session.execute(stmt).scalars()) == {tenant_b.id}
        with pytest.raises(ValueError, match="prescoped"):
            db.session.execute(stmt.execution_options(all_tenants=True))
    assert db.session.execute(stmt).all() == []
    db.session.rollback()
