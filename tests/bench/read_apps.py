"""The two WSGI apps bench_foundation (c) serves with gunicorn: the platform, and one bare SELECT.

    gunicorn 'tests.bench.read_apps:platform_app()'   the real application (SAAS_* settings)
    gunicorn 'tests.bench.read_apps:bare_app()'       Flask + one psycopg SELECT per request

Both read BENCH_* variables set by the benchmark.
"""

from __future__ import annotations

import os
import threading


def platform_app():
    """The platform as `saas serve` runs it, without the per-token rate limit (600/min)."""
    from saas import create_app

    # wrk would hit the limit within a second; the bare arm has none either. Jobs are not run
    # by the web processes, as in production (SAAS_JOBS_EMBEDDED_RUNNER=off from the bench).
    return create_app({"RATELIMIT_ENABLED": False})


def bare_app():
    """One raw psycopg SELECT of the document row per request, as JSON: the floor to compare to."""
    import psycopg
    from flask import Flask, abort, jsonify

    app = Flask("bare")
    dsn = os.environ["BENCH_DSN"]
    tenant = os.environ["BENCH_TENANT_ID"]
    local = threading.local()

    def cursor():
        if getattr(local, "conn", None) is None:
            # The app role under RLS, with the commune set once for the connection's lifetime.
            conn = psycopg.connect(dsn, autocommit=True)
            conn.execute("SELECT set_config('app.current_tenant', %s, false)", (tenant,))
            local.conn = conn
        return local.conn.cursor()

    @app.get("/api/v1/documents/<uuid:document_id>")
    def read(document_id):
        with cursor() as cur:
            cur.execute("SELECT * FROM ged_documents WHERE id = %s", (document_id,))
            row = cur.fetchone()
            if row is None:
                abort(404)
            names = [c.name for c in cur.description]
        return jsonify({name: (str(v) if v is not None else None) for name, v in zip(names, row, strict=True)})

    @app.get("/ping")
    def ping():
        return jsonify({"status": "ok"})

    return app
