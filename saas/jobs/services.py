"""Platform operations on jobs (console and CLI): overview, re-run, cancel — audited."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from flask_babel import gettext as _

from saas.audit.services import record
from saas.extensions import db
from saas.jobs.models import ErrorCode, JobState, QueueEntry, payload_model
from saas.jobs.queueing import note_pending
from saas.jobs.records import JobView, get_job_any_tenant, make_view
from saas.jobs.registry import QUEUES
from saas.modelbase import utcnow
from saas.tenancy.context import tenant_context
from saas.tenancy.models import Tenant

Q = QueueEntry.__table__
STATES = [s.value for s in JobState]


class JobActionError(Exception):
    """The action does not apply to the job in its current state (French message)."""


@dataclass(frozen=True)
class QueueSummary:
    name: str
    description: str
    counts: dict[str, int]
    due: int  # queued and due now, still in the database
    in_redis: int  # pushed to Redis, waiting for a worker
    scheduled: int  # queued with a later next try (retries, delays)
    oldest_due: datetime | None


def queue_summaries() -> list[QueueSummary]:
    """Per queue: jobs by state, and what the queued ones are waiting for."""
    now = utcnow()
    counts: dict[str, dict[str, int]] = {name: dict.fromkeys(STATES, 0) for name in QUEUES}
    for queue, state, n in db.session.execute(
        sa.select(Q.c.queue, Q.c.state, sa.func.count()).group_by(Q.c.queue, Q.c.state)
    ):
        counts.setdefault(queue, dict.fromkeys(STATES, 0))[state] = n
    details: dict[str, tuple[int, int, int, datetime | None]] = {}
    rows = db.session.execute(
        sa.select(
            Q.c.queue,
            sa.func.count().filter(sa.and_(Q.c.dispatched_at.is_(None), Q.c.next_try <= now)),
            sa.func.count().filter(Q.c.dispatched_at.isnot(None)),
            sa.func.count().filter(Q.c.next_try > now),
            sa.func.min(Q.c.next_try).filter(Q.c.next_try <= now),
        ).where(Q.c.state == JobState.QUEUED.value).group_by(Q.c.queue)
    )
    for queue, due, in_redis, scheduled, oldest in rows:
        details[queue] = (due, in_redis, scheduled, oldest)
    result = []
    for name in counts:
        due, in_redis, scheduled, oldest = details.get(name, (0, 0, 0, None))
        spec = QUEUES.get(name)
        result.append(QueueSummary(name, spec.description if spec else _("file inconnue"),
                                   counts[name], due, in_redis, scheduled, oldest))
    return result


@dataclass(frozen=True)
class BacklogRow:
    tenant_id: uuid.UUID | None
    tenant_name: str
    tenant_slug: str | None
    queue: str
    queued: int
    running: int
    failed: int
    dead: int


def tenant_backlog() -> list[BacklogRow]:
    """Per commune and queue: queued, running, failed and dead jobs (non-empty rows only)."""
    cols = {s: sa.func.count().filter(Q.c.state == s) for s in ("queued", "running", "failed", "dead")}
    rows = db.session.execute(
        sa.select(Q.c.tenant_id, Q.c.queue, *cols.values())
        .where(Q.c.state.in_(list(cols)))
        .group_by(Q.c.tenant_id, Q.c.queue)
    ).all()
    names = {t.id: t for t in db.session.execute(sa.select(Tenant)).scalars()}
    out = []
    for tid, queue, queued, running, failed, dead in rows:
        tenant = names.get(tid)
        out.append(BacklogRow(tid, tenant.name if tenant else _("Plateforme"),
                              tenant.slug if tenant else None, queue, queued, running, failed, dead))
    out.sort(key=lambda r: (-(r.queued + r.running), r.tenant_name, r.queue))
    return out


def list_jobs(*, states: list[str] | None = None, queue: str | None = None,
              tenant_id: uuid.UUID | None | str = "any", limit: int = 50,
              with_payload: bool = True) -> list[JobView]:
    """Jobs across communes, newest first; payloads read as each job's commune."""
    stmt = sa.select(QueueEntry).order_by(QueueEntry.updated_at.desc(), QueueEntry.id).limit(limit)
    if states:
        stmt = stmt.where(QueueEntry.state.in_(states))
    if queue:
        stmt = stmt.where(QueueEntry.queue == queue)
    if tenant_id != "any":
        stmt = stmt.where(QueueEntry.tenant_id.is_(None) if tenant_id is None
                          else QueueEntry.tenant_id == tenant_id)
    entries = db.session.execute(stmt).scalars().all()
    if not with_payload:
        return [make_view(e, None) for e in entries]
    payloads: dict[uuid.UUID, object] = {}
    by_tenant: dict[uuid.UUID | None, list[uuid.UUID]] = {}
    for e in entries:
        by_tenant.setdefault(e.tenant_id, []).append(e.id)
    for tid, ids in by_tenant.items():
        with tenant_context(tid):
            model = payload_model(tid)
            for p in db.session.execute(sa.select(model).where(model.id.in_(ids))).scalars():
                payloads[p.id] = p
    return [make_view(e, payloads.get(e.id)) for e in entries]


def tenant_names() -> dict[uuid.UUID, Tenant]:
    return {t.id: t for t in db.session.execute(sa.select(Tenant)).scalars()}


def _audit(action: str, view: JobView, actor, extra: dict | None = None) -> None:
    data = {"kind": view.kind, "queue": view.queue, "from": view.state,
            "tenant": str(view.tenant_id) if view.tenant_id else None, **(extra or {})}
    record(action, target=f"job:{view.id}", data=data, actor=actor, platform=True)


def retry_job(job_id: uuid.UUID | str, *, actor=None) -> JobView:
    """Re-run a failed or dead job from scratch (attempts reset); audited; commits."""
    view = get_job_any_tenant(job_id)
    if view is None:
        raise LookupError(job_id)
    if view.state not in (JobState.FAILED, JobState.DEAD):
        raise JobActionError(_("Seule une tâche échouée ou abandonnée peut être relancée."))
    now = utcnow()
    done = db.session.execute(
        sa.update(Q).where(Q.c.id == view.id, Q.c.state == view.state).values(
            state=JobState.QUEUED.value, attempts=0, next_try=now, finished_at=None,
            dispatched_at=None, dispatch_token=None, lease_expires_at=None, worker_id=None,
            cancel_requested=False, progress=0, updated_at=now)
    )
    if done.rowcount != 1:
        db.session.rollback()
        raise JobActionError(_("La tâche a changé d'état entre-temps : rechargez la page."))
    with tenant_context(view.tenant_id):
        table = payload_model(view.tenant_id).__table__
        db.session.execute(sa.update(table).where(table.c.id == view.id)
                           .values(error=None, error_code=None, progress_message=None))
    _audit("job.retry", view, actor, {"error_code": view.error_code})
    note_pending(view.queue)
    db.session.commit()
    return get_job_any_tenant(view.id)


def cancel_job(job_id: uuid.UUID | str, *, actor=None) -> JobView:
    """Cancel a queued job now, or ask a running one to stop at its next progress report."""
    view = get_job_any_tenant(job_id)
    if view is None:
        raise LookupError(job_id)
    now = utcnow()
    if view.state == JobState.QUEUED:
        done = db.session.execute(
            sa.update(Q).where(Q.c.id == view.id, Q.c.state == JobState.QUEUED.value).values(
                state=JobState.FAILED.value, finished_at=now, dispatched_at=None,
                dispatch_token=None, updated_at=now)
        )
        if done.rowcount == 1:
            with tenant_context(view.tenant_id):
                table = payload_model(view.tenant_id).__table__
                db.session.execute(sa.update(table).where(table.c.id == view.id).values(
                    error_code=ErrorCode.CANCELLED.value,
                    error=_("Tâche annulée par un administrateur.")))
    elif view.state == JobState.RUNNING:
        done = db.session.execute(
            sa.update(Q).where(Q.c.id == view.id, Q.c.state == JobState.RUNNING.value)
            .values(cancel_requested=True, updated_at=now)
        )
    else:
        raise JobActionError(_("Seule une tâche en attente ou en cours peut être annulée."))
    if done.rowcount != 1:
        db.session.rollback()
        raise JobActionError(_("La tâche a changé d'état entre-temps : rechargez la page."))
    _audit("job.cancel", view, actor)
    db.session.commit()
    return get_job_any_tenant(view.id)


def redis_overview(redis_url: str | None) -> dict | None:
    """RQ's side, for the console: messages waiting per queue and live workers."""
    if not redis_url:
        return None
    from rq import Worker

    from saas.jobs.dispatcher import redis_connection, rq_queue

    try:
        conn = redis_connection(redis_url)
        queues = {name: rq_queue(name, conn).count for name in QUEUES}
        workers = Worker.all(connection=conn)
        return {"ok": True, "queues": queues, "workers": len(workers),
                "busy": sum(1 for w in workers if w.get_state() == "busy")}
    except Exception as exc:
        return {"ok": False, "error": type(exc).__name__}
