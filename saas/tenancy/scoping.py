"""Tenant scoping by construction, wired into SQLAlchemy once.

- SELECT, UPDATE and DELETE through the ORM on a `TenantScoped` model get
  `tenant_id = current tenant` added automatically (no tenant: nothing matches).
- New objects get the current tenant; writing an object of another tenant raises.
- On PostgreSQL, each transaction starts with `set_config('app.current_tenant', …, true)`
  so row-level security enforces the same rule on raw SQL.

The one way around the ORM filter is the execution option `all_tenants=True`, kept for
platform operations (the CLI, the intercommunal console) and still bounded by RLS.
"""

from __future__ import annotations

import uuid

import sqlalchemy as sa
from flask import has_app_context
from sqlalchemy import event, orm
from sqlalchemy.orm import Mapped, Session, mapped_column

from saas.tenancy.context import current_tenant_id, current_user_id


class CrossTenantWrite(RuntimeError):
    """An object of one tenant was about to be written from another tenant's context."""


class TenantScoped:
    """Mixin for every tenant-owned model: a NOT NULL tenant_id and automatic scoping."""

    @orm.declared_attr
    def tenant_id(cls) -> Mapped[uuid.UUID]:  # noqa: N805
        return mapped_column(
            sa.Uuid, sa.ForeignKey("tenants.id", ondelete="RESTRICT"), nullable=False, index=True
        )


def _on_execute(state: orm.ORMExecuteState) -> None:
    if not (state.is_select or state.is_update or state.is_delete):
        return
    if state.execution_options.get("all_tenants"):
        return
    tid = current_tenant_id()
    if tid is None:
        criteria = orm.with_loader_criteria(TenantScoped, lambda cls: sa.false(), include_aliases=True)
    else:
        criteria = orm.with_loader_criteria(
            TenantScoped, lambda cls: cls.tenant_id == tid, include_aliases=True
        )
    state.statement = state.statement.options(criteria)


def _before_flush(session: Session, flush_context, instances) -> None:
    tid = current_tenant_id()
    for obj in session.new:
        if not isinstance(obj, TenantScoped):
            continue
        if obj.tenant_id is None:
            if tid is None:
                raise CrossTenantWrite(f"{type(obj).__name__} created without a tenant context")
            obj.tenant_id = tid
        elif tid is not None and obj.tenant_id != tid:
            raise CrossTenantWrite(f"{type(obj).__name__} of another tenant created in this context")
    for obj in session.dirty:
        if isinstance(obj, TenantScoped):
            hist = sa.inspect(obj).attrs.tenant_id.history
            if hist.deleted and hist.deleted[0] is not None:
                raise CrossTenantWrite("tenant_id of an existing row cannot change")
            if tid is not None and obj.tenant_id != tid:
                raise CrossTenantWrite(f"{type(obj).__name__} of another tenant modified")
    for obj in session.deleted:
        if isinstance(obj, TenantScoped) and tid is not None and obj.tenant_id != tid:
            raise CrossTenantWrite(f"{type(obj).__name__} of another tenant deleted")


_SET_SQL = sa.text(
    "SELECT set_config('app.current_tenant', :tenant, true), "
    "set_config('app.current_user', :user, true)"
)


def _rls_params() -> dict:
    tid, uid = current_tenant_id(), current_user_id()
    return {"tenant": str(tid) if tid else "", "user": str(uid) if uid else ""}


def _after_begin(session: Session, transaction, connection) -> None:
    if connection.dialect.name == "postgresql":
        connection.execute(_SET_SQL, _rls_params())


def refresh_rls_settings() -> None:
    """Re-send the RLS settings if the app session has a transaction open."""
    if not has_app_context():
        return
    from saas.extensions import db

    session = db.session()
    if not session.in_transaction():
        return
    for conn in _open_connections(session):
        if conn.dialect.name == "postgresql":
            conn.execute(_SET_SQL, _rls_params())


def _open_connections(session: Session):
    trans = session.get_transaction()
    if trans is None:
        return []
    return [conn for conn, *_ in trans._connections.values()]


def install(session_class=Session) -> None:
    """Register the scoping hooks on every ORM session (idempotent)."""
    if event.contains(session_class, "do_orm_execute", _on_execute):
        return
    event.listen(session_class, "do_orm_execute", _on_execute)
    event.listen(session_class, "before_flush", _before_flush)
    event.listen(session_class, "after_begin", _after_begin)
