"""Fair dispatch to Redis, atomic claims, and the reconciler (in-process, real Redis)."""

from __future__ import annotations

import uuid
from datetime import timedelta

import sqlalchemy as sa

from saas.extensions import db
from saas.jobs import enqueue
from saas.jobs.dispatcher import dispatch, reconcile, rq_queue
from saas.jobs.execution import claim, new_worker_id
from saas.jobs.models import JobState, QueueEntry
from saas.jobs.registry import QUEUES
from saas.modelbase import utcnow
from saas.tenancy.context import tenant_context

Q = QueueEntry.__table__


def _enqueue_many(tenant, n: int, kind: str = "test.noop", **args) -> list:
    with tenant_context(tenant):
        jobs = [enqueue(kind, **args) for _ in range(n)]
        db.session.commit()
    return jobs


def _rq_ids(redis_client, queue: str = "default") -> list[str]:
    return [i.decode() for i in redis_client.lrange(rq_queue(queue, redis_client).key, 0, -1)]


def _token(job_id) -> str | None:
    return db.session.execute(sa.select(Q.c.dispatch_token).where(Q.c.id == job_id)).scalar()


def test_a_big_backlog_stays_in_the_database_and_a_small_communes_job_goes_first(
        app, make_tenant, redis_client):
    big, small = make_tenant("grande"), make_tenant("petite")
    _enqueue_many(big, 300)
    prefetch = QUEUES["default"].prefetch
    assert len(_rq_ids(redis_client)) == prefetch  # not 300: the rest waits in the database
    [lone] = _enqueue_many(small, 1)
    ids = _rq_ids(redis_client)
    # The newcomer's job is pushed at once, at the front, even though the slots were full.
    assert ids[0] == _token(lone.id) and len(ids) == prefetch + 1
    dispatch()
    assert len(_rq_ids(redis_client)) == prefetch + 1  # nothing more until a worker takes one


def test_free_slots_go_to_the_tenant_with_fewest_jobs_in_flight(app, make_tenant, redis_client):
    a, b = make_tenant("aaa"), make_tenant("bbb")
    # Both backlogs arrive in one transaction: one dispatch decides between them.
    with tenant_context(a):
        jobs_a = {enqueue("test.noop").id for _ in range(10)}
    with tenant_context(b):
        for _ in range(10):
            enqueue("test.noop")
    db.session.commit()
    engine = db.engine
    order = []
    for _ in range(12):  # a worker takes the oldest message, then dispatch refills the slot
        token = redis_client.lpop(rq_queue("default", redis_client).key).decode()
        job_id = db.session.execute(sa.select(Q.c.id).where(Q.c.dispatch_token == token)).scalar()
        assert claim(engine, job_id, new_worker_id(), token=token) is not None
        order.append("a" if job_id in jobs_a else "b")
        dispatch()
    assert order.count("a") == order.count("b") == 6, order


def test_per_tenant_limit_caps_jobs_in_flight(app, tenant_a, tenant_b, redis_client):
    _enqueue_many(tenant_a, 5, "test.transmit")
    _enqueue_many(tenant_b, 1, "test.transmit")
    dispatch()
    in_flight = dict(db.session.execute(
        sa.select(Q.c.tenant_id, sa.func.count())
        .where(Q.c.queue == "transmissions", Q.c.dispatched_at.isnot(None)).group_by(Q.c.tenant_id)
    ).all())
    # The transmissions queue allows 2 jobs in flight per commune (préfecture connections).
    assert QUEUES["transmissions"].per_tenant_limit == 2
    assert in_flight == {tenant_a.id: 2, tenant_b.id: 1}


def test_claim_is_atomic_and_stale_messages_claim_nothing(app, tenant_a, redis_client):
    [job] = _enqueue_many(tenant_a, 1)
    token = _token(job.id)
    engine = db.engine
    assert claim(engine, job.id, "w1", token="not-the-token") is None
    first = claim(engine, job.id, "w1", token=token)
    second = claim(engine, job.id, "w2", token=token)  # the same message delivered twice
    assert first is not None and first.attempt == 1 and second is None
    row = db.session.execute(sa.select(Q.c.state, Q.c.worker_id, Q.c.attempts).where(Q.c.id == job.id)).one()
    assert tuple(row) == ("running", "w1", 1)


def test_a_duplicate_rq_message_runs_the_job_once(app, tenant_a, box, fresh_job):
    from saas.jobs.worker import perform
    from tests.jobs.sample_tasks import lines

    with tenant_context(tenant_a):
        job = enqueue("test.echo", value=1, box=str(box))
        db.session.commit()
    token = _token(job.id)
    perform(str(job.id), token)
    perform(str(job.id), token)
    assert fresh_job(job.id).state == "succeeded"
    assert lines(box, "echo") == ["1"]


def test_reconciler_takes_back_a_job_whose_worker_stopped_heartbeating(app, tenant_a, fresh_job):
    [job] = _enqueue_many(tenant_a, 1)
    claimed = claim(db.engine, job.id, "dead-worker", include_dispatched=True)
    assert claimed is not None
    assert reconcile().expired == 0  # lease still valid
    db.session.execute(sa.update(Q).where(Q.c.id == job.id)
                       .values(lease_expires_at=utcnow() - timedelta(seconds=1)))
    db.session.commit()
    before = utcnow()
    report = reconcile()
    assert report.expired == 1 and report.dead == 0
    back = fresh_job(job.id)
    assert back.state == "queued" and back.worker_id is None and back.error_code == "worker_lost"
    # With back-off (test.noop's is 0.2 s): a crashing job does not spin. Measured from before the
    # pass, not from now: on a busy machine the 0.2 s may be over by the time the job is read.
    assert back.next_try >= before + timedelta(seconds=0.2)


def test_reconciler_buries_a_lost_job_that_is_out_of_attempts(app, tenant_a, fresh_job):
    [job] = _enqueue_many(tenant_a, 1)
    db.session.execute(sa.update(Q).where(Q.c.id == job.id).values(
        state=JobState.RUNNING.value, attempts=3, worker_id="gone",
        lease_expires_at=utcnow() - timedelta(seconds=5)))
    db.session.commit()
    assert reconcile().dead == 1
    assert fresh_job(job.id).state == "dead"


def test_reconciler_pushes_again_what_redis_lost(app, fast_jobs, tenant_a, redis_client, fresh_job):
    jobs = _enqueue_many(tenant_a, 2)
    before = {j.id: _token(j.id) for j in jobs}
    assert all(before.values())
    redis_client.flushall()
    db.session.execute(sa.update(Q).values(dispatched_at=utcnow() - timedelta(seconds=5)))
    db.session.commit()
    report = reconcile()
    assert report.redispatched == 2 and report.pushed == 2
    after = {j.id: _token(j.id) for j in jobs}
    assert all(after.values()) and not set(after.values()) & set(before.values())
    assert set(_rq_ids(redis_client)) == set(after.values())


def test_reconciler_leaves_alone_messages_still_waiting_in_redis(app, fast_jobs, tenant_a, redis_client):
    jobs = _enqueue_many(tenant_a, 2)
    tokens = {_token(j.id) for j in jobs}
    db.session.execute(sa.update(Q).values(dispatched_at=utcnow() - timedelta(seconds=5)))
    db.session.commit()
    assert reconcile().redispatched == 0
    assert {_token(j.id) for j in jobs} == tokens


def test_jobs_due_later_are_dispatched_once_due(app, tenant_a, redis_client):
    with tenant_context(tenant_a):
        job = enqueue("test.noop", delay=3600)
        db.session.commit()
    assert _token(job.id) is None and _rq_ids(redis_client) == []
    db.session.execute(sa.update(Q).where(Q.c.id == job.id).values(next_try=utcnow()))
    db.session.commit()
    dispatch()
    assert _rq_ids(redis_client) == [_token(job.id)]


def test_unknown_job_id_in_a_message_is_ignored(app):
    from saas.jobs.worker import perform

    perform(str(uuid.uuid4()), "whatever")  # no exception, nothing to do


def test_one_communes_extractions_never_take_every_documents_worker(app, tenant_a, tenant_b,
                                                                      redis_client):
    _enqueue_many(tenant_a, 6, "ged.extract_text", version_id=str(uuid.uuid4()))
    _enqueue_many(tenant_b, 1, "ged.extract_text", version_id=str(uuid.uuid4()))
    dispatch()
    in_flight = dict(db.session.execute(
        sa.select(Q.c.tenant_id, sa.func.count())
        .where(Q.c.queue == "documents", Q.c.dispatched_at.isnot(None)).group_by(Q.c.tenant_id)
    ).all())
    # The deployment runs two documents workers (a commune's hostile PDF holds one, for at most
    # its extraction budget): the other commune's job always finds the second one.
    assert in_flight == {tenant_a.id: 1, tenant_b.id: 1}
    assert QUEUES["documents"].per_tenant_limit == 1
