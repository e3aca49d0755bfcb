"""Prometheus metrics: `GET /metrics`, for platform admins or the local network only.

Job metrics are read from the database at scrape time, so every web process and host reports
the same truth, whichever worker did the work:
- `saas_jobs_total{queue,state}` (gauge): jobs by queue and state;
- `saas_job_wait_seconds{queue}` (histogram): time from due to started, cumulative counters kept
  in `job_wait_histogram` by the workers' claims;
- `saas_jobs_oldest_due_seconds{queue}` (gauge): age of the oldest due job not yet started.
No label carries a tenant: a commune's backlog is on the console, not in Prometheus.

Other process metrics (prometheus-flask-exporter's, when installed) come from the default
registry, or from every process's files when PROMETHEUS_MULTIPROC_DIR is set under gunicorn.
"""

from __future__ import annotations

import ipaddress
import os

import sqlalchemy as sa
from flask import Flask, Response, abort, current_app, g, request
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily

from saas.extensions import db
from saas.jobs.execution import WAIT_BUCKETS, _bucket_label
from saas.jobs.models import JobState, JobWaitBucket, QueueEntry
from saas.jobs.registry import QUEUES
from saas.modelbase import utcnow
from saas.netutil import client_ip


class JobsCollector:
    """Collects the job metrics from the database (one scrape, three small queries)."""

    def __init__(self, session=None):
        self.session = session or db.session

    def collect(self):
        q = QueueEntry.__table__
        queues = list(QUEUES)
        counts = {(queue, state.value): 0 for queue in queues for state in JobState}
        for queue, state, n in self.session.execute(
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
        found = dict(self.session.execute(
            sa.select(q.c.queue, sa.func.min(q.c.next_try))
            .where(q.c.state == JobState.QUEUED.value, q.c.next_try <= now).group_by(q.c.queue)
        ).all())
        for queue in queues:
            since = found.get(queue)
            if since is not None and since.tzinfo is None:
                from datetime import UTC

                since = since.replace(tzinfo=UTC)
            oldest.add_metric([queue], max(0.0, (now - since).total_seconds()) if since else 0.0)
        yield oldest

        h = JobWaitBucket.__table__
        stored: dict[str, dict[str, float]] = {}
        for queue, bucket, value in self.session.execute(sa.select(h.c.queue, h.c.bucket, h.c.value)):
            stored.setdefault(queue, {})[bucket] = value
        wait = HistogramMetricFamily("saas_job_wait_seconds",
                                     "Time jobs waited between being due and starting.",
                                     labels=["queue"])
        for queue in sorted(set(queues) | set(stored)):
            values = stored.get(queue, {})
            buckets = [(str(b), values.get(_bucket_label(b), 0.0)) for b in WAIT_BUCKETS]
            buckets.append(("+Inf", values.get("+Inf", 0.0)))
            wait.add_metric([queue], buckets, values.get("sum", 0.0))
        yield wait


def _from_local_network() -> bool:
    try:
        address = ipaddress.ip_address(client_ip())
    except ValueError:
        return False
    if address.is_loopback and request.headers.get("X-Forwarded-For") \
            and not current_app.config["SAAS_SETTINGS"].proxy_hops:
        # Relayed by a local proxy we were not told to trust: the real client is unknown.
        return False
    return address.is_loopback or address.is_private or address.is_link_local


def _platform_admin() -> bool:
    """A platform admin logged in on the console host (the resolver skips this endpoint)."""
    from flask_login import current_user

    from saas.tenancy.resolver import CONSOLE_LABEL, HostKind

    host = (request.host or "").rsplit(":", 1)[0].lower()
    if host != f"{CONSOLE_LABEL}.{g.settings.base_domain}":
        return False
    g.host_kind = HostKind.CONSOLE
    return bool(getattr(current_user, "is_authenticated", False) and current_user.is_platform_admin)


def metrics_view() -> Response:
    if not (_from_local_network() or _platform_admin()):
        abort(403)
    parts = [_process_metrics()]
    registry = CollectorRegistry(auto_describe=False)
    registry.register(JobsCollector())
    parts.append(generate_latest(registry))
    return Response(b"".join(parts), mimetype=CONTENT_TYPE_LATEST,
                    headers={"Cache-Control": "no-store"})


def _process_metrics() -> bytes:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry)
    from prometheus_client import REGISTRY

    return generate_latest(REGISTRY)


def init_app(app: Flask) -> None:
    # The endpoint name is the one the tenant resolver lets through on any host.
    app.add_url_rule("/metrics", endpoint="health.metrics", view_func=metrics_view, methods=["GET"])
