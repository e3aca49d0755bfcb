"""The embedded default (SQLite, no Redis): the same jobs run in-process."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from flask.cli import ScriptInfo

from saas.extensions import db
from saas.jobs import enqueue, get_job, run_pending
from saas.jobs.records import get_job_any_tenant
from saas.tenancy.context import tenant_context
from tests.jobs.conftest import set_jobs_settings, wait_for


@pytest.fixture
def commune(sqlite_app):
    from saas.tenancy.models import Tenant

    tenant = Tenant(slug="village", name="Village", kind="commune", insee="44001",
                    siren="210000018", population=300, departement="44", origins=[], modules=[],
                    quota_bytes=0, branding={})
    db.session.add(tenant)
    db.session.commit()
    return tenant


def _read(job_id):
    db.session.rollback()
    db.session.expire_all()
    return get_job_any_tenant(job_id)


def test_a_background_thread_runs_jobs_after_commit(sqlite_app, commune):
    runtime = sqlite_app.extensions["saas_jobs"]
    assert runtime.embedded
    with tenant_context(commune):
        job = enqueue("test.echo", value="thread")
        db.session.commit()  # wakes the in-process runner
    done = wait_for(lambda: _read(job.id).state == "succeeded" and _read(job.id), 30, "the job to run")
    assert done.result == {"value": "thread", "tenant": str(commune.id)}
    assert runtime.runner.running
    runtime.runner.stop()


def test_retries_dead_letters_and_idempotency_work_on_sqlite(sqlite_app, commune, box, monkeypatch):
    set_jobs_settings(sqlite_app, monkeypatch, embedded_runner="off")  # this test drives the runs
    with tenant_context(commune):
        first = enqueue("test.broken", key="k", box=str(box))
        again = enqueue("test.broken", key="k", box=str(box))
        db.session.commit()
        assert first.id == again.id
    import time

    for _ in range(3):
        run_pending()
        time.sleep(0.45)
    dead = _read(first.id)
    assert (dead.state, dead.attempts) == ("dead", 3)
    with tenant_context(commune):
        assert get_job(first.id).error == "RuntimeError: bug"


def test_saas_worker_burst_in_embedded_mode(sqlite_app, commune, monkeypatch):
    from saas.cli import main

    set_jobs_settings(sqlite_app, monkeypatch, embedded_runner="off")
    with tenant_context(commune):
        job = enqueue("test.echo", value="cli")
        db.session.commit()
    result = CliRunner().invoke(main, ["worker", "--burst"], obj=ScriptInfo(create_app=lambda: sqlite_app))
    assert result.exit_code == 0, result.output
    assert "1 tâche(s)" in result.output
    assert _read(job.id).result["value"] == "cli"
