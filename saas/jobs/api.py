"""The job API for feature code: declare a kind, enqueue it, report progress, read a job.

    @job_kind("ged.extract_text", queue=QueueNames.DOCUMENTS, timeout=600)
    def extract_text(document_id: str) -> dict:
        progress(10, _("Lecture du fichier"))
        ...
        return {"pages": 12}

    job = extract_text.enqueue(document_id=str(doc.id), key=f"extract:{doc.id}")
    db.session.commit()          # the job exists if, and only if, this transaction commits

Arguments are ids and plain values (never ORM objects): the worker re-reads what it needs.
A commune's job runs with that commune's tenant context (ORM scoping and RLS) for its whole
run; a `platform=True` kind runs outside any commune. The job's own database writes commit
together with its "succeeded" state, so a retried job never half-applies them.
"""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from flask import current_app, has_app_context
from flask_babel import lazy_gettext as _l
from sqlalchemy import event
from sqlalchemy.orm import Session

from saas.extensions import db
from saas.jobs.models import (
    FINAL_STATES,
    JobData,
    JobState,
    PlatformJobData,
    QueueEntry,
    payload_model,
)
from saas.jobs.registry import QUEUES, JobKind, QueueNames, get_kind, register
from saas.modelbase import utcnow
from saas.tenancy.context import current_tenant_id, current_user_id, tenant_context

log = logging.getLogger("saas.jobs")

STATE_LABELS = {
    JobState.QUEUED: _l("en attente"),
    JobState.RUNNING: _l("en cours"),
    JobState.SUCCEEDED: _l("terminée"),
    JobState.FAILED: _l("échouée"),
    JobState.DEAD: _l("abandonnée"),
}

_PENDING_QUEUES = "saas_jobs_pending_queues"


# -- errors a job raises ---------------------------------------------------------------------


class JobError(Exception):
    """Base class of the errors a job raises to say how it ended; `message` is French."""

    code = "exception"
    retry = True

    def __init__(self, message: str, *, code: str | None = None):
        super().__init__(message)
        self.message = message
        if code:
            self.code = code


class PermanentError(JobError):
    """Retrying cannot help (invalid document, refused by the préfecture): fail now, with why."""

    code = "permanent"
    retry = False


class TransientError(JobError):
    """Try again later (remote down, rate limited); `retry_after` overrides the back-off."""

    code = "transient"

    def __init__(self, message: str, *, retry_after: float | None = None, code: str | None = None):
        super().__init__(message, code=code)
        self.retry_after = retry_after


class JobCancelled(Exception):
    """Raised inside a job by progress() once an administrator has cancelled it."""


class LeaseLost(Exception):
    """This worker no longer owns the job (its lease expired and it was given to another)."""


# -- declaring kinds ---------------------------------------------------------------------------


def job_kind(name: str, *, queue: str = QueueNames.DEFAULT, timeout: int = 300,
             max_attempts: int = 5, backoff: float = 10.0, max_backoff: float = 3600.0,
             platform: bool = False) -> Callable[[Callable], JobKind]:
    """Declare a kind of job: its queue, the time one attempt may take, its retry policy.

    Failed attempts are retried after `backoff`, 2×, 4×… seconds (at most `max_backoff`) until
    `max_attempts` attempts were made; the job is then `dead` until an administrator re-runs it.
    """
    if max_attempts < 1:
        raise ValueError("max_attempts must be at least 1")

    def decorator(func: Callable) -> JobKind:
        return register(JobKind(name=name, func=func, queue=queue, timeout=int(timeout),
                                max_attempts=int(max_attempts), backoff=float(backoff),
                                max_backoff=float(max_backoff), platform=platform))

    return decorator


def _resolve(kind: JobKind | str) -> JobKind:
    if isinstance(kind, JobKind):
        return kind
    found = get_kind(kind)
    if found is None:
        raise LookupError(f"unknown job kind {kind!r}")
    return found


# -- reading jobs ------------------------------------------------------------------------------


@dataclass(frozen=True)
class JobView:
    """A job as feature code, pages and the API see it (envelope and payload together)."""

    id: uuid.UUID
    kind: str
    queue: str
    tenant_id: uuid.UUID | None
    state: str
    progress: int
    progress_message: str | None
    attempts: int
    max_attempts: int
    next_try: datetime
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    error_code: str | None
    error: str | None
    result: Any
    args: dict
    idempotency_key: str | None
    cancel_requested: bool
    worker_id: str | None
    lease_expires_at: datetime | None
    dispatched_at: datetime | None
    effects: dict

    @property
    def is_final(self) -> bool:
        return self.state in FINAL_STATES

    @property
    def state_label(self) -> str:
        return str(STATE_LABELS.get(self.state, self.state))

    def as_api(self) -> dict:
        """The `GET /api/v1/jobs/{id}` body (API.md), with a few documented extras."""
        from saas.api.helpers import iso

        return {
            "id": str(self.id),
            "kind": self.kind,
            "state": self.state,
            "progress": self.progress,
            "progress_message": self.progress_message,
            "error": ({"code": self.error_code or "exception", "message": self.error or ""}
                      if self.error_code or self.error else None),
            "result": self.result,
            "attempts": self.attempts,
            "created_at": iso(self.created_at),
            "started_at": iso(self.started_at),
            "finished_at": iso(self.finished_at),
        }


def make_view(entry: QueueEntry, payload: JobData | PlatformJobData | None) -> JobView:
    """Combine an envelope and its payload (None when the payload may not be read here)."""
    return JobView(
        id=entry.id, kind=entry.kind, queue=entry.queue, tenant_id=entry.tenant_id,
        state=entry.state, progress=entry.progress,
        progress_message=payload.progress_message if payload else None,
        attempts=entry.attempts, max_attempts=entry.max_attempts, next_try=entry.next_try,
        created_at=entry.created_at, started_at=entry.started_at, finished_at=entry.finished_at,
        error_code=payload.error_code if payload else None,
        error=payload.error if payload else None,
        result=payload.result if payload else None,
        args=dict(payload.args or {}) if payload else {},
        idempotency_key=payload.idempotency_key if payload else None,
        cancel_requested=entry.cancel_requested, worker_id=entry.worker_id,
        lease_expires_at=entry.lease_expires_at, dispatched_at=entry.dispatched_at,
        effects=dict(payload.effects or {}) if payload else {},
    )


def get_job(job_id: uuid.UUID | str) -> JobView | None:
    """The current commune's job `job_id` (None if absent or another commune's).

    Without a tenant context, only platform jobs are visible.
    """
    try:
        job_id = uuid.UUID(str(job_id))
    except ValueError:
        return None
    tid = current_tenant_id()
    model = payload_model(tid)
    payload = db.session.execute(sa.select(model).where(model.id == job_id)).scalar_one_or_none()
    if payload is None:
        return None
    entry = db.session.execute(
        sa.select(QueueEntry).where(QueueEntry.id == job_id, QueueEntry.tenant_id.is_(None)
                                    if tid is None else QueueEntry.tenant_id == tid)
    ).scalar_one_or_none()
    return make_view(entry, payload) if entry is not None else None


def find_job(kind: JobKind | str, key: str) -> JobView | None:
    """The current commune's job enqueued as `kind` with idempotency `key`, if any."""
    name = _resolve(kind).name
    entry_id = db.session.execute(
        sa.select(QueueEntry.id).where(QueueEntry.dedup_key == dedup_key(current_tenant_id(), name, key))
    ).scalar_one_or_none()
    return get_job(entry_id) if entry_id is not None else None


def get_job_any_tenant(job_id: uuid.UUID | str) -> JobView | None:
    """Any commune's job, for platform operators (console, CLI): reads the payload as its tenant."""
    try:
        job_id = uuid.UUID(str(job_id))
    except ValueError:
        return None
    entry = db.session.get(QueueEntry, job_id, populate_existing=True)
    if entry is None:
        return None
    with tenant_context(entry.tenant_id):
        model = payload_model(entry.tenant_id)
        payload = db.session.execute(
            sa.select(model).where(model.id == job_id).execution_options(populate_existing=True)
        ).scalar_one_or_none()
        return make_view(entry, payload)


# -- enqueueing --------------------------------------------------------------------------------


def _plain(value: Any, path: str) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, list | tuple):
        return [_plain(v, f"{path}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise TypeError(f"job argument {path}: keys must be strings")
            out[k] = _plain(v, f"{path}.{k}")
        return out
    raise TypeError(
        f"job argument {path} is a {type(value).__name__}: pass ids and plain values, "
        "the job re-reads the objects it needs"
    )


def dedup_key(tenant_id: uuid.UUID | None, kind: str, key: str) -> str:
    """The stored form of an idempotency key: scoped to the tenant and the kind, hashed."""
    raw = f"{tenant_id or 'platform'}\x1f{kind}\x1f{key}"
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()


def _insert_ignoring_conflicts(values: dict) -> bool:
    """Insert a job_queue row; False when its dedup_key already exists."""
    table = QueueEntry.__table__
    dialect = db.session.get_bind().dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    elif dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    else:  # pragma: no cover - only the two supported databases
        raise RuntimeError(f"unsupported database {dialect}")
    stmt = (insert(table).values(**values).on_conflict_do_nothing(index_elements=["dedup_key"])
            .returning(table.c.id))
    return db.session.execute(stmt).scalar_one_or_none() is not None


def enqueue(kind: JobKind | str, *, key: str | None = None, delay: float = 0,
            **args: Any) -> JobView:
    """Add a job in the open transaction; it is dispatched once that transaction commits.

    `key` makes enqueueing idempotent: the same key (for this commune and kind) returns the job
    created the first time, whatever its state. A commune's kind needs the commune's context.
    """
    kind = _resolve(kind)
    tenant_id = None if kind.platform else current_tenant_id()
    if not kind.platform and tenant_id is None:
        raise RuntimeError(f"job kind {kind.name} runs within a commune: enqueue it in a tenant context")
    clean = _plain(args, "args")
    json.dumps(clean)  # fail now rather than in the worker
    if key is not None and len(key) > 200:
        raise ValueError("idempotency key longer than 200 characters")
    now = utcnow()
    job_id = uuid.uuid4()
    dedup = dedup_key(tenant_id, kind.name, key) if key is not None else None
    values = {
        "id": job_id, "tenant_id": tenant_id, "kind": kind.name, "queue": kind.queue,
        "state": JobState.QUEUED.value, "dedup_key": dedup, "attempts": 0,
        "max_attempts": kind.max_attempts, "progress": 0,
        "next_try": now + timedelta(seconds=max(0.0, delay)), "cancel_requested": False,
        "created_at": now, "updated_at": now,
    }
    inserted = _insert_ignoring_conflicts(values)
    if not inserted:
        existing = db.session.execute(
            sa.select(QueueEntry).where(QueueEntry.dedup_key == dedup)
        ).scalar_one()
        model = payload_model(tenant_id)
        payload = db.session.execute(sa.select(model).where(model.id == existing.id)).scalar_one_or_none()
        return make_view(existing, payload)
    payload = payload_model(tenant_id)(
        id=job_id, idempotency_key=key, args=clean, effects={}, created_by=current_user_id())
    if tenant_id is not None:
        payload.tenant_id = tenant_id
    db.session.add(payload)
    # Now, while the commune's context is the one this payload belongs to.
    db.session.flush()
    _note_pending(kind.queue)
    entry = QueueEntry(**values, dispatched_at=None, lease_expires_at=None, worker_id=None,
                       started_at=None, finished_at=None)  # a transient copy, for the view
    return make_view(entry, payload)


# -- progress, from inside a job ---------------------------------------------------------------


def current_job():
    """The running job's context (id, tenant, attempt…) or None outside a job."""
    from saas.jobs.execution import current_run

    return current_run()


def progress(percent: int | float, message: str | None = None) -> None:
    """Report how far the running job is (0–100) with an optional French message.

    Written at once, outside the job's own transaction, so pages see it while the job runs.
    Raises JobCancelled if an administrator cancelled the job meanwhile.
    """
    from saas.jobs.execution import report_progress

    report_progress(percent, message)


# -- running without Redis ---------------------------------------------------------------------


def run_pending(max_jobs: int | None = None, *, queues: list[str] | None = None) -> int:
    """Run due jobs in this thread until none is left (or `max_jobs`); return how many ran.

    The embedded runner's unit of work, also handy in tests. Works in the Redis mode too: a
    job run here leaves a stale message in Redis that workers will ignore.
    """
    from saas.jobs.execution import run_next

    app = current_app._get_current_object()
    count = 0
    while max_jobs is None or count < max_jobs:
        if not run_next(app, queues=queues, include_dispatched=True):
            break
        count += 1
    return count


# -- dispatch after commit ---------------------------------------------------------------------


def _note_pending(queue: str) -> None:
    db.session().info.setdefault(_PENDING_QUEUES, set()).add(queue)


def _after_commit(session: Session) -> None:
    queues = session.info.pop(_PENDING_QUEUES, None)
    if not queues or not has_app_context():
        return
    runtime = current_app.extensions.get("saas_jobs")
    if runtime is None:
        return
    try:
        runtime.kick(sorted(queues))
    except Exception:  # the jobs are safe in the database; the scheduler will dispatch them
        log.exception("job dispatch after commit failed")


def install_session_hooks() -> None:
    """Dispatch the jobs a transaction enqueued once it commits (idempotent)."""
    if not event.contains(Session, "after_commit", _after_commit):
        event.listen(Session, "after_commit", _after_commit)


def known_queue(name: str) -> bool:
    return name in QUEUES
