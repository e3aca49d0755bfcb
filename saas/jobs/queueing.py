"""Enqueueing: a job is added in the open transaction and dispatched once that transaction commits.

    job = enqueue("ged.extract_text", document_id=str(doc.id), key=f"extract:{doc.id}")
    db.session.commit()          # the job exists if, and only if, this transaction commits

Arguments are ids and plain values (never ORM objects): the worker re-reads what it needs.
"""

from __future__ import annotations

import json
import logging
import uuid
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from flask import current_app, has_app_context
from sqlalchemy import event
from sqlalchemy.orm import Session

from saas.extensions import db
from saas.jobs.models import JobState, QueueEntry, payload_model
from saas.jobs.records import JobView, dedup_key, make_view
from saas.jobs.registry import JobKind, resolve_kind
from saas.modelbase import utcnow
from saas.tenancy.context import current_tenant_id, current_user_id

log = logging.getLogger("saas.jobs")

_PENDING_QUEUES = "saas_jobs_pending_queues"


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
    kind = resolve_kind(kind)
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
    note_pending(kind.queue)
    entry = QueueEntry(**values, dispatched_at=None, lease_expires_at=None, worker_id=None,
                       started_at=None, finished_at=None)  # a transient copy, for the view
    return make_view(entry, payload)


# -- dispatch after commit ---------------------------------------------------------------------


def note_pending(queue: str) -> None:
    """Dispatch `queue` once the open transaction commits."""
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
