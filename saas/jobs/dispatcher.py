"""Dispatch (database → Redis, fairly) and reconciliation (Redis lost something → database wins).

Fairness. Redis holds only a handful of messages per queue (`QueueSpec.prefetch`); everything
else waits in the database. Each dispatch fills the free slots by fair share: the tenant with
the fewest jobs in flight on that queue goes first, ties broken by the oldest due job. A tenant
with nothing in flight also gets its oldest job pushed at the *front* of the RQ list, even when
the slots are full. So a commune with 10,000 queued jobs has at most `prefetch` of them in
front of another commune's single job, and that job is taken by the next worker that frees up.
`per_tenant_limit` additionally caps one tenant's jobs in flight (the préfecture's connections).

Dispatch runs after every enqueueing commit, after every claim (a Redis slot freed up) and
after every job (a tenant's in-flight count dropped), plus a safety-net pass in the scheduler.
A PostgreSQL advisory lock per queue serialises dispatchers so slots are never over-counted.

Reconciliation, run by the scheduler (and once at worker start):
1. Running jobs whose lease expired (killed worker, crashed host) go back to `queued` with
   back-off — or to `dead` when out of attempts — without a human.
2. Jobs pushed to Redis more than a grace period ago that Redis no longer holds as waiting
   (FLUSHALL, restart without persistence, message lost between pop and claim) are marked
   undispatched; a fresh dispatch pushes them again with a new token.
3. A dispatch pass moves every due job (including retries whose `next_try` has come) to Redis.

Cross-tenant scans read only `job_queue` (no RLS, no payload); writing an error message into a
commune's payload happens in a side transaction as that commune (see execution.py).
"""

from __future__ import annotations

import logging
import os
import uuid
import zlib
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from flask import current_app
from sqlalchemy.engine import Connection, Engine

from saas.config import current_settings
from saas.extensions import db
from saas.jobs.bookkeeping import bookkeeping, side_transaction
from saas.jobs.models import ErrorCode, JobState, QueueEntry, payload_model
from saas.jobs.registry import QUEUES, get_kind, queue_names
from saas.modelbase import utcnow
from saas.tenancy.models import Tenant

log = logging.getLogger("saas.jobs")

Q = QueueEntry.__table__
RQ_FUNCTION = "saas.jobs.worker.perform"
# Extra seconds RQ grants beyond a kind's timeout, for the claim and the outcome's commit.
RQ_TIMEOUT_MARGIN = 15
_LOCK_NAMESPACE = 0x5A4A  # advisory lock keys: (namespace, crc32(queue))


# -- Redis -------------------------------------------------------------------------------------

_redis_cache: dict[tuple[int, str], object] = {}


def redis_connection(url: str | None = None):
    """A Redis client for this process (recreated after fork)."""
    from redis import Redis

    url = url or current_app.config["SAAS_SETTINGS"].redis_url
    key = (os.getpid(), url)
    client = _redis_cache.get(key)
    if client is None:
        client = Redis.from_url(url, socket_timeout=10, socket_connect_timeout=2,
                                health_check_interval=30)
        _redis_cache[key] = client
    return client


def rq_queue(name: str, connection):
    from rq import Queue
    from rq.serializers import JSONSerializer

    # JSON, not pickle: whoever can write to Redis must not be able to run code in workers.
    return Queue(name, connection=connection, serializer=JSONSerializer)


# -- picking the next jobs fairly --------------------------------------------------------------


@dataclass(frozen=True)
class Head:
    id: uuid.UUID
    tenant_id: uuid.UUID | None
    queue: str
    kind: str
    next_try: datetime
    created_at: datetime


def _due_filter(queue: str | None, now: datetime, include_dispatched: bool):
    where = [Q.c.state == JobState.QUEUED.value, Q.c.next_try <= now]
    if not include_dispatched:
        where.append(Q.c.dispatched_at.is_(None))
    if queue is not None:
        where.append(Q.c.queue == queue)
    return where


def due_heads(conn: Connection, queue: str | None, now: datetime, limit: int,
              include_dispatched: bool = False) -> dict[uuid.UUID | None, list[Head]]:
    """Up to `limit` oldest due jobs of each tenant (platform jobs under None)."""
    cols = (Q.c.id, Q.c.tenant_id, Q.c.queue, Q.c.kind, Q.c.next_try, Q.c.created_at)
    order = (Q.c.next_try, Q.c.created_at, Q.c.id)
    where = _due_filter(queue, now, include_dispatched)
    platform = sa.select(*cols).where(*where, Q.c.tenant_id.is_(None)).order_by(*order).limit(limit)
    if conn.dialect.name == "postgresql":
        # One index probe per tenant (LATERAL) instead of scanning a 10,000-job backlog.
        tenants = sa.select(Tenant.__table__.c.id.label("tid")).subquery("t")
        per_tenant = (
            sa.select(*cols).where(*where, Q.c.tenant_id == tenants.c.tid)
            .order_by(*order).limit(limit).lateral("h")
        )
        communes = sa.select(per_tenant).select_from(tenants.join(per_tenant, sa.true()))
        rows = conn.execute(sa.union_all(communes, platform.subquery().select())).all()
    else:
        rows = conn.execute(platform).all()
        tids = conn.execute(sa.select(Q.c.tenant_id).distinct().where(*where, Q.c.tenant_id.isnot(None))).scalars()
        for tid in list(tids):
            rows += conn.execute(sa.select(*cols).where(*where, Q.c.tenant_id == tid)
                                 .order_by(*order).limit(limit)).all()
    heads: dict[uuid.UUID | None, list[Head]] = {}
    for r in rows:
        heads.setdefault(r.tenant_id, []).append(Head(r.id, r.tenant_id, r.queue, r.kind, r.next_try, r.created_at))
    for items in heads.values():
        items.sort(key=lambda h: (h.next_try, h.created_at, str(h.id)))
    return heads


@dataclass
class InFlight:
    """A queue's jobs in flight: per tenant (waiting in Redis + running) and waiting in total."""

    per_tenant: dict[uuid.UUID | None, int] = field(default_factory=dict)
    waiting: int = 0


def in_flight(conn: Connection, queue: str | None) -> InFlight:
    where = [Q.c.dispatched_at.isnot(None)]
    if queue is not None:
        where.append(Q.c.queue == queue)
    result = InFlight()
    for tid, state, n in conn.execute(
        sa.select(Q.c.tenant_id, Q.c.state, sa.func.count()).where(*where).group_by(Q.c.tenant_id, Q.c.state)
    ):
        result.per_tenant[tid] = result.per_tenant.get(tid, 0) + n
        if state == JobState.QUEUED.value:
            result.waiting += n
    return result


def fair_pick(heads: dict[uuid.UUID | None, list[Head]], flight: InFlight, slots: int,
              per_tenant_limit: int | None) -> list[tuple[Head, bool]]:
    """Choose what to push: [(job, at_front)], newcomers first, then by fewest in flight."""
    counts = dict(flight.per_tenant)
    queues = {t: list(hs) for t, hs in heads.items() if hs}
    picks: list[tuple[Head, bool]] = []

    def allowed(t) -> bool:
        return per_tenant_limit is None or counts.get(t, 0) < per_tenant_limit

    # A tenant with nothing in flight jumps the line: its job goes to the front of the list.
    for t in sorted(queues, key=lambda t: (queues[t][0].next_try, queues[t][0].created_at)):
        if counts.get(t, 0) == 0 and allowed(t):
            picks.append((queues[t].pop(0), True))
            counts[t] = 1
            slots -= 1
    while slots > 0:
        eligible = [t for t, hs in queues.items() if hs and allowed(t)]
        if not eligible:
            break
        t = min(eligible, key=lambda t: (counts.get(t, 0), queues[t][0].next_try, queues[t][0].created_at))
        picks.append((queues[t].pop(0), False))
        counts[t] = counts.get(t, 0) + 1
        slots -= 1
    return picks


def next_due_job(engine: Engine, *, queues: list[str] | None = None,
                 include_dispatched: bool = False) -> uuid.UUID | None:
    """The job an in-process runner should take next: fewest running for its tenant, then oldest."""
    now = utcnow()
    with engine.connect() as conn:
        best: tuple | None = None
        for queue in queues or [None]:
            heads = due_heads(conn, queue, now, 1, include_dispatched)
            if not heads:
                continue
            flight = in_flight(conn, queue)
            for t, hs in heads.items():
                h = hs[0]
                key = (flight.per_tenant.get(t, 0), h.next_try, h.created_at)
                if best is None or key < best[0]:
                    best = (key, h.id)
        return best[1] if best else None


# -- dispatch ----------------------------------------------------------------------------------


def _lock_queue(conn: Connection, queue: str) -> None:
    if conn.dialect.name == "postgresql":
        conn.execute(sa.select(sa.func.pg_advisory_xact_lock(
            _LOCK_NAMESPACE, zlib.crc32(queue.encode()) & 0x7FFFFFFF)))


def dispatch(queues: list[str] | None = None, *, engine: Engine | None = None, redis=None) -> int:
    """Push due jobs to Redis, fairly between tenants; return how many were pushed."""
    engine = engine or db.engine
    redis = redis or redis_connection()
    pushed = 0
    for queue in queues or queue_names():
        spec = QUEUES.get(queue)
        if spec is None:
            continue
        now = utcnow()
        with bookkeeping(engine) as conn:
            _lock_queue(conn, queue)
            flight = in_flight(conn, queue)
            slots = spec.prefetch - flight.waiting
            heads = due_heads(conn, queue, now, max(1, slots))
            picks = fair_pick(heads, flight, slots, spec.per_tenant_limit)
            marked: list[tuple[Head, bool, str]] = []
            for head, front in picks:
                token = uuid.uuid4().hex
                done = conn.execute(
                    sa.update(Q).where(Q.c.id == head.id, Q.c.state == JobState.QUEUED.value,
                                       Q.c.dispatched_at.is_(None))
                    .values(dispatched_at=now, dispatch_token=token)
                )
                if done.rowcount == 1:
                    marked.append((head, front, token))
        if marked:
            _push(redis, queue, marked, engine)
            pushed += len(marked)
    return pushed


def _push(redis, queue: str, marked: list, engine: Engine) -> None:
    q = rq_queue(queue, redis)
    datas = []
    for head, front, token in marked:
        kind = get_kind(head.kind)
        timeout = (kind.timeout if kind else 3600) + RQ_TIMEOUT_MARGIN
        datas.append(q.prepare_data(
            RQ_FUNCTION, args=(str(head.id), token), timeout=timeout, result_ttl=0,
            failure_ttl=7 * 86400, description=f"{head.kind} {head.id}", job_id=token,
            at_front=front,
        ))
    try:
        with redis.pipeline() as pipe:
            q.enqueue_many(datas, pipeline=pipe)
            pipe.execute()
    except Exception:
        # Not in Redis: make them dispatchable again now rather than after the grace period.
        with engine.begin() as conn:
            for _head, _front, token in marked:
                conn.execute(sa.update(Q).where(Q.c.dispatch_token == token, Q.c.state == JobState.QUEUED.value)
                             .values(dispatched_at=None, dispatch_token=None))
        raise


# -- reconciliation ----------------------------------------------------------------------------


@dataclass
class ReconcileReport:
    expired: int = 0  # running jobs whose worker stopped heart-beating
    dead: int = 0  # of which were out of attempts
    redispatched: int = 0  # pushed jobs Redis had lost
    pushed: int = 0  # jobs moved to Redis by the final dispatch

    def as_dict(self) -> dict:
        return {"expired": self.expired, "dead": self.dead, "redispatched": self.redispatched,
                "pushed": self.pushed}


def _lost_message() -> str:
    from flask_babel import gettext as _

    return _("Le processus qui exécutait la tâche s'est arrêté ; elle a été reprise automatiquement.")


def take_back_expired(engine: Engine, report: ReconcileReport, limit: int = 500) -> None:
    """Running jobs whose lease expired: back to the queue with back-off, or dead."""
    now = utcnow()
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(Q.c.id, Q.c.tenant_id, Q.c.kind, Q.c.attempts, Q.c.max_attempts)
            .where(Q.c.state == JobState.RUNNING.value, Q.c.lease_expires_at < now)
            .order_by(Q.c.lease_expires_at).limit(limit)
        ).all()
    message = _lost_message()
    for row in rows:
        kind = get_kind(row.kind)
        values: dict = {"lease_expires_at": None, "dispatched_at": None, "dispatch_token": None,
                        "worker_id": None, "updated_at": now}
        dead = row.attempts >= row.max_attempts
        if dead:
            values.update(state=JobState.DEAD.value, finished_at=now)
        else:
            delay = kind.backoff_for(row.attempts) if kind else 60.0
            values.update(state=JobState.QUEUED.value, next_try=now + timedelta(seconds=delay))
        with side_transaction(engine, row.tenant_id) as conn:
            done = conn.execute(
                sa.update(Q).where(Q.c.id == row.id, Q.c.state == JobState.RUNNING.value,
                                   Q.c.lease_expires_at < now).values(**values)
            )
            if done.rowcount != 1:
                continue  # renewed meanwhile: the worker is alive after all
            payload = payload_model(row.tenant_id).__table__
            conn.execute(sa.update(payload).where(payload.c.id == row.id)
                         .values(error_code=ErrorCode.WORKER_LOST.value, error=message))
        report.expired += 1
        report.dead += int(dead)
        log.warning("job %s (%s): worker lost, %s", row.id, row.kind, "dead" if dead else "requeued")


def redispatch_lost(engine: Engine, redis, report: ReconcileReport, limit: int = 2000) -> None:
    """Pushed jobs that Redis no longer holds as waiting: make them dispatchable again."""
    from rq.job import Job, JobStatus
    from rq.serializers import JSONSerializer

    now = utcnow()
    grace = timedelta(seconds=current_settings().jobs.dispatch_grace_seconds)
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(Q.c.id, Q.c.queue, Q.c.dispatch_token)
            .where(Q.c.state == JobState.QUEUED.value, Q.c.dispatched_at.isnot(None),
                   Q.c.dispatched_at < now - grace)
            .order_by(Q.c.dispatched_at).limit(limit)
        ).all()
    if not rows:
        return
    rq_jobs = Job.fetch_many([r.dispatch_token for r in rows], connection=redis, serializer=JSONSerializer)
    # Dispatch keeps the RQ lists short (prefetch), so asking for a message's position is cheap;
    # a message popped by a worker that died before its claim is in no list any more.
    with redis.pipeline(transaction=False) as pipe:
        for row in rows:
            pipe.lpos(rq_queue(row.queue, redis).key, row.dispatch_token)
        positions = pipe.execute()
    lost_tokens = []
    for row, rq_job, position in zip(rows, rq_jobs, positions, strict=True):
        if rq_job is None:
            lost_tokens.append(row.dispatch_token)
            continue
        status = rq_job.get_status(refresh=False)
        if status == JobStatus.QUEUED and position is not None:
            continue
        started = rq_job.started_at
        if started is not None and started.tzinfo is None:
            started = started.replace(tzinfo=UTC)
        if status == JobStatus.STARTED and started is not None and started > now - grace:
            continue  # popped a moment ago; the claim is on its way
        lost_tokens.append(row.dispatch_token)
    if lost_tokens:
        with engine.begin() as conn:
            done = conn.execute(
                sa.update(Q).where(Q.c.dispatch_token.in_(lost_tokens), Q.c.state == JobState.QUEUED.value)
                .values(dispatched_at=None, dispatch_token=None, updated_at=now)
            )
        report.redispatched += done.rowcount
        log.warning("%d job(s) lost by Redis, dispatching them again", done.rowcount)


def reconcile(*, engine: Engine | None = None, redis=None, embedded: bool | None = None) -> ReconcileReport:
    """One reconciliation pass (see the module docstring); safe to run concurrently."""
    engine = engine or db.engine
    if embedded is None:
        embedded = current_app.config["SAAS_SETTINGS"].embedded
    report = ReconcileReport()
    take_back_expired(engine, report)
    if not embedded:
        redis = redis or redis_connection()
        redispatch_lost(engine, redis, report)
        report.pushed = dispatch(engine=engine, redis=redis)
    return report
