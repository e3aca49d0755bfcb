"""`saas jobs …`: list, show, retry, cancel, reconcile — audited in the platform chain."""

from __future__ import annotations

import json

import sqlalchemy as sa

from saas.audit.models import PlatformAuditEvent
from saas.extensions import db
from saas.jobs import enqueue, run_pending
from saas.tenancy.context import tenant_context


def test_list_show_retry_and_cancel(cli, tenant_a, tenant_b, fresh_job):
    with tenant_context(tenant_a):
        failed = enqueue("test.permanent")
        db.session.commit()
    with tenant_context(tenant_b):
        waiting = enqueue("test.echo", value=1, delay=3600)
        db.session.commit()
    run_pending()

    rows = json.loads(cli("jobs", "list", "--state", "failed", "--json").output)
    assert [(r["id"], r["tenant"], r["error_code"]) for r in rows] == [(str(failed.id), "commune-a", "permanent")]
    assert json.loads(cli("jobs", "list", "--tenant", "commune-b", "--json").output)[0]["id"] == str(waiting.id)
    shown = json.loads(cli("jobs", "show", str(failed.id)).output)
    assert shown["error"] == "Document illisible : impossible de le signer."

    assert "remise en file" in cli("jobs", "retry", str(failed.id)).output
    assert fresh_job(failed.id).state == "queued"
    assert "annulée" in cli("jobs", "cancel", str(waiting.id)).output
    assert fresh_job(waiting.id).error_code == "cancelled"
    refused = cli("jobs", "cancel", str(waiting.id))
    assert refused.exit_code != 0 and "en attente ou en cours" in refused.output

    actions = db.session.execute(sa.select(PlatformAuditEvent.action, PlatformAuditEvent.actor)
                                 .order_by(PlatformAuditEvent.seq)).all()
    assert [a for a, _ in actions] == ["job.retry", "job.cancel"]
    assert all(actor.startswith("cli") for _, actor in actions)


def test_reconcile_reports_what_it_did(cli):
    report = json.loads(cli("jobs", "reconcile").output)
    assert report == {"expired": 0, "dead": 0, "redispatched": 0, "pushed": 0}
