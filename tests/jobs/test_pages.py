"""The console's job pages, a commune's progress page, the API route and /metrics."""

from __future__ import annotations

import sqlalchemy as sa

from saas.audit.models import PlatformAuditEvent
from saas.extensions import db
from saas.jobs import enqueue, run_pending
from saas.tenancy.context import tenant_context
from tests.jobs.conftest import csrf_from


def _job(tenant, kind="test.echo", **args):
    with tenant_context(tenant):
        job = enqueue(kind, **args)
        db.session.commit()
    return job


def test_console_shows_queues_backlog_and_failures(app, make_user, logged_in, tenant_a, tenant_b):
    admin = make_user(platform_admin=True)
    for _ in range(3):
        _job(tenant_a, delay=3600)
    dead = _job(tenant_b, "test.permanent")
    run_pending()
    client = logged_in(admin)
    page = client.get("/console/jobs/")
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert "Arriéré par commune" in html and "Commune A" in html and "Commune B" in html
    assert "Document illisible" in html  # the failure reason, read as commune B
    assert f"/console/jobs/{dead.id}/retry" in html
    detail = client.get(f"/console/jobs/{dead.id}")
    assert detail.status_code == 200 and "test.permanent" in detail.get_data(as_text=True)


def test_console_retry_and_cancel_are_posted_with_csrf_and_audited(
        app, make_user, logged_in, tenant_a, fresh_job):
    admin = make_user(platform_admin=True, email="it@epci.example")
    failed = _job(tenant_a, "test.permanent")
    waiting = _job(tenant_a, delay=3600)
    run_pending()
    client = logged_in(admin)
    page = client.get(f"/console/jobs/{failed.id}").get_data(as_text=True)
    assert client.post(f"/console/jobs/{failed.id}/retry").status_code == 400  # no CSRF token
    response = client.post(f"/console/jobs/{failed.id}/retry", data={"csrf_token": csrf_from(page)})
    assert response.status_code == 303
    assert fresh_job(failed.id).state == "queued"
    response = client.post(f"/console/jobs/{waiting.id}/cancel",
                           data={"csrf_token": csrf_from(page), "next": "https://evil.example/"})
    assert response.status_code == 303 and response.headers["Location"].endswith(f"/console/jobs/{waiting.id}")
    assert fresh_job(waiting.id).state == "failed"
    audit = db.session.execute(sa.select(PlatformAuditEvent).order_by(PlatformAuditEvent.seq)).scalars().all()
    assert [(a.action, a.actor) for a in audit] == [("job.retry", "it@epci.example"),
                                                     ("job.cancel", "it@epci.example")]


def test_console_is_for_platform_admins_on_the_console_host(
        app, make_user, logged_in, client_for, tenant_a):
    agent = make_user(tenant_a, "admin")
    assert client_for("admin").get("/console/jobs/").status_code in (302, 401)
    assert logged_in(agent, tenant=tenant_a).get("/console/jobs/").status_code == 404
    assert client_for(tenant_a).get("/console/jobs/").status_code == 404


def test_commune_progress_page_refreshes_while_running(app, make_user, logged_in, tenant_a, tenant_b):
    user = make_user(tenant_a)
    job = _job(tenant_a, value=1)
    other = _job(tenant_b, value=2)
    client = logged_in(user, tenant=tenant_a)
    page = client.get(f"/taches/{job.id}")
    assert page.status_code == 200 and page.headers["Refresh"] == "3"
    assert "attend son tour" in page.get_data(as_text=True)
    assert "Refresh" not in client.get(f"/taches/{job.id}?auto=0").headers
    assert client.get(f"/taches/{other.id}").status_code == 404  # another commune's: absent
    run_pending()
    done = client.get(f"/taches/{job.id}")
    assert "Refresh" not in done.headers
    assert '<progress max="100" value="100"' in done.get_data(as_text=True)


def test_api_job_status_is_tenant_scoped(app, make_user, tenant_a, tenant_b, client_for):
    from saas.auth.tokens import create_token

    user = make_user(tenant_a)
    token, _row = create_token(user, tenant_a, "test")
    db.session.commit()
    job = _job(tenant_a, "test.permanent")
    other = _job(tenant_b, value=1)
    run_pending()
    headers = {"Authorization": f"Bearer {token}"}
    client = client_for(tenant_a)
    body = client.get(f"/api/v1/jobs/{job.id}", headers=headers).get_json()
    assert {k: body[k] for k in ("id", "kind", "state", "progress", "result")} == {
        "id": str(job.id), "kind": "test.permanent", "state": "failed", "progress": 0, "result": None}
    assert body["error"] == {"code": "permanent", "message": "Document illisible : impossible de le signer."}
    missing = client.get(f"/api/v1/jobs/{other.id}", headers=headers)
    assert missing.status_code == 404 and missing.get_json()["error"]["code"] == "not_found"
    assert client.get(f"/api/v1/jobs/{job.id}").status_code == 401


def test_metrics_for_the_local_network_only_without_tenant_labels(app, tenant_a, client_for):
    _job(tenant_a, delay=3600)
    _job(tenant_a, value=1)
    run_pending()
    client = client_for(None)
    page = client.get("/metrics")
    text = page.get_data(as_text=True)
    assert page.status_code == 200
    assert 'saas_jobs_total{queue="default",state="queued"} 1.0' in text
    assert 'saas_jobs_total{queue="default",state="succeeded"} 1.0' in text
    assert 'saas_job_wait_seconds_count{queue="default"} 1.0' in text
    assert 'saas_job_wait_seconds_bucket{le="+Inf",queue="default"} 1.0' in text
    assert str(tenant_a.id) not in text and "commune-a" not in text
    public = client.get("/metrics", environ_base={"REMOTE_ADDR": "80.67.169.12"})
    assert public.status_code == 403
    relayed = client.get("/metrics", headers={"X-Forwarded-For": "80.67.169.12"})
    assert relayed.status_code == 403  # came through a proxy nobody declared trusted


def test_platform_admin_may_read_metrics_from_anywhere_on_the_console(app, make_user, logged_in):
    admin = make_user(platform_admin=True)
    client = logged_in(admin)
    page = client.get("/metrics", environ_base={"REMOTE_ADDR": "80.67.169.12"})
    assert page.status_code == 200 and "saas_jobs_total" in page.get_data(as_text=True)
