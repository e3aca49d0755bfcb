"""Liveness and readiness probes for the load balancer and monitoring."""

from __future__ import annotations

import sqlalchemy as sa
from flask import Blueprint, current_app, jsonify

from saas.extensions import db

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():
    return jsonify({"status": "ok"})


@bp.get("/readyz")
def readyz():
    checks: dict[str, str] = {}
    try:
        db.session.execute(sa.text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:  # the probe reports, it does not crash
        checks["database"] = f"erreur: {type(exc).__name__}"
    settings = current_app.config["SAAS_SETTINGS"]
    if settings.redis_url:
        try:
            from redis import Redis

            Redis.from_url(settings.redis_url, socket_timeout=2).ping()
            checks["redis"] = "ok"
        except Exception as exc:
            checks["redis"] = f"erreur: {type(exc).__name__}"
    else:
        checks["redis"] = "non utilisé (mode embarqué)"
    try:
        current_app.extensions["saas_store"].ping()
        checks["storage"] = "ok"
    except Exception as exc:
        checks["storage"] = f"erreur: {type(exc).__name__}"
    ready = all(v == "ok" or v.startswith("non utilisé") for v in checks.values())
    return jsonify({"status": "ok" if ready else "degraded", "checks": checks}), (200 if ready else 503)
