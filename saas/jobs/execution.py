"""Running one job: atomic claim, lease and heartbeat, tenant context, recorded outcome.

The same code runs a job in an RQ work horse (Redis mode) and in the embedded runner thread.

- Claim: one UPDATE … WHERE state = 'queued' (and, for an RQ message, the current dispatch
  token): two workers can never both win, and a stale or duplicate message claims nothing.
- Lease: the claim sets `lease_expires_at`; a heartbeat thread renews it every lease/4 seconds.
  A worker killed with -9 stops renewing; the reconciler then takes the job back.
- The job function runs in a fresh application context with `tenant_context(job.tenant_id)`,
  so ORM scoping and PostgreSQL RLS hold for the whole run.
- Success commits the job's own writes together with `succeeded`, guarded on still owning the
  lease: a worker that lost its lease rolls everything back instead of racing the new owner.
- Progress, heartbeats and exactly-once effect records use short side transactions, visible at
  once and independent of the job's own transaction.
"""

from __future__ import annotations

import json
import logging
import os
import random
import signal
import socket
import threading
import time
import uuid
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import timedelta

import sqlalchemy as sa
from flask import Flask, current_app
from sqlalchemy.engine import Connection, Engine

from saas.config import current_settings
from saas.extensions import db
from saas.jobs.bookkeeping import bookkeeping, side_transaction
from saas.jobs.dispatcher import next_due_job
from saas.jobs.errors import JobCancelled, JobError, LeaseLost
from saas.jobs.models import ErrorCode, JobState, QueueEntry, payload_model
from saas.jobs.registry import QUEUES, JobKind, get_kind
from saas.modelbase import utcnow
from saas.tenancy.context import tenant_context

log = logging.getLogger("saas.jobs")

Q = QueueEntry.__table__
WAIT_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 900.0, 3600.0)
_MAX_ERROR = 4000

def new_worker_id(label: str = "") -> str:
    return f"{socket.gethostname()[:60]}:{os.getpid()}:{label or uuid.uuid4().hex[:8]}"[:120]


@dataclass(frozen=True)
class Claim:
    id: uuid.UUID
    tenant_id: uuid.UUID | None
    kind: str
    queue: str
    attempt: int
    max_attempts: int
    worker_id: str
    waited: float


@dataclass
class JobRun:
    """What a running job knows about itself (see saas.jobs.current_job())."""

    id: uuid.UUID
    tenant_id: uuid.UUID | None
    kind: str
    queue: str
    attempt: int
    max_attempts: int
    worker_id: str
    engine: Engine
    cancelled: threading.Event = field(default_factory=threading.Event)
    lost: threading.Event = field(default_factory=threading.Event)
    last_progress: tuple[int, str | None] | None = None


_current: ContextVar[JobRun | None] = ContextVar("saas_current_job", default=None)


def current_job() -> JobRun | None:
    """Return the running job's context (id, tenant, attempt…), or None outside a job."""
    return _current.get()


# -- claim -------------------------------------------------------------------------------------


def claim(engine: Engine, job_id: uuid.UUID, worker_id: str, *, token: str | None = None,
          include_dispatched: bool = False) -> Claim | None:
    """Atomically take a queued job; None if someone else has it or the message is stale."""
    now = utcnow()
    lease = current_settings().jobs.lease_seconds
    where = [Q.c.id == job_id, Q.c.state == JobState.QUEUED.value, Q.c.next_try <= now]
    if token is not None:
        where.append(Q.c.dispatch_token == token)
    elif not include_dispatched:
        where.append(Q.c.dispatched_at.is_(None))
    with bookkeeping(engine) as conn:
        # One statement: the row lock makes it compare-and-set, so exactly one claimant wins.
        got = conn.execute(
            sa.update(Q).where(*where).values(
                state=JobState.RUNNING.value, attempts=Q.c.attempts + 1, started_at=now,
                lease_expires_at=now + timedelta(seconds=lease), worker_id=worker_id,
                dispatched_at=sa.func.coalesce(Q.c.dispatched_at, now), updated_at=now,
            ).returning(Q.c.tenant_id, Q.c.kind, Q.c.queue, Q.c.attempts, Q.c.max_attempts,
                        Q.c.next_try)
        ).first()
        if got is None:
            return None
        waited = max(0.0, (now - got.next_try).total_seconds())
        _observe_wait(conn, got.queue, waited)
    return Claim(job_id, got.tenant_id, got.kind, got.queue, got.attempts, got.max_attempts,
                 worker_id, waited)


def bucket_label(bound: float) -> str:
    return repr(bound)


def _observe_wait(conn: Connection, queue: str, seconds: float) -> None:
    """Add one observation to the queue's cumulative wait histogram, in the claim's transaction."""
    from saas.jobs.models import JobWaitBucket

    table = JobWaitBucket.__table__
    labels = [bucket_label(b) for b in WAIT_BUCKETS if seconds <= b] + ["+Inf", "sum"]
    # One statement: rows are locked in index order, so concurrent claims cannot deadlock.
    add = (sa.update(table).where(table.c.queue == queue, table.c.bucket.in_(labels))
           .values(value=table.c.value + sa.case((table.c.bucket == "sum", seconds), else_=1.0)))
    if conn.execute(add).rowcount == 0:  # first observation on this queue
        rows = [{"queue": queue, "bucket": b, "value": 0.0}
                for b in [bucket_label(b) for b in WAIT_BUCKETS] + ["+Inf", "sum"]]
        conn.execute(_insert_ignore(conn, table, rows))
        conn.execute(add)


def _insert_ignore(conn: Connection, table: sa.Table, rows: list[dict]):
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert(table).values(rows).on_conflict_do_nothing()


# -- heartbeat ---------------------------------------------------------------------------------


# Set by `saas worker` processes that run jobs without forking: a job stuck past its timeout
# (in C code SIGALRM cannot interrupt) then takes its process down; the supervisor restarts it.
HARD_KILL_STUCK_JOBS = False
TIMEOUT_GRACE = 30.0


class Heartbeat(threading.Thread):
    """Renews the lease while the job runs; notices cancellation, a lost lease, a stuck job."""

    def __init__(self, run: JobRun, interval: float, lease: float, timeout: float | None = None):
        super().__init__(name=f"heartbeat-{run.id}", daemon=True)
        self.run_ = run
        self.interval = interval
        self.lease = lease
        self.deadline = time.monotonic() + timeout + TIMEOUT_GRACE if timeout else None
        self._stop_event = threading.Event()

    def stop(self) -> None:
        self._stop_event.set()
        self.join(timeout=self.interval + 5)

    def run(self) -> None:
        while not self._stop_event.wait(self.interval):
            if self.deadline is not None and time.monotonic() > self.deadline:
                log.error("job %s is stuck past its timeout: no longer renewing its lease", self.run_.id)
                if HARD_KILL_STUCK_JOBS:
                    os.kill(os.getpid(), signal.SIGKILL)
                return  # the lease expires; the reconciler gives the job to another worker
            try:
                self.beat()
            except Exception:  # a missed beat is survivable; the lease is 4 beats long
                log.warning("job %s: heartbeat failed", self.run_.id, exc_info=True)

    def beat(self) -> None:
        run = self.run_
        now = utcnow()
        with bookkeeping(run.engine) as conn:
            if conn.dialect.name == "sqlite":
                # Never wait long behind the job's own write lock: the next beat will do.
                conn.exec_driver_sql("PRAGMA busy_timeout = 1000")
            row = conn.execute(
                sa.update(Q).where(Q.c.id == run.id, Q.c.worker_id == run.worker_id,
                                   Q.c.state == JobState.RUNNING.value)
                .values(lease_expires_at=now + timedelta(seconds=self.lease))
                .returning(Q.c.cancel_requested)
            ).first()
        if row is None:
            run.lost.set()
        elif row.cancel_requested:
            run.cancelled.set()


# -- progress ----------------------------------------------------------------------------------


def progress(percent: int | float, message: str | None = None) -> None:
    """Report how far the running job is (0–100) with an optional French message.

    Written at once, outside the job's own transaction, so pages see it while the job runs.
    Raises JobCancelled if an administrator cancelled the job meanwhile.
    """
    run = current_job()
    if run is None:
        raise RuntimeError("progress() is only meaningful inside a running job")
    if run.cancelled.is_set():
        raise JobCancelled()
    if run.lost.is_set():
        raise LeaseLost()
    pct = max(0, min(100, int(percent)))
    message = message[:300] if message else message
    if run.last_progress == (pct, message):
        return
    try:
        with side_transaction(run.engine, run.tenant_id, durable=False) as conn:
            if conn.dialect.name == "sqlite":
                conn.exec_driver_sql("PRAGMA busy_timeout = 1000")
            updated = conn.execute(
                sa.update(Q).where(Q.c.id == run.id, Q.c.worker_id == run.worker_id,
                                   Q.c.state == JobState.RUNNING.value)
                .values(progress=pct)
            )
            if updated.rowcount != 1:
                run.lost.set()
                raise LeaseLost()
            payload = payload_model(run.tenant_id).__table__
            conn.execute(sa.update(payload).where(payload.c.id == run.id)
                         .values(progress_message=message))
            cancel = conn.execute(sa.select(Q.c.cancel_requested).where(Q.c.id == run.id)).scalar()
    except sa.exc.OperationalError:
        # SQLite busy behind the job's own transaction: progress is advisory, carry on.
        log.debug("job %s: progress not recorded (database busy)", run.id)
        return
    run.last_progress = (pct, message)
    if cancel:
        run.cancelled.set()
        raise JobCancelled()


# -- running -----------------------------------------------------------------------------------


def _messages() -> dict[str, str]:
    from flask_babel import gettext as _

    return {
        "timeout": _("La tâche a dépassé sa durée maximale."),
        "cancelled": _("Tâche annulée par un administrateur."),
        "unknown_kind": _("Ce type de tâche est inconnu du processus qui l'a reçue."),
        "bad_result": _("Le résultat de la tâche n'est pas enregistrable (JSON attendu)."),
    }


def _error_text(exc: BaseException) -> str:
    if isinstance(exc, JobError):
        return exc.message[:_MAX_ERROR]
    text = f"{type(exc).__name__}: {exc}"
    return text[:_MAX_ERROR]


def execute(app: Flask, claimed: Claim) -> str:
    """Run a claimed job to its outcome; returns the state it was left in."""
    with app.app_context():
        engine = db.engine
        lease = current_settings().jobs.lease_seconds
    run = JobRun(id=claimed.id, tenant_id=claimed.tenant_id, kind=claimed.kind,
                 queue=claimed.queue, attempt=claimed.attempt, max_attempts=claimed.max_attempts,
                 worker_id=claimed.worker_id, engine=engine)
    kind = get_kind(run.kind)
    heartbeat = Heartbeat(run, max(0.2, lease / 4), lease, timeout=kind.timeout if kind else None)
    heartbeat.start()
    token = _current.set(run)
    try:
        with app.app_context():
            state = _run_in_app(run)
    finally:
        _current.reset(token)
        heartbeat.stop()
    if QUEUES[run.queue].per_tenant_limit if run.queue in QUEUES else False:
        # A commune's slot on a limited queue just freed up: give it to its next job now.
        with app.app_context():
            _kick_after(app, run.queue)
    return state


def _run_in_app(run: JobRun) -> str:
    from rq.timeouts import JobTimeoutException

    messages = _messages()
    kind = get_kind(run.kind)
    if kind is None:
        return record_failure(run, ErrorCode.UNKNOWN_KIND, messages["unknown_kind"], retry=True)
    with tenant_context(run.tenant_id):
        model = payload_model(run.tenant_id)
        payload = db.session.execute(sa.select(model).where(model.id == run.id)).scalar_one_or_none()
        args = dict(payload.args or {}) if payload is not None else {}
        try:
            result = kind.func(**args)
        except JobCancelled:
            db.session.rollback()
            return record_failure(run, ErrorCode.CANCELLED, messages["cancelled"], retry=False)
        except LeaseLost:
            db.session.rollback()
            log.warning("job %s: lease lost, outcome discarded", run.id)
            return "lost"
        except JobTimeoutException:
            db.session.rollback()
            return record_failure(run, ErrorCode.TIMEOUT, messages["timeout"], retry=True)
        except JobError as exc:
            db.session.rollback()
            return record_failure(run, exc.code, _error_text(exc), retry=exc.retry,
                                  retry_after=getattr(exc, "retry_after", None))
        except Exception as exc:
            db.session.rollback()
            log.exception("job %s (%s) failed", run.id, run.kind)
            return record_failure(run, ErrorCode.EXCEPTION, _error_text(exc), retry=True)
        try:
            json.dumps(result)
        except (TypeError, ValueError):
            db.session.rollback()
            return record_failure(run, ErrorCode.PERMANENT, messages["bad_result"], retry=False)
        return _record_success(run, result)


def _record_success(run: JobRun, result) -> str:
    now = utcnow()
    updated = db.session.execute(
        sa.update(Q).where(Q.c.id == run.id, Q.c.worker_id == run.worker_id,
                           Q.c.state == JobState.RUNNING.value)
        .values(state=JobState.SUCCEEDED.value, progress=100, finished_at=now, updated_at=now,
                lease_expires_at=None, dispatched_at=None, dispatch_token=None)
    )
    if updated.rowcount != 1:
        # Another worker owns the job now: its run wins, ours leaves no trace.
        db.session.rollback()
        log.warning("job %s: lease lost before success was recorded; rolled back", run.id)
        return "lost"
    payload = payload_model(run.tenant_id).__table__
    db.session.execute(sa.update(payload).where(payload.c.id == run.id)
                       .values(result=result, error=None, error_code=None))
    db.session.commit()
    return JobState.SUCCEEDED.value


def record_failure(run: JobRun, code: str, message: str, *, retry: bool,
                   retry_after: float | None = None) -> str:
    """Record a failed attempt: back to the queue with back-off, `failed`, or `dead`."""
    kind: JobKind | None = get_kind(run.kind)
    now = utcnow()
    with side_transaction(run.engine, run.tenant_id) as conn:
        row = conn.execute(
            sa.select(Q.c.attempts, Q.c.max_attempts).where(
                Q.c.id == run.id, Q.c.worker_id == run.worker_id, Q.c.state == JobState.RUNNING.value)
        ).first()
        if row is None:
            return "lost"
        values: dict = {"lease_expires_at": None, "dispatched_at": None, "dispatch_token": None,
                        "worker_id": None, "updated_at": now, "cancel_requested": False}
        if retry and row.attempts < row.max_attempts:
            delay = retry_after if retry_after is not None else _backoff(kind, row.attempts)
            values.update(state=JobState.QUEUED.value, next_try=now + timedelta(seconds=delay))
        elif retry:
            values.update(state=JobState.DEAD.value, finished_at=now)
        else:
            values.update(state=JobState.FAILED.value, finished_at=now)
        conn.execute(sa.update(Q).where(Q.c.id == run.id, Q.c.worker_id == run.worker_id).values(**values))
        payload = payload_model(run.tenant_id).__table__
        conn.execute(sa.update(payload).where(payload.c.id == run.id)
                     .values(error_code=str(code), error=message[:_MAX_ERROR]))
    return values["state"]


def _backoff(kind: JobKind | None, attempt: int) -> float:
    base = kind.backoff_for(attempt) if kind else 60.0
    # ±10 % jitter so jobs that failed together do not all come back at the same instant.
    return base * random.uniform(0.9, 1.1)


def _kick_after(app: Flask, queue: str) -> None:
    runtime = app.extensions.get("saas_jobs")
    if runtime is None:
        return
    try:
        runtime.kick([queue])
    except Exception:
        log.warning("dispatch after a job failed", exc_info=True)


def run_claimed(app: Flask, job_id: uuid.UUID | str, *, token: str | None = None,
                worker_label: str = "") -> str | None:
    """Claim `job_id` (for an RQ message: with its dispatch token) and run it."""
    with app.app_context():
        claimed = claim(db.engine, uuid.UUID(str(job_id)), new_worker_id(worker_label), token=token)
        if claimed is None:
            return None
        # A waiting slot just freed up in Redis: refill it before working.
        runtime = app.extensions.get("saas_jobs")
        if runtime is not None:
            try:
                runtime.kick_after_claim(claimed.queue)
            except Exception:
                log.warning("dispatch after a claim failed", exc_info=True)
    return execute(app, claimed)


def run_pending(max_jobs: int | None = None, *, queues: list[str] | None = None) -> int:
    """Run due jobs in this thread until none is left (or `max_jobs`); return how many ran.

    The embedded runner's unit of work, also handy in tests. Works in the Redis mode too: a
    job run here leaves a stale message in Redis that workers will ignore.
    """
    app = current_app._get_current_object()
    count = 0
    while max_jobs is None or count < max_jobs:
        if not run_next(app, queues=queues, include_dispatched=True):
            break
        count += 1
    return count


def run_next(app: Flask, *, queues: list[str] | None = None, include_dispatched: bool = False,
             worker_label: str = "") -> bool:
    """Claim the next due job, fairly between tenants, and run it; False if none was due."""
    worker_id = new_worker_id(worker_label)
    with app.app_context():
        engine = db.engine
        for _attempt in range(5):
            job_id = next_due_job(engine, queues=queues, include_dispatched=include_dispatched)
            if job_id is None:
                return False
            claimed = claim(engine, job_id, worker_id, include_dispatched=include_dispatched)
            if claimed is not None:
                break
        else:
            return False
    execute(app, claimed)
    return True

