"""Reading jobs: the view feature code, pages and the API get, by id or idempotency key."""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from flask_babel import lazy_gettext as _l

from saas.extensions import db
from saas.jobs.models import (
    FINAL_STATES,
    JobData,
    JobState,
    PlatformJobData,
    QueueEntry,
    payload_model,
)
from saas.jobs.registry import JobKind, resolve_kind
from saas.tenancy.context import current_tenant_id, tenant_context

STATE_LABELS = {
    JobState.QUEUED: _l("en attente"),
    JobState.RUNNING: _l("en cours"),
    JobState.SUCCEEDED: _l("terminée"),
    JobState.FAILED: _l("échouée"),
    JobState.DEAD: _l("abandonnée"),
}


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
    name = resolve_kind(kind).name
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


def dedup_key(tenant_id: uuid.UUID | None, kind: str, key: str) -> str:
    """The stored form of an idempotency key: scoped to the tenant and the kind, hashed."""
    raw = f"{tenant_id or 'platform'}\x1f{kind}\x1f{key}"
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()
