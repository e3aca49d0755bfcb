"""The job system's own recurring work: forgetting old finished jobs."""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa

from saas.extensions import db
from saas.jobs.kinds import job_kind
from saas.jobs.models import JobData, JobState, PlatformJobData, QueueEntry
from saas.jobs.registry import QueueNames
from saas.jobs.scheduler import periodic
from saas.modelbase import utcnow

# Succeeded jobs are kept a while for the pages that show them; failures much longer, so
# administrators can still see (and re-run) them.
KEEP_SUCCEEDED_DAYS = 14
KEEP_FAILED_DAYS = 90


@job_kind("jobs.purge", queue=QueueNames.MAINTENANCE, platform=True, timeout=1800,
          max_attempts=3, backoff=300)
def purge_finished(succeeded_days: int = KEEP_SUCCEEDED_DAYS,
                   failed_days: int = KEEP_FAILED_DAYS) -> dict:
    """Delete finished jobs past their retention (payloads go with them)."""
    now = utcnow()
    q = QueueEntry.__table__
    doomed = sa.or_(
        sa.and_(q.c.state == JobState.SUCCEEDED.value,
                q.c.finished_at < now - timedelta(days=succeeded_days)),
        sa.and_(q.c.state.in_([JobState.FAILED.value, JobState.DEAD.value]),
                q.c.finished_at < now - timedelta(days=failed_days)),
    )
    ids = sa.select(q.c.id).where(doomed)
    if db.session.get_bind().dialect.name != "postgresql":
        # SQLite does not enforce the ON DELETE CASCADE unless asked; PostgreSQL does, and its
        # cascade reaches the commune payloads that RLS hides from this platform job.
        for model in (JobData, PlatformJobData):
            db.session.execute(sa.delete(model.__table__).where(model.__table__.c.id.in_(ids)))
    deleted = db.session.execute(sa.delete(q).where(doomed)).rowcount
    return {"deleted": deleted}


periodic("jobs.purge", "jobs.purge", daily_at="03:30")
