"""How a request's database transaction ends: COMMIT when it wrote nothing, ROLLBACK otherwise.

A request that fails — an unhandled exception, or any answer with a status of 500 or more —
always ends with ROLLBACK, whatever it executed: what is left of its transaction is never
committed. (Services commit their own unit of work when it is complete; what can still fail
after that, turning the data into an answer, must not be able to fail on stored data, see
Document.retention_end.)

For the data, committing a transaction that wrote nothing is the same as rolling it back. But
psycopg forgets a connection's prepared statements on every ROLLBACK, and a request's session
ends with one (Session.close()): then no query is ever prepared, and every request plans its
queries anew — with row-level security policies, planning costs more than running. Ending
read-only requests with COMMIT lets psycopg prepare the hot queries once per connection.

Whether the transaction wrote is not guessed from the statements sent (a SELECT can call a
function that writes, a query string can hold several statements): PostgreSQL gives a
transaction an id at its first write of any kind, and the COMMIT is sent behind a check of
exactly that, in the same round trip. A transaction that wrote fails the check, which aborts it
and skips the COMMIT; the usual rollback then ends it. Pending ORM changes, savepoints, SQLite
and other drivers are simply left to the rollback. What the check cannot see is what no
rollback undoes either: sequence increments, advisory locks. (NOTIFY, which only a commit
delivers, is not used by the platform.)
"""

from __future__ import annotations

from flask import Flask, g
from sqlalchemy.orm import Session

# Division by zero when the transaction holds an id, i.e. wrote: the error stops the query
# string before its COMMIT. The divisor is computed at run time (the function is volatile).
_COMMIT_UNLESS_WRITTEN = b"SELECT 1 / (pg_current_xact_id_if_assigned() IS NULL)::int; COMMIT"


def open_connections(session: Session) -> list:
    """The connections of the session's open transaction."""
    trans = session.get_transaction()
    if trans is None:
        return []
    # SQLAlchemy files each connection under both its engine and itself: deduplicate.
    unique = {id(conn): conn for conn, *_ in trans._connections.values()}
    return list(unique.values())


def end_read_only_transaction(session: Session) -> bool:
    """Commit the session's open transaction if PostgreSQL says it wrote nothing.

    Returns True when it committed; otherwise the transaction is left for close() to roll back.
    """
    if (not session.in_transaction() or session.in_nested_transaction()
            or session.new or session.dirty or session.deleted):
        return False
    connections = open_connections(session)
    if len(connections) != 1 or connections[0].dialect.name != "postgresql":
        return False
    pgconn = getattr(connections[0].connection.dbapi_connection, "pgconn", None)
    if pgconn is None:
        return False
    from psycopg import pq

    if pgconn.transaction_status != pq.TransactionStatus.INTRANS:
        return False  # idle (nothing to end) or already failed
    try:
        pgconn.exec_(_COMMIT_UNLESS_WRITTEN)
    except Exception:  # the connection is gone: close() rolls back (or discards it)
        return False
    if pgconn.transaction_status != pq.TransactionStatus.IDLE:
        return False  # it wrote: the check aborted it, close() sends the ROLLBACK
    # The server has committed; SQLAlchemy now ends its own transaction, and psycopg, seeing
    # the connection idle, sends nothing. Objects keep their loaded state, as when close()
    # rolls back: a streamed response may still read them after the teardown.
    expire, session.expire_on_commit = session.expire_on_commit, False
    try:
        session.commit()
    finally:
        session.expire_on_commit = expire
    return True


_FAILED = "saas_request_failed"


def init_app(app: Flask, db) -> None:
    """End each app context's transaction: ROLLBACK when the request failed, else COMMIT if
    it wrote nothing (ROLLBACK otherwise).

    Call after Flask-SQLAlchemy's init_app: teardowns run in reverse order, so this one runs
    before the session is removed.
    """

    @app.after_request
    def _note_server_error(response):
        # Also run for the 500 answer Flask makes of an unhandled exception.
        if response.status_code >= 500:
            setattr(g, _FAILED, True)
        return response

    @app.teardown_appcontext
    def _end_transaction(exc) -> None:
        if not db.session.registry.has():
            return
        if exc is not None or g.get(_FAILED):
            db.session.rollback()
            return
        end_read_only_transaction(db.session())
