"""'Annuler ce dépôt': the author erases a deposit made by mistake within 24 hours, whatever
its retention; nobody else, never later, never once someone else touched or shared it."""

from __future__ import annotations

import uuid
from datetime import timedelta

import sqlalchemy as sa

from saas.audit.models import AuditEvent
from saas.extensions import db
from saas.ged.models import Document
from saas.tenancy.context import tenant_context
from tests.ged.conftest import csrf_from, make_pdf, objects, upload


def _exists(tenant, doc_id) -> bool:
    with tenant_context(tenant):
        found = db.session.execute(sa.select(Document.id).where(Document.id == doc_id)).first()
        db.session.rollback()
    return found is not None


def _age(tenant, doc_id, hours: float) -> None:
    with tenant_context(tenant):
        document = db.session.get(Document, uuid.UUID(doc_id))
        document.created_at = document.created_at - timedelta(hours=hours)
        db.session.commit()


def test_the_author_cancels_a_permanent_deliberation_within_the_day(app, tenant_a, api, make_user):
    user = make_user(tenant_a, "agent")
    client = api(tenant_a, user=user)
    doc = upload(client, make_pdf(), "deliberation.pdf", type="deliberation").get_json()
    assert doc["final_fate"] == "conserver"
    # The trash refuses it: its retention holds.
    assert client.delete(f"/api/v1/documents/{doc['id']}").status_code == 409
    usage = client.get("/api/v1/ged/usage").get_json()
    assert usage["used_bytes"] > 0
    response = client.post(f"/api/v1/documents/{doc['id']}/cancel")
    assert response.status_code == 204, response.get_json()
    assert not _exists(tenant_a, doc["id"])
    assert objects(tenant_a, "ged/") == []
    assert client.get("/api/v1/ged/usage").get_json()["used_bytes"] == 0
    with tenant_context(tenant_a):
        event = db.session.execute(sa.select(AuditEvent).where(
            AuditEvent.action == "ged.cancel")).scalar_one()
        assert event.target == f"document:{doc['id']}" and event.actor_id == user.id
        assert event.data["sha256"] and event.data["title"] == doc["title"]
        db.session.rollback()


def test_nobody_else_may_cancel_it(app, tenant_a, api, make_user):
    doc = upload(api(tenant_a), make_pdf(), "a.pdf").get_json()
    for role in ("agent", "admin"):
        response = api(tenant_a, role).post(f"/api/v1/documents/{doc['id']}/cancel")
        assert response.status_code == 403, role
    assert _exists(tenant_a, doc["id"])


def test_never_after_the_window(app, tenant_a, api, make_user):
    user = make_user(tenant_a, "agent")
    client = api(tenant_a, user=user)
    doc = upload(client, make_pdf(), "a.pdf", type="arrete").get_json()
    _age(tenant_a, doc["id"], 24.1)
    response = client.post(f"/api/v1/documents/{doc['id']}/cancel")
    assert response.status_code == 409
    assert "24 heures" in response.get_json()["error"]["message"]
    assert _exists(tenant_a, doc["id"])


def test_never_once_someone_else_changed_it(app, tenant_a, api, make_user):
    user = make_user(tenant_a, "agent")
    client = api(tenant_a, user=user)
    doc = upload(client, make_pdf(), "a.pdf").get_json()
    assert api(tenant_a).patch(f"/api/v1/documents/{doc['id']}", json={"title": "Autre"}).status_code == 200
    assert client.post(f"/api/v1/documents/{doc['id']}/cancel").status_code == 409
    # Someone else's new version closes it too.
    doc2 = upload(client, make_pdf(), "b.pdf").get_json()
    assert upload(api(tenant_a), make_pdf("v2"), "b2.pdf",
                  path=f"/api/v1/documents/{doc2['id']}/versions").status_code == 201
    assert client.post(f"/api/v1/documents/{doc2['id']}/cancel").status_code == 409
    # The author's own edits do not.
    doc3 = upload(client, make_pdf(), "c.pdf").get_json()
    assert client.patch(f"/api/v1/documents/{doc3['id']}", json={"title": "Corrigé"}).status_code == 200
    assert client.post(f"/api/v1/documents/{doc3['id']}/cancel").status_code == 204


def test_never_once_shared(app, tenant_a, tenant_b, api, make_user):
    admin = make_user(tenant_a, "admin")
    client = api(tenant_a, "admin", user=admin)
    doc = upload(client, make_pdf(), "a.pdf").get_json()
    assert client.post("/api/v1/shares", json={"target": "commune-b",
                                               "document_id": doc["id"]}).status_code == 201
    response = client.post(f"/api/v1/documents/{doc['id']}/cancel")
    assert response.status_code == 409
    assert "partagé" in response.get_json()["error"]["message"]


def test_the_page_offers_it_to_the_author_only(app, tenant_a, api, web, make_user):
    user = make_user(tenant_a, "agent")
    author = web(tenant_a, user=user)
    doc = upload(api(tenant_a, user=user), make_pdf(), "a.pdf", type="deliberation").get_json()
    html = author.get(f"/ged/documents/{doc['id']}").get_data(as_text=True)
    assert "Annuler ce dépôt" in html
    assert "Annuler ce dépôt" not in web(tenant_a).get(f"/ged/documents/{doc['id']}").get_data(as_text=True)
    token = csrf_from(html)
    response = author.post(f"/ged/documents/{doc['id']}/annuler-depot", data={"csrf_token": token})
    assert response.status_code == 303
    assert not _exists(tenant_a, doc["id"])
    assert "annulé" in author.get(response.headers["Location"]).get_data(as_text=True)
