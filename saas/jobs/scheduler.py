"""Periodic work: recurring jobs, plus the dispatcher's and the reconciler's own passes.

Feature code declares what recurs, next to its job kinds:

    periodic("actes.poll_ack", "actes.poll_ack", every=300, per_tenant=True)
    periodic("backup.nightly", "backup.run", daily_at="02:30")

Each occurrence is enqueued once with the idempotency key `periodic:<name>:<slot>`, where the
slot names the interval (every N seconds) or the day (daily at HH:MM, Europe/Paris). Several
schedulers may tick at the same time, a restarted one may tick again: the key makes every
occurrence exactly one job. An occurrence missed while nothing ran (the platform was down at
02:30) is enqueued as soon as a scheduler runs again; older ones are not replayed.

Every `saas worker` runs a scheduler process; a PostgreSQL advisory lock, held on a dedicated
connection, makes exactly one of them active (another takes over within seconds of its death).
The active one also runs the reconciler every `RECONCILE_SECONDS` and a dispatch pass every
`DISPATCH_SECONDS`. In the embedded default the runner thread ticks it.
"""

from __future__ import annotations

import logging
import threading
import zlib
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from flask import Flask
from sqlalchemy.engine import Connection, Engine

from saas.config import current_settings
from saas.extensions import db
from saas.jobs.dispatcher import dispatch, reconcile
from saas.jobs.queueing import enqueue
from saas.jobs.registry import get_kind
from saas.jobs.shutdown import StopSignal
from saas.modelbase import utcnow
from saas.tenancy.context import tenant_context

log = logging.getLogger("saas.jobs")

PARIS = ZoneInfo("Europe/Paris")
_LEADER_KEY = (0x5A4A, zlib.crc32(b"saas.jobs.scheduler") & 0x7FFFFFFF)


@dataclass(frozen=True)
class PeriodicTask:
    name: str
    kind: str
    every: float | None = None
    daily_at: time | None = None
    per_tenant: bool = False
    args: dict = field(default_factory=dict)

    def slot(self, now: datetime) -> str:
        """The occurrence `now` falls in (the latest one already due)."""
        if self.every is not None:
            return str(int(now.timestamp() // self.every))
        local = now.astimezone(PARIS)
        occurrence = local.replace(hour=self.daily_at.hour, minute=self.daily_at.minute,
                                   second=0, microsecond=0)
        if occurrence > local:
            occurrence -= timedelta(days=1)
        return occurrence.strftime("%Y-%m-%dT%H:%M")


PERIODIC: dict[str, PeriodicTask] = {}


def periodic(name: str, kind: str, *, every: float | None = None, daily_at: str | None = None,
             per_tenant: bool = False, **args) -> PeriodicTask:
    """Declare recurring work: job `kind` every `every` seconds or daily at `daily_at` (HH:MM)."""
    if (every is None) == (daily_at is None):
        raise ValueError(f"periodic {name}: give exactly one of every= and daily_at=")
    if every is not None and every <= 0:
        raise ValueError(f"periodic {name}: every must be positive")
    at = None
    if daily_at is not None:
        hour, minute = (int(part) for part in daily_at.split(":"))
        at = time(hour, minute)
    task = PeriodicTask(name=name, kind=kind, every=float(every) if every else None, daily_at=at,
                        per_tenant=per_tenant, args=dict(args))
    PERIODIC[name] = task
    return task


class Scheduler:
    """One scheduler's state: when it last reconciled and dispatched, which slots it enqueued."""

    def __init__(self, app: Flask, *, periodic: bool = True,
                 stop: StopSignal | threading.Event | None = None):
        self.app = app
        self.periodic = periodic
        # Checked between enqueues: a first tick over many communes must not hold a shutdown.
        self.stop = stop
        self.embedded = app.config["SAAS_SETTINGS"].embedded
        self.last_reconcile: datetime | None = None
        self.last_dispatch: datetime | None = None
        self.seen: dict[str, str] = {}

    def tick(self, now: datetime | None = None) -> None:
        """Do whatever is due; call within an application context."""
        now = now or utcnow()
        jobs = current_settings().jobs
        if self.last_reconcile is None or (now - self.last_reconcile).total_seconds() >= jobs.reconcile_seconds:
            self.last_reconcile = self.last_dispatch = now
            report = reconcile(embedded=self.embedded)
            if report.expired or report.redispatched:
                log.warning("reconciler: %s", report.as_dict())
        elif not self.embedded and (now - self.last_dispatch).total_seconds() >= jobs.dispatch_seconds:
            self.last_dispatch = now
            dispatch()
        if self.periodic:
            for task in list(PERIODIC.values()):
                if self._stopping():
                    return
                slot = task.slot(now)
                if self.seen.get(task.name) == slot:
                    continue
                try:
                    self.fire(task, slot)
                    self.seen[task.name] = slot
                except Exception:
                    db.session.rollback()
                    log.exception("periodic task %s could not be enqueued", task.name)

    def _stopping(self) -> bool:
        return self.stop is not None and self.stop.is_set()

    def fire(self, task: PeriodicTask, slot: str) -> int:
        """Enqueue one occurrence (once per tenant if per_tenant); returns the jobs touched."""
        from saas.tenancy.models import Tenant, TenantStatus

        kind = get_kind(task.kind)
        if kind is None:
            log.error("periodic task %s: unknown job kind %s", task.name, task.kind)
            return 0
        key = f"periodic:{task.name}:{slot}"
        if not task.per_tenant:
            with tenant_context(None):
                enqueue(kind, key=key, **task.args)
                db.session.commit()
            return 1
        tenant_ids = db.session.execute(
            sa.select(Tenant.id).where(Tenant.status == TenantStatus.ACTIVE).order_by(Tenant.slug)
        ).scalars().all()
        for tid in tenant_ids:
            if self._stopping():
                break  # the next scheduler enqueues the rest (the key makes it exactly once)
            with tenant_context(tid):
                enqueue(kind, key=key, **task.args)
                db.session.commit()
        return len(tenant_ids)


class LeaderLock:
    """Session-level advisory lock on a connection of its own: one active scheduler."""

    def __init__(self, engine: Engine):
        self.engine = engine
        self.conn: Connection | None = None

    def acquire(self) -> bool:
        """True while this process is the leader (checks the connection is still alive)."""
        if self.engine.dialect.name != "postgresql":
            return True
        if self.conn is not None:
            try:
                self.conn.execute(sa.select(1))
                return True
            except Exception:
                self._drop()
        try:
            conn = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        except Exception:
            log.warning("scheduler: database unreachable", exc_info=True)
            return False
        got = conn.execute(sa.select(sa.func.pg_try_advisory_lock(*_LEADER_KEY))).scalar()
        if got:
            self.conn = conn
            log.info("scheduler: this process is now the active scheduler")
            return True
        conn.close()
        return False

    def _drop(self) -> None:
        if self.conn is not None:
            try:
                self.conn.invalidate()  # closes the socket: PostgreSQL frees the lock
            except Exception:
                pass
            self.conn = None

    def release(self) -> None:
        if self.conn is None:
            return
        try:
            self.conn.execute(sa.select(sa.func.pg_advisory_unlock(*_LEADER_KEY)))
            self.conn.close()
        except Exception:
            self._drop()
        self.conn = None


def run_scheduler(app: Flask, stop: StopSignal | threading.Event, *, periodic: bool = True) -> None:
    """Tick until `stop` is set, when (and only while) this process holds the leadership."""
    scheduler = Scheduler(app, periodic=periodic, stop=stop)
    with app.app_context():
        leader = LeaderLock(db.engine)
    try:
        while not stop.is_set():
            with app.app_context():
                jobs = current_settings().jobs
                if not leader.acquire():
                    stop.wait(min(2.0, jobs.reconcile_seconds))
                    continue
                try:
                    scheduler.tick()
                except Exception:
                    log.exception("scheduler tick failed")
                finally:
                    db.session.remove()
            stop.wait(jobs.tick_seconds)
    finally:
        leader.release()
