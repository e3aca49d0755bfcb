"""The second wall: ORM queries on TenantScoped models are filtered on the current tenant, and
writes across tenants raise before reaching the database."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session, aliased

from saas.auth.models import Membership, User
from saas.extensions import db
from saas.tenancy.context import tenant_context
from saas.tenancy.scoping import CrossTenantWrite


@pytest.fixture
def members(tenant_a, tenant_b, make_user):
    """Two members in A, one in B; returns (tenant_a, tenant_b)."""
    make_user(tenant_a, "agent")
    make_user(tenant_a, "admin")
    make_user(tenant_b, "elu")
    return tenant_a, tenant_b


def _tenant_ids(stmt=None) -> list:
    stmt = stmt if stmt is not None else sa.select(Membership)
    return [m.tenant_id for m in db.session.execute(stmt).scalars()]


def test_no_tenant_context_reads_nothing(app, members):
    assert _tenant_ids() == []
    assert db.session.execute(sa.select(sa.func.count(Membership.id))).scalar() == 0
    # Not even through a primary-key get or a join from a platform table.
    with tenant_context(members[0]):
        any_id = db.session.execute(sa.select(Membership.id)).scalars().first()
    assert any_id is not None
    db.session.expire_all()
    assert db.session.get(Membership, any_id, populate_existing=True) is None
    joined = db.session.execute(sa.select(User.email).join(Membership, Membership.user_id == User.id))
    assert joined.all() == []


def test_tenant_context_reads_only_that_tenant(app, members):
    tenant_a, tenant_b = members
    with tenant_context(tenant_a):
        assert sorted(_tenant_ids()) == [tenant_a.id, tenant_a.id]
        # Aliases, subqueries and joins are filtered too.
        other = aliased(Membership)
        pairs = db.session.execute(
            sa.select(Membership.id, other.id).join(other, other.role != Membership.role)).all()
        assert len(pairs) == 2
        sub = sa.select(Membership.user_id).scalar_subquery()
        assert db.session.execute(
            sa.select(sa.func.count(User.id)).where(User.id.in_(sub))).scalar() == 2
    with tenant_context(tenant_b):
        assert _tenant_ids() == [tenant_b.id]
        # Bulk ORM updates and deletes only touch the current tenant's rows.
        updated = db.session.execute(sa.update(Membership).values(role="agent")).rowcount
        assert updated == 1
        db.session.rollback()


def test_creating_an_object_of_another_tenant_raises(app, members, make_user):
    tenant_a, tenant_b = members
    outsider = make_user(None)
    with tenant_context(tenant_a):
        db.session.add(Membership(user_id=outsider.id, role="agent", tenant_id=tenant_b.id))
        with pytest.raises(CrossTenantWrite):
            db.session.flush()
        db.session.rollback()
        # Without a tenant_id, the current tenant is filled in.
        membership = Membership(user_id=outsider.id, role="agent")
        db.session.add(membership)
        db.session.flush()
        assert membership.tenant_id == tenant_a.id
        db.session.rollback()
    # Without any tenant context, creating a tenant row is refused outright.
    db.session.add(Membership(user_id=outsider.id, role="agent"))
    with pytest.raises(CrossTenantWrite):
        db.session.flush()
    db.session.rollback()


def test_changing_tenant_id_raises(app, members):
    tenant_a, tenant_b = members
    with tenant_context(tenant_a):
        membership = db.session.execute(sa.select(Membership)).scalars().first()
        membership.tenant_id = tenant_b.id
        with pytest.raises(CrossTenantWrite):
            db.session.flush()
        db.session.rollback()


def test_modifying_or_deleting_another_tenants_object_raises(app, members):
    tenant_a, tenant_b = members
    with tenant_context(tenant_b):
        membership_b = db.session.execute(sa.select(Membership)).scalar_one()
    with tenant_context(tenant_a):
        membership_b.role = "admin"
        with pytest.raises(CrossTenantWrite):
            db.session.flush()
        db.session.rollback()
    with tenant_context(tenant_b):
        membership_b = db.session.execute(sa.select(Membership)).scalar_one()
    with tenant_context(tenant_a):
        db.session.delete(membership_b)
        with pytest.raises(CrossTenantWrite):
            db.session.flush()
        db.session.rollback()


def test_all_tenants_option_sees_both_for_platform_use(app, members):
    tenant_a, tenant_b = members
    everything = sa.select(Membership).execution_options(all_tenants=True)
    # The ORM filter is lifted, but RLS still applies: without a tenant, the database shows none.
    assert _tenant_ids(everything) == []
    with tenant_context(tenant_a):
        assert set(_tenant_ids(everything)) == {tenant_a.id}
    # Platform code that must see every commune walks them one context at a time.
    seen = set()
    for tenant in (tenant_a, tenant_b):
        with tenant_context(tenant):
            seen |= set(_tenant_ids(everything))
    assert seen == {tenant_a.id, tenant_b.id}


def test_all_tenants_option_lifts_the_orm_filter(app, members, pg_database):
    """With RLS out of the picture (owner role, RLS forced off for the check), the option alone
    decides: it really is the ORM filter that all_tenants=True removes."""
    tenant_a, tenant_b = members
    db.session.rollback()  # release the app session's locks before the owner alters the table
    engine = sa.create_engine(pg_database.owner_url)
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("ALTER TABLE memberships NO FORCE ROW LEVEL SECURITY"))
            with Session(bind=conn) as session, tenant_context(tenant_a):
                scoped = session.execute(sa.select(Membership)).scalars().all()
                unscoped = session.execute(
                    sa.select(Membership).execution_options(all_tenants=True)).scalars().all()
            conn.rollback()  # ALTER TABLE was transactional: FORCE is back
    finally:
        engine.dispose()
    assert {m.tenant_id for m in scoped} == {tenant_a.id}
    assert {m.tenant_id for m in unscoped} == {tenant_a.id, tenant_b.id}
