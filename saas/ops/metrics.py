"""Prometheus metrics: `GET /metrics`, for platform admins or the local network only.

Job metrics come from saas.jobs (read from the database at scrape time). Other process metrics
(prometheus-flask-exporter's, when installed) come from the default registry, or from every
process's files when PROMETHEUS_MULTIPROC_DIR is set under gunicorn.
"""

from __future__ import annotations

import ipaddress
import os

from flask import Response, abort, current_app, g, request
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from saas.jobs.metrics import job_metrics
from saas.netutil import client_ip
from saas.tenancy.resolver import HostKind


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
    """Tell whether a platform admin is logged in on the console host."""
    from flask_login import current_user

    if g.get("host_kind") != HostKind.CONSOLE:
        return False
    return bool(getattr(current_user, "is_authenticated", False) and current_user.is_platform_admin)


class _JobsCollector:
    def collect(self):
        yield from job_metrics()


def metrics_view() -> Response:
    if not (_from_local_network() or _platform_admin()):
        abort(403)
    parts = [_process_metrics()]
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_JobsCollector())
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
