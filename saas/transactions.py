"""How a request's database transaction ends: COMMIT when it only read, ROLLBACK otherwise.

For the data, committing a transaction that only ran SELECTs is the same as rolling it back.
But psycopg forgets a connection's prepared statements on every ROLLBACK, and a request's
session ends with one (Session.close()): then no query is ever prepared, and every request
plans its queries anew — with row-level security policies, planning costs more than running.
Ending read-only requests with COMMIT lets psycopg prepare the hot queries once per connection.

A listener notes, per connection and transaction, whether anything but a SELECT ran. Anything
else (pending ORM changes, a write, a savepoint, SQLite, a failure, an unknown transaction) is
left to the usual rollback. This is no part of tenancy: it applies to every PostgreSQL engine.
"""

from __future__ import annotations

import sqlalchemy as sa
from flask import Flask
from sqlalchemy import event
from sqlalchemy.orm import Session

# Key in a connection's info: whether its open transaction ran anything but a SELECT.
_WROTE = "saas_tx_wrote"
_BOUNDARY_EVENTS = ("begin", "commit", "rollback")


def _note_statement(conn, cursor, statement, parameters, context, executemany) -> None:
    if conn.dialect.name != "postgresql":
        return
    if statement.lstrip()[:6].upper() == "SELECT":
        conn.info.setdefault(_WROTE, False)
    else:  # writes, WITH … (which may write), savepoints, DDL, anything else
        conn.info[_WROTE] = True


def _transaction_boundary(conn, *args) -> None:
    conn.info.pop(_WROTE, None)


def open_connections(session: Session) -> list:
    """The connections of the session's open transaction."""
    trans = session.get_transaction()
    if trans is None:
        return []
    # SQLAlchemy files each connection under both its engine and itself: deduplicate.
    unique = {id(conn): conn for conn, *_ in trans._connections.values()}
    return list(unique.values())


def end_read_only_transaction(session: Session) -> bool:
    """Commit the session's open transaction if it only ran SELECTs on PostgreSQL.

    Returns True when it committed; otherwise the transaction is left for close() to roll back.
    """
    if not session.in_transaction() or session.new or session.dirty or session.deleted:
        return False
    connections = open_connections(session)
    if not connections or any(
        conn.dialect.name != "postgresql" or conn.info.get(_WROTE, True) for conn in connections
    ):
        return False
    # Objects keep their loaded state, as when close() rolls back: a streamed response may
    # still read them after the teardown.
    expire, session.expire_on_commit = session.expire_on_commit, False
    try:
        session.commit()
    except Exception:  # the connection is gone or the commit failed: close() rolls back
        return False
    finally:
        session.expire_on_commit = expire
    return True


def install() -> None:
    """Track reads and writes on every engine (idempotent)."""
    if event.contains(sa.engine.Engine, "before_cursor_execute", _note_statement):
        return
    event.listen(sa.engine.Engine, "before_cursor_execute", _note_statement)
    for name in _BOUNDARY_EVENTS:
        event.listen(sa.engine.Engine, name, _transaction_boundary)


def init_app(app: Flask, db) -> None:
    """End each app context's read-only transaction with COMMIT.

    Call after Flask-SQLAlchemy's init_app: teardowns run in reverse order, so this one runs
    before the session is removed.
    """
    install()

    @app.teardown_appcontext
    def _end_read_only_transaction(exc) -> None:
        if exc is None and db.session.registry.has():
            end_read_only_transaction(db.session())
