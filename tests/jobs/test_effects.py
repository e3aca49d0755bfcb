"""Exactly-once external calls (in-process; the subprocess kill test is in test_crash.py)."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa

from saas.extensions import db
from saas.jobs import enqueue, once, run_pending
from saas.jobs.dispatcher import reconcile
from saas.jobs.models import QueueEntry
from saas.modelbase import utcnow
from saas.tenancy.context import tenant_context
from tests.jobs.sample_tasks import LOCAL_REMOTE, SimulatedCrash


@pytest.fixture(autouse=True)
def _fresh_remote():
    LOCAL_REMOTE.update(calls=0, received={}, flags=set())


def _job(tenant, **args):
    with tenant_context(tenant):
        job = enqueue("test.effect_local", **args)
        db.session.commit()
    return job


def _expire_lease(job_id):
    db.session.rollback()
    db.session.execute(sa.update(QueueEntry.__table__).where(QueueEntry.__table__.c.id == job_id)
                       .values(lease_expires_at=utcnow() - timedelta(seconds=1), next_try=utcnow()))
    db.session.commit()
    report = reconcile()
    assert report.expired == 1
    db.session.execute(sa.update(QueueEntry.__table__).where(QueueEntry.__table__.c.id == job_id)
                       .values(next_try=utcnow()))  # skip the back-off
    db.session.commit()


def test_once_outside_a_job_is_refused(app):
    with pytest.raises(RuntimeError, match="inside"):
        once("x", lambda token: None)


def test_death_between_the_call_and_its_record_does_not_call_twice(app, tenant_a, fresh_job):
    job = _job(tenant_a, crash_after_call=True)
    with pytest.raises(SimulatedCrash):
        run_pending()
    dying = fresh_job(job.id)
    assert dying.state == "running" and dying.effects["send"]["state"] == "intent"
    _expire_lease(job.id)
    run_pending()
    done = fresh_job(job.id)
    assert done.state == "succeeded" and done.attempts == 2
    assert LOCAL_REMOTE["calls"] == 1
    assert done.result == {"n": 1} and done.effects["send"]["recovered"] is True


def test_a_call_that_never_reached_the_remote_is_made_again(app, tenant_a, fresh_job):
    job = _job(tenant_a, lost_before_remote=True)
    run_pending()
    assert fresh_job(job.id).effects["send"]["state"] == "intent"
    db.session.execute(sa.update(QueueEntry.__table__).values(next_try=utcnow()))
    db.session.commit()
    run_pending()
    done = fresh_job(job.id)
    assert done.state == "succeeded" and LOCAL_REMOTE["calls"] == 1  # check said "never received"


def test_a_recorded_call_is_not_repeated_when_the_job_retries(app, tenant_a, fresh_job):
    job = _job(tenant_a, fail_after=True)
    run_pending()
    assert fresh_job(job.id).state == "queued"
    db.session.execute(sa.update(QueueEntry.__table__).values(next_try=utcnow()))
    db.session.commit()
    run_pending()
    assert fresh_job(job.id).state == "succeeded" and LOCAL_REMOTE["calls"] == 1


def test_without_a_way_to_check_an_uncertain_call_stops_for_a_human(app, tenant_a, fresh_job):
    job = _job(tenant_a, crash_after_call=True, with_check=False)
    with pytest.raises(SimulatedCrash):
        run_pending()
    _expire_lease(job.id)
    run_pending()
    stopped = fresh_job(job.id)
    assert (stopped.state, stopped.error_code) == ("failed", "effect_uncertain")
    assert "send" in stopped.error and LOCAL_REMOTE["calls"] == 1


def test_a_worker_that_lost_its_lease_never_calls_out(app, tenant_a, fresh_job):
    job = _job(tenant_a, steal_lease=True)
    run_pending()
    assert LOCAL_REMOTE["calls"] == 0
    after = fresh_job(job.id)
    assert after.state == "running" and after.worker_id == "thief" and after.effects == {}
