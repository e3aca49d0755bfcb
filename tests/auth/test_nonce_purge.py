"""Expired one-time nonces are forgotten by a periodic job, not only when someone logs out."""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa

from saas.auth.models import UsedNonce
from saas.extensions import db
from saas.jobs import enqueue, run_pending
from saas.jobs.scheduler import PERIODIC
from saas.modelbase import utcnow


def test_the_purge_job_deletes_only_expired_nonces(app):
    now = utcnow()
    db.session.add_all([
        UsedNonce(nonce="logout:old", expires_at=now - timedelta(minutes=1)),
        UsedNonce(nonce="switch:old", expires_at=now - timedelta(days=3)),
        UsedNonce(nonce="logout:live", expires_at=now + timedelta(hours=1)),
    ])
    db.session.commit()
    job = enqueue("auth.purge_nonces")
    db.session.commit()
    run_pending()
    db.session.expire_all()
    assert db.session.execute(sa.select(UsedNonce.nonce)).scalars().all() == ["logout:live"]
    from saas.jobs import get_job

    assert get_job(job.id).result == {"deleted": 2, "throttles": 0}


def test_the_purge_job_deletes_only_finished_login_counters(app):
    from saas.auth.models import LoginThrottle

    now = utcnow()
    db.session.add_all([
        LoginThrottle(key="over", account="a", failures=3, window_ends=now - timedelta(minutes=1)),
        LoginThrottle(key="counting", account="a", failures=3, window_ends=now + timedelta(minutes=1)),
        LoginThrottle(key="still-locked", account="a", failures=5, window_ends=now - timedelta(minutes=1),
                      locked_until=now + timedelta(minutes=5)),
    ])
    db.session.commit()
    job = enqueue("auth.purge_nonces")
    db.session.commit()
    run_pending()
    db.session.expire_all()
    keys = db.session.execute(sa.select(LoginThrottle.key).order_by(LoginThrottle.key)).scalars().all()
    assert keys == ["counting", "still-locked"]
    from saas.jobs import get_job

    assert get_job(job.id).result == {"deleted": 0, "throttles": 1}


def test_the_purge_recurs():
    task = PERIODIC["auth.purge_nonces"]
    assert task.kind == "auth.purge_nonces" and task.every == 3600 and not task.per_tenant
