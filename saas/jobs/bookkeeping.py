"""Side transactions: job records written at once, independent of the running job's own transaction.

Claims, heartbeats, progress, exactly-once effect records and failed outcomes use them.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

_SET_RLS = sa.text(
    "SELECT set_config('app.current_tenant', :tenant, true), set_config('app.current_user', '', true)"
)


@contextmanager
def side_transaction(engine: Engine, tenant_id: uuid.UUID | None, *,
                     durable: bool = True) -> Iterator[Connection]:
    """A short transaction of its own, as `tenant_id` for row-level security.

    `durable=False` does not wait for the commit to reach the disk (see bookkeeping()).
    """
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(_SET_RLS, {"tenant": str(tenant_id) if tenant_id else ""})
            if not durable:
                conn.execute(_ASYNC_COMMIT)
        yield conn


# Claims, dispatch marks, heartbeats and progress are bookkeeping whose loss in a database crash
# is harmless: every later step is guarded on the state it expects (a lost claim makes the
# worker's outcome and its exactly-once records refuse to apply, and the job runs again).
# Not waiting for their WAL flush saves several disk syncs per job. Outcomes, effect records
# and enqueues stay fully durable.
_ASYNC_COMMIT = sa.text("SET LOCAL synchronous_commit TO OFF")


@contextmanager
def bookkeeping(engine: Engine) -> Iterator[Connection]:
    """A transaction for job bookkeeping: committed without waiting for the disk."""
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(_ASYNC_COMMIT)
        yield conn
