"""Job metrics for Prometheus (served by saas.ops at `GET /metrics`).

Read from the database at scrape time, so every web process and host reports the same truth,
whichever worker did the work:
- `saas_jobs_total{queue,state}` (gauge): jobs by queue and state;
- `saas_job_wait_seconds{queue}` (histogram): time from due to started, cumulative counters kept
  in `job_wait_histogram` by the workers' claims;
- `saas_jobs_oldest_due_seconds{queue}` (gauge): age of the oldest due job not yet started.
No label carries a tenant: a commune's backlog is on the console, not in Prometheus.
"""

from __future__ import annotations

from datetime import UTC

import sqlalchemy as sa
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily

from saas.extensions import db
from saas.jobs.execution import WAIT_BUCKETS, bucket_label
from saas.jobs.models import JobState, JobWaitBucket, QueueEntry
from saas.jobs.registry import QUEUES
from saas.modelbase import utcnow


def job_metrics():
    """Yield the job metric families, read from the database (three small queries)."""
    q = QueueEntry.__table__
    queues = list(QUEUES)
    counts = {(queue, state.value): 0 for queue in queues for state in JobState}
    for queue, state, n in db.session.execute(
        sa.select(q.c.queue, q.c.state, sa.func.count()).group_by(q.c.queue, q.c.state)
    ):
        counts[(queue, state)] = n
    jobs = GaugeMetricFamily("saas_jobs_total", "Jobs by queue and state (database truth).",
                             labels=["queue", "state"])
    for (queue, state), n in sorted(counts.items()):
        jobs.add_metric([queue, state], n)
    yield jobs

    now = utcnow()
    oldest = GaugeMetricFamily("saas_jobs_oldest_due_seconds",
                               "Age of the oldest due job not started yet.", labels=["queue"])
    found = dict(db.session.execute(
        sa.select(q.c.queue, sa.func.min(q.c.next_try))
        .where(q.c.state == JobState.QUEUED.value, q.c.next_try <= now).group_by(q.c.queue)
    ).all())
    for queue in queues:
        since = found.get(queue)
        if since is not None and since.tzinfo is None:
            since = since.replace(tzinfo=UTC)
        oldest.add_metric([queue], max(0.0, (now - since).total_seconds()) if since else 0.0)
    yield oldest

    h = JobWaitBucket.__table__
    stored: dict[str, dict[str, float]] = {}
    for queue, bucket, value in db.session.execute(sa.select(h.c.queue, h.c.bucket, h.c.value)):
        stored.setdefault(queue, {})[bucket] = value
    wait = HistogramMetricFamily("saas_job_wait_seconds",
                                 "Time jobs waited between being due and starting.",
                                 labels=["queue"])
    for queue in sorted(set(queues) | set(stored)):
        values = stored.get(queue, {})
        buckets = [(str(b), values.get(bucket_label(b), 0.0)) for b in WAIT_BUCKETS]
        buckets.append(("+Inf", values.get("+Inf", 0.0)))
        wait.add_metric([queue], buckets, values.get("sum", 0.0))
    yield wait
