"""Tenant scoping by construction, wired into SQLAlchemy once.

- SELECT, UPDATE and DELETE through the ORM on a `TenantScoped` model get
  `tenant_id = current tenant` added automatically (no tenant: nothing matches).
- New objects get the current tenant; writing an object of another tenant raises.
- On PostgreSQL, `set_config('app.current_tenant', …, true)` (transaction-local) reaches each
  transaction before its first statement, and again before the next statement whenever the
  context changed, so row-level security enforces the same rule on raw SQL.

The one way around the ORM filter is the execution option `all_tenants=True`, kept for
platform operations (the CLI, the intercommunal console) and still bounded by RLS.
"""

from __future__ import annotations

import re
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


# The tenant filter is one constant option; the tenant id travels as a bound parameter. A lambda
# closing over the id made SQLAlchemy rebuild the criteria for every query (a third of the
# Python time of a simple API read). Without a tenant the parameter is NULL: nothing matches.
_TENANT_PARAM = "saas_current_tenant"
_TENANT_CRITERIA = orm.with_loader_criteria(
    TenantScoped,
    lambda cls: cls.tenant_id == sa.bindparam("saas_current_tenant", type_=sa.Uuid()),  # _TENANT_PARAM
    include_aliases=True,
    track_closure_variables=False,
)
_PRESCOPED = "saas_prescoped"


def prescoped(statement):
    """Add the tenant filter once to a statement built at import time, for hot paths.

    The filter is added to every query at execution anyway; doing it ahead lets SQLAlchemy
    compute the statement's cache key once instead of on every execution. Such a statement
    cannot be run with `all_tenants=True`.
    """
    return statement.options(_TENANT_CRITERIA).execution_options(**{_PRESCOPED: True})


def _on_execute(state: orm.ORMExecuteState) -> None:
    if not (state.is_select or state.is_update or state.is_delete):
        return
    if state.execution_options.get("all_tenants"):
        if state.execution_options.get(_PRESCOPED):
            raise ValueError("a prescoped() statement always filters on the tenant: "
                             "build another one for all_tenants=True")
        return
    if not state.execution_options.get(_PRESCOPED):
        state.statement = state.statement.options(_TENANT_CRITERIA)
    tid = current_tenant_id()
    params = state.parameters
    if isinstance(params, list | tuple):  # executemany (bulk UPDATE by primary key)
        state.parameters = [{**p, _TENANT_PARAM: tid} for p in params]
    else:
        state.parameters = {**(params or {}), _TENANT_PARAM: tid}


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


# Sent on the DBAPI connection itself (pyformat, as psycopg expects), not through SQLAlchemy:
# it runs from inside SQLAlchemy's own execution of another statement.
_SET_SQL = (
    "SELECT set_config('app.current_tenant', %(tenant)s, true), "
    "set_config('app.current_user', %(user)s, true)"
)
# Key in the DBAPI connection's info: the (tenant, user) its open transaction carries, if known.
_PUSHED = "saas_rls_pushed"


def _rls_values() -> tuple[str, str]:
    tid, uid = current_tenant_id(), current_user_id()
    return (str(tid) if tid else "", str(uid) if uid else "")


def _forget_pushed(conn, *args) -> None:
    # A transaction begins or ends, or a savepoint is rolled back: PostgreSQL's transaction-local
    # settings are back to earlier values that are not assumed here. The next statement re-sends.
    conn.info.pop(_PUSHED, None)


def _push(conn, dbapi_connection, wanted: tuple[str, str]) -> None:
    if not _begin_with_settings(dbapi_connection, wanted):
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(_SET_SQL, {"tenant": wanted[0], "user": wanted[1]})
        finally:
            cursor.close()
    conn.info[_PUSHED] = wanted


_UUID_OR_EMPTY = re.compile(r"^(?:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})?$")


def _begin_with_settings(dbapi_connection, wanted: tuple[str, str]) -> bool:
    """On psycopg 3, open the transaction and set the values in one round trip.

    psycopg sends its own BEGIN (a round trip) before the first statement of a transaction;
    the settings would be a second one. Sending "BEGIN; SELECT set_config(…)" as one simple
    query, when no transaction is open yet, makes the RLS settings free. Returns False (the
    caller uses a plain cursor) on other drivers, in autocommit, or inside a transaction.
    """
    pgconn = getattr(dbapi_connection, "pgconn", None)
    if pgconn is None or dbapi_connection.autocommit:
        return False
    from psycopg import errors, pq

    if pgconn.transaction_status != pq.TransactionStatus.IDLE:
        return False
    # Inlined, as a multi-statement query takes no parameters: only UUIDs (or "") ever get here.
    if not all(_UUID_OR_EMPTY.match(value) for value in wanted):
        raise ValueError("RLS settings must be UUIDs")
    # SET LOCAL is set_config(…, true) as a utility command: no planner, no executor, no row
    # to send back, which makes the round trip measurably cheaper than a SELECT.
    sql = (
        f"{_begin_command(dbapi_connection)}; "
        f"SET LOCAL app.current_tenant = '{wanted[0]}'; "
        f"SET LOCAL app.\"current_user\" = '{wanted[1]}'"
    )
    result = pgconn.exec_(sql.encode("ascii"))
    if result.status != pq.ExecStatus.COMMAND_OK:
        raise errors.error_from_result(result, encoding=dbapi_connection.info.encoding)
    return True


def _begin_command(dbapi_connection) -> str:
    """The BEGIN psycopg itself would send (isolation level, read only, deferrable)."""
    parts = ["BEGIN"]
    level = dbapi_connection.isolation_level
    if level is not None:
        parts.append("ISOLATION LEVEL " + level.name.replace("_", " "))
    if dbapi_connection.read_only is not None:
        parts.append("READ ONLY" if dbapi_connection.read_only else "READ WRITE")
    if dbapi_connection.deferrable is not None:
        parts.append("DEFERRABLE" if dbapi_connection.deferrable else "NOT DEFERRABLE")
    return " ".join(parts)


_SAVEPOINT_CONTROL = ("SAVEPOINT", "RELEASE SAVEPOINT", "ROLLBACK TO SAVEPOINT")


def _before_cursor_execute(conn, cursor, statement, parameters, context, executemany) -> None:
    """Send the context's RLS settings ahead of a statement unless the transaction has them.

    Lazily, so a request pays one round trip per transaction (none when nothing is queried
    after a context switch) instead of one per switch.
    """
    if conn.dialect.name != "postgresql" or statement.lstrip()[:24].upper().startswith(
        _SAVEPOINT_CONTROL
    ):
        # Savepoint control may run in an aborted transaction, where any other SQL fails.
        return
    wanted = _rls_values()
    if conn.info.get(_PUSHED) != wanted:
        # A fresh plain cursor: the statement's own may be a named (server-side) cursor.
        _push(conn, cursor.connection, wanted)


def refresh_rls_settings() -> None:
    """Send the RLS settings now on the app session's open connections (if they changed).

    Statements run through SQLAlchemy never need this (they get the settings first); it is
    for code that hands the DBAPI connection to something else, such as a COPY.
    """
    if not has_app_context():
        return
    from saas.extensions import db

    session = db.session()
    if not session.in_transaction():
        return
    wanted = _rls_values()
    from saas.transactions import open_connections

    for conn in open_connections(session):
        if conn.dialect.name == "postgresql" and conn.info.get(_PUSHED) != wanted:
            _push(conn, conn.connection.dbapi_connection, wanted)


# Engine events after which the transaction-local settings are no longer known.
_RESET_EVENTS = ("begin", "commit", "rollback", "rollback_savepoint")


def install(session_class=Session) -> None:
    """Register the scoping hooks on every ORM session and every engine (idempotent)."""
    if event.contains(session_class, "do_orm_execute", _on_execute):
        return
    event.listen(session_class, "do_orm_execute", _on_execute)
    event.listen(session_class, "before_flush", _before_flush)
    for name in _RESET_EVENTS:
        event.listen(sa.engine.Engine, name, _forget_pushed)
    event.listen(sa.engine.Engine, "before_cursor_execute", _before_cursor_execute)
