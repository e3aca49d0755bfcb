"""Retention holds from the moment a document becomes final, whatever its status becomes; its
author cannot shorten it; the trash purge never destroys what only an approved bordereau may."""

from __future__ import annotations

import uuid
from datetime import date, timedelta

import pytest
import sqlalchemy as sa

from saas.extensions import db
from saas.ged.models import Document
from saas.modelbase import utcnow
from saas.tenancy.context import tenant_context
from tests.ged.conftest import make_pdf, objects, upload


def _age_trash(tenant, doc_id: str, days: int = 31) -> None:
    with tenant_context(tenant):
        db.session.execute(sa.update(Document).where(Document.id == uuid.UUID(doc_id))
                           .values(deleted_at=utcnow() - timedelta(days=days)))
        db.session.commit()


def _purge(tenant) -> int:
    from saas.ged import tasks

    with tenant_context(tenant):
        return tasks.purge_trash()["purged"]


def test_back_to_draft_does_not_lift_the_retention(app, tenant_a, api):
    client = api(tenant_a)
    deliberation = upload(client, make_pdf(), "d.pdf", type="deliberation").get_json()
    assert (deliberation["status"], deliberation["final_fate"]) == ("final", "conserver")
    url = f"/api/v1/documents/{deliberation['id']}"
    assert client.delete(url).status_code == 409
    drafted = client.patch(url, json={"status": "draft"})
    assert drafted.status_code == 200 and drafted.get_json()["status"] == "draft"
    refused = client.delete(url)
    assert refused.status_code == 409
    assert refused.get_json()["error"]["code"] == "under_retention"
    assert "conservation définitive" in refused.get_json()["error"]["message"]
    assert api(tenant_a, "admin").delete(url).status_code == 409  # nobody: a bordereau's job


@pytest.mark.parametrize("change", [
    {"retention_years": 0}, {"retention_years": None}, {"final_fate": "detruire"},
    {"document_date": "1800-01-01"}, {"status": "draft", "final_fate": "trier"},
])
def test_the_author_cannot_shorten_the_retention_of_a_final_document(app, tenant_a, api, change):
    agent = api(tenant_a)
    invoice = upload(agent, make_pdf(), "f.pdf", type="facture",
                     final_fate="conserver").get_json()
    url = f"/api/v1/documents/{invoice['id']}"
    refused = agent.patch(url, json=change)
    assert refused.status_code == 403, refused.get_json()
    assert refused.get_json()["error"]["code"] == "retention_locked"
    after = agent.get(url).get_json()
    assert (after["retention_years"], after["final_fate"], after["status"]) == (10, "conserver", "final")
    assert agent.delete(url).status_code == 409
    # Longer is always possible; shorter is for the commune's administrators (audited).
    assert agent.patch(url, json={"retention_years": 30}).status_code == 200
    assert api(tenant_a, "admin").patch(url, json=change).status_code == 200


def test_a_draft_since_deposit_is_free_to_go(app, tenant_a, api):
    agent = api(tenant_a)
    draft = upload(agent, make_pdf(), "b.pdf", type="deliberation", status="draft").get_json()
    url = f"/api/v1/documents/{draft['id']}"
    assert agent.patch(url, json={"final_fate": "detruire", "retention_years": 0}).status_code == 200
    assert agent.delete(url).status_code == 204
    _age_trash(tenant_a, draft["id"])
    assert _purge(tenant_a) == 1
    assert objects(tenant_a, "ged/") == []


def test_the_purge_leaves_held_documents_to_a_bordereau(app, tenant_a, api):
    from saas.ged.services import retention
    from saas.tenancy.current import current_tenant

    admin = api(tenant_a, "admin")
    long_ago = (date.today() - timedelta(days=365 * 12)).isoformat()
    invoice = upload(admin, make_pdf(), "f.pdf", type="facture", document_date=long_ago).get_json()
    url = f"/api/v1/documents/{invoice['id']}"
    assert admin.delete(url).status_code == 204  # its DUA is over: it may go to the trash
    # A final délibération that reached the trash (as the status trick allowed before).
    deliberation = upload(admin, make_pdf(), "d.pdf", type="deliberation").get_json()
    with tenant_context(tenant_a):
        db.session.execute(sa.update(Document).where(Document.id == uuid.UUID(deliberation["id"]))
                           .values(deleted_at=utcnow(), status="draft"))
        db.session.commit()
    _age_trash(tenant_a, invoice["id"])
    _age_trash(tenant_a, deliberation["id"])
    assert _purge(tenant_a) == 0
    assert len(objects(tenant_a, "ged/")) == 2
    trash = {d["id"] for d in admin.get("/api/v1/trash").get_json()["items"]}
    assert trash == {invoice["id"], deliberation["id"]}
    # The sweep proposes the invoice from the trash; approving the bordereau destroys it.
    with tenant_context(tenant_a):
        proposal = retention.retention_sweep()
        assert [item.document_id for item in proposal.items] == [uuid.UUID(invoice["id"])]
        from saas.auth.actor import Actor

        destroyed = retention.decide_proposal(current_tenant(), proposal, {},
                                              Actor(admin.user.id, "admin", admin.user))
    assert destroyed == 1
    assert [d["id"] for d in admin.get("/api/v1/trash").get_json()["items"]] == [deliberation["id"]]
    assert len(objects(tenant_a, "ged/")) == 1
