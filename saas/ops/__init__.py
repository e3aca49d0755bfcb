"""Operations endpoints on every host: liveness and readiness probes, Prometheus metrics."""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    from saas.ops import health, metrics

    app.register_blueprint(health.bp)
    # Named like the probes: the tenant resolver lets the `health.*` endpoints through on any host.
    app.add_url_rule("/metrics", endpoint="health.metrics", view_func=metrics.metrics_view,
                     methods=["GET"])
