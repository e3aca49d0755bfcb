"""Declaring, enqueueing and running jobs in-process (PostgreSQL as the app role, real Redis)."""

from __future__ import annotations

import time
import uuid

import pytest
import sqlalchemy as sa

from saas.extensions import db
from saas.jobs import enqueue, get_job, run_pending
from saas.jobs.models import JobData, QueueEntry
from saas.tenancy.context import tenant_context


def test_enqueue_needs_the_commune_context_and_stores_args_as_plain_values(app, tenant_a):
    with pytest.raises(RuntimeError, match="tenant context"):
        enqueue("test.echo", value=1)
    with tenant_context(tenant_a):
        job = enqueue("test.echo", value={"id": uuid.UUID(int=7), "n": [1, 2]})
        db.session.commit()
        assert job.state == "queued" and job.tenant_id == tenant_a.id
        assert get_job(job.id).args == {"value": {"id": str(uuid.UUID(int=7)), "n": [1, 2]}}
        with pytest.raises(TypeError, match="pass ids"):
            enqueue("test.echo", value=tenant_a)


def test_same_idempotency_key_returns_the_same_job(app, tenant_a, tenant_b):
    with tenant_context(tenant_a):
        first = enqueue("test.echo", key="doc:1", value=1)
        second = enqueue("test.echo", key="doc:1", value=2)
        db.session.commit()
        third = enqueue("test.echo", key="doc:1", value=3)
        other_kind = enqueue("test.flaky", key="doc:1", box="/tmp", failures=0)
        db.session.commit()
    with tenant_context(tenant_b):
        elsewhere = enqueue("test.echo", key="doc:1", value=4)
        db.session.commit()
    assert first.id == second.id == third.id
    assert len({first.id, other_kind.id, elsewhere.id}) == 3
    assert db.session.execute(sa.select(sa.func.count()).select_from(QueueEntry)).scalar() == 3
    # The stored key says nothing about the commune: only a hash sits in the platform table.
    stored = db.session.execute(sa.select(QueueEntry.dedup_key)).scalars().all()
    assert all(len(k) == 64 and "doc" not in k for k in stored)


def test_a_rolled_back_transaction_enqueues_nothing(app, tenant_a):
    with tenant_context(tenant_a):
        enqueue("test.echo", value=1)
        db.session.rollback()
    assert db.session.execute(sa.select(sa.func.count()).select_from(QueueEntry)).scalar() == 0


def test_run_pending_runs_the_job_as_its_commune(app, tenant_a, tenant_b, make_user, fresh_job):
    make_user(tenant_a)
    make_user(tenant_b)
    with tenant_context(tenant_a):
        job = enqueue("test.tenant_probe")
        db.session.commit()
    assert run_pending() == 1
    done = fresh_job(job.id)
    assert done.state == "succeeded" and done.progress == 100 and done.attempts == 1
    # ORM scoping and PostgreSQL RLS both held for the whole run: only commune A is visible.
    assert done.result == {"context": str(tenant_a.id), "rls": str(tenant_a.id),
                           "member_tenants": [str(tenant_a.id)], "raw_count": 1}


def test_platform_job_runs_outside_any_commune(app, tenant_a, fresh_job):
    with tenant_context(tenant_a):
        job = enqueue("test.platform_echo", value="x")  # platform kind: never the commune's
        db.session.commit()
    assert job.tenant_id is None
    run_pending()
    assert fresh_job(job.id).result == {"value": "x", "tenant": None}


def test_the_jobs_own_writes_commit_only_with_its_success(app, tenant_a, fresh_job):
    from saas.audit.models import AuditEvent

    with tenant_context(tenant_a):
        ok = enqueue("test.audit_then", fail=False)
        ko = enqueue("test.audit_then", fail=True)
        db.session.commit()
    run_pending()
    assert fresh_job(ok.id).state == "succeeded"
    failed = fresh_job(ko.id)
    assert failed.state == "failed" and failed.error == "échec voulu après écriture"
    with tenant_context(tenant_a):
        events = db.session.execute(sa.select(AuditEvent).where(AuditEvent.action == "test.job_write")).scalars().all()
    assert [e.data for e in events] == [{"fail": False}]


def test_transient_errors_retry_with_exponential_backoff(app, tenant_a, box, fresh_job):
    with tenant_context(tenant_a):
        job = enqueue("test.flaky", box=str(box), failures=2)
        db.session.commit()
    assert run_pending() == 1
    first = fresh_job(job.id)
    assert first.state == "queued" and first.attempts == 1 and first.error_code == "transient"
    assert first.error == "panne passagère n°1"
    delay1 = (first.next_try - first.started_at).total_seconds()
    assert 0.15 <= delay1 <= 0.3  # backoff 0.2 s ±10 %
    assert run_pending() == 0  # not due yet
    time.sleep(delay1 + 0.05)
    assert run_pending() == 1
    second = fresh_job(job.id)
    delay2 = (second.next_try - second.started_at).total_seconds()
    assert second.attempts == 2 and 0.35 <= delay2 <= 0.5  # doubled
    time.sleep(delay2 + 0.05)
    run_pending()
    final = fresh_job(job.id)
    assert final.state == "succeeded" and final.result == {"attempt": 3}
    assert final.error is None


def test_permanent_error_fails_at_once_with_the_reason(app, tenant_a, fresh_job):
    with tenant_context(tenant_a):
        job = enqueue("test.permanent")
        db.session.commit()
    run_pending()
    failed = fresh_job(job.id)
    assert (failed.state, failed.attempts, failed.error_code) == ("failed", 1, "permanent")
    assert failed.error == "Document illisible : impossible de le signer."
    assert failed.finished_at is not None


def test_out_of_attempts_the_job_is_dead_and_an_admin_can_rerun_it(app, tenant_a, box, fresh_job):
    from saas.audit.models import PlatformAuditEvent
    from saas.jobs import services

    with tenant_context(tenant_a):
        job = enqueue("test.broken", box=str(box))
        db.session.commit()
    for _ in range(3):
        run_pending()
        time.sleep(0.5)
    dead = fresh_job(job.id)
    assert (dead.state, dead.attempts, dead.error_code) == ("dead", 3, "exception")
    assert dead.error == "RuntimeError: bug"
    assert services.list_jobs(states=["dead"])[0].id == job.id

    again = services.retry_job(job.id, actor="cli:test")
    assert (again.state, again.attempts, again.error) == ("queued", 0, None)
    audit = db.session.execute(sa.select(PlatformAuditEvent)).scalars().all()
    assert [(a.action, a.target, a.data["from"]) for a in audit] == [("job.retry", f"job:{job.id}", "dead")]
    run_pending()
    assert fresh_job(job.id).attempts == 1
    with pytest.raises(services.JobActionError):
        services.retry_job(job.id)  # queued again, not failed: nothing to re-run


def test_cancelling_a_queued_job_fails_it_with_the_reason(app, tenant_a, fresh_job):
    from saas.jobs import services

    with tenant_context(tenant_a):
        job = enqueue("test.echo", value=1)
        db.session.commit()
    services.cancel_job(job.id, actor="cli:test")
    cancelled = fresh_job(job.id)
    assert (cancelled.state, cancelled.error_code) == ("failed", "cancelled")
    assert run_pending() == 0


def test_cancelling_a_running_job_stops_it_at_its_next_progress_report(app, tenant_a, box, fresh_job):
    import threading

    from saas.jobs import services
    from tests.jobs.conftest import wait_for

    with tenant_context(tenant_a):
        job = enqueue("test.progress_loop", box=str(box))
        db.session.commit()
    def work():
        with app.app_context():
            run_pending()

    runner = threading.Thread(target=work)
    runner.start()
    wait_for(lambda: fresh_job(job.id).progress > 3, 20, "the job's progress")
    running = fresh_job(job.id)
    assert running.state == "running" and running.progress_message.startswith("étape ")
    services.cancel_job(job.id, actor="cli:test")
    runner.join(20)
    done = fresh_job(job.id)
    assert (done.state, done.error_code) == ("failed", "cancelled")


def test_job_payload_is_invisible_to_another_commune(app, tenant_a, tenant_b):
    with tenant_context(tenant_a):
        job = enqueue("test.echo", value="secret")
        db.session.commit()
    with tenant_context(tenant_b):
        assert get_job(job.id) is None
        raw = db.session.execute(sa.text("SELECT count(*) FROM jobs")).scalar()
        assert raw == 0  # RLS, not only the ORM filter
    with tenant_context(tenant_a):
        assert get_job(job.id).args == {"value": "secret"}
    assert db.session.execute(sa.text("SELECT count(*) FROM jobs")).scalar() == 0  # no tenant: nothing
    assert db.session.execute(sa.select(sa.func.count()).select_from(JobData)).scalar() == 0
