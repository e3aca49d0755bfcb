"""Periodic work: one job per occurrence whoever ticks, and one active scheduler."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from saas.extensions import db
from saas.jobs.models import QueueEntry
from saas.jobs.scheduler import PERIODIC, LeaderLock, Scheduler, periodic


@pytest.fixture
def declared():
    names = []

    def declare(name, kind, **kw):
        names.append(name)
        return periodic(name, kind, **kw)

    yield declare
    for name in names:
        PERIODIC.pop(name, None)


def _count(kind: str) -> int:
    db.session.rollback()
    return db.session.execute(sa.select(sa.func.count()).where(QueueEntry.kind == kind)).scalar()


def test_slots_follow_the_interval_and_the_paris_day():
    every = periodic("test.slot.every", "test.noop", every=60)
    daily = periodic("test.slot.daily", "test.noop", daily_at="02:30")
    try:
        t = datetime(2026, 3, 29, 0, 10, tzinfo=UTC)  # 01:10 in Paris, before 02:30
        assert every.slot(t) == every.slot(t + timedelta(seconds=59)) != every.slot(t + timedelta(seconds=60))
        assert daily.slot(t) == "2026-03-28T02:30"
        assert daily.slot(t + timedelta(hours=1, minutes=31)) == "2026-03-29T02:30"  # DST day
    finally:
        PERIODIC.pop("test.slot.every")
        PERIODIC.pop("test.slot.daily")
    with pytest.raises(ValueError):
        periodic("bad", "test.noop")


def test_each_occurrence_is_one_job_however_many_schedulers_tick(app, declared, make_tenant):
    declared("test.every.platform", "test.platform_echo", every=3600, value="tick")
    schedulers = [Scheduler(app), Scheduler(app)]
    now = datetime.now(UTC)
    for s in schedulers:
        s.tick(now)
        s.tick(now + timedelta(seconds=1))
    assert _count("test.platform_echo") == 1
    schedulers[0].tick(now + timedelta(hours=1))
    assert _count("test.platform_echo") == 2


def test_per_tenant_periodic_work_makes_one_job_per_active_commune(app, declared, make_tenant):
    from saas.tenancy.models import TenantStatus

    make_tenant("une")
    make_tenant("deux")
    make_tenant("suspendue", status=TenantStatus.SUSPENDED)
    task = declared("test.every.commune", "test.echo", every=3600, per_tenant=True)
    scheduler = Scheduler(app)
    now = datetime.now(UTC)
    assert scheduler.fire(task, task.slot(now)) == 2
    assert scheduler.fire(task, task.slot(now)) == 2
    assert _count("test.echo") == 2


def test_only_one_scheduler_leads(app):
    first, second = LeaderLock(db.engine), LeaderLock(db.engine)
    try:
        assert first.acquire() is True
        assert second.acquire() is False
        assert first.acquire() is True  # still the leader
        first.release()
        assert second.acquire() is True
    finally:
        first.release()
        second.release()
