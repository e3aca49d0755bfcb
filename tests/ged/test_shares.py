"""Intercommunal sharing: nothing of another commune is reachable without a live share naming us."""

from __future__ import annotations

import sqlalchemy as sa

from saas.extensions import db
from tests.ged.conftest import make_pdf, upload


def _shared_setup(tenant_a, tenant_b, api):
    owner = api(tenant_a, "admin")
    doc = upload(owner, make_pdf("Modèle de règlement intérieur"), "modele.pdf",
                 title="Modèle de règlement", classification="1.1").get_json()
    return owner, doc


def test_without_share_another_commune_gets_404(app, tenant_a, tenant_b, api, web):
    owner, doc = _shared_setup(tenant_a, tenant_b, api)
    reader = api(tenant_b, "agent")
    for path in (f"/api/v1/documents/{doc['id']}", f"/api/v1/documents/{doc['id']}/content",
                 f"/api/v1/shared-documents/{doc['id']}", f"/api/v1/shared-documents/{doc['id']}/content"):
        response = reader.get(path)
        assert response.status_code == 404, path
        assert response.get_json()["error"]["code"] == "not_found"
    assert reader.get("/api/v1/shared-documents").get_json()["total"] == 0
    assert reader.delete(f"/api/v1/documents/{doc['id']}").status_code == 404
    page = web(tenant_b, "agent")
    assert page.get(f"/ged/documents/{doc['id']}").status_code == 404
    assert page.get(f"/ged/partages/documents/{doc['id']}").status_code == 404


def test_share_opens_read_only_then_revoke_closes(app, tenant_a, tenant_b, api, web):
    owner, doc = _shared_setup(tenant_a, tenant_b, api)
    created = owner.post("/api/v1/shares", json={"target": "commune-b", "document_id": doc["id"]})
    assert created.status_code == 201, created.get_json()
    share = created.get_json()
    reader = api(tenant_b, "agent")
    listing = reader.get("/api/v1/shared-documents").get_json()
    assert [d["id"] for d in listing["items"]] == [doc["id"]]
    got = reader.get(f"/api/v1/shared-documents/{doc['id']}")
    assert got.status_code == 200
    assert got.get_json()["owner"]["slug"] == "commune-a" and got.get_json()["read_only"] is True
    content = reader.get(f"/api/v1/shared-documents/{doc['id']}/content")
    assert content.status_code == 200 and content.data == make_pdf("Modèle de règlement intérieur")
    # Still not one of B's own documents: no write path exists through a share.
    assert reader.get(f"/api/v1/documents/{doc['id']}").status_code == 404
    assert reader.delete(f"/api/v1/documents/{doc['id']}").status_code == 404
    assert upload(reader, make_pdf(), "x.pdf",
                  path=f"/api/v1/documents/{doc['id']}/versions").status_code == 404
    assert reader.patch(f"/api/v1/documents/{doc['id']}", json={"title": "pirate"}).status_code == 404
    page = web(tenant_b, "agent")
    assert page.get(f"/ged/partages/documents/{doc['id']}").status_code == 200
    assert page.get(f"/ged/partages/documents/{doc['id']}/contenu").status_code == 200
    assert owner.delete(f"/api/v1/shares/{share['id']}").status_code == 204
    assert reader.get(f"/api/v1/shared-documents/{doc['id']}").status_code == 404
    assert reader.get(f"/api/v1/shared-documents/{doc['id']}/content").status_code == 404
    assert page.get(f"/ged/partages/documents/{doc['id']}").status_code == 404


def test_share_to_b_does_not_open_to_c(app, tenant_a, tenant_b, make_tenant, api):
    owner, doc = _shared_setup(tenant_a, tenant_b, api)
    tenant_c = make_tenant("commune-c", name="Commune C")
    owner.post("/api/v1/shares", json={"target": "commune-b", "document_id": doc["id"]})
    third = api(tenant_c, "admin")
    assert third.get(f"/api/v1/shared-documents/{doc['id']}").status_code == 404
    assert third.get("/api/v1/shared-documents").get_json()["total"] == 0


def test_folder_share_covers_sub_folders_and_not_restricted_documents(app, tenant_a, tenant_b, api):
    owner = api(tenant_a, "admin")
    inside = upload(owner, make_pdf(), "a.pdf", classification="5.1").get_json()
    secret = upload(owner, make_pdf(), "b.pdf", classification="5.2",
                    confidentiality="restricted").get_json()
    outside = upload(owner, make_pdf(), "c.pdf", classification="2.1").get_json()
    response = owner.post("/api/v1/shares", json={"target": "commune-b", "classification": "5"})
    assert response.status_code == 201
    reader = api(tenant_b)
    ids = {d["id"] for d in reader.get("/api/v1/shared-documents").get_json()["items"]}
    assert ids == {inside["id"]}
    assert reader.get(f"/api/v1/shared-documents/{secret['id']}").status_code == 404
    assert reader.get(f"/api/v1/shared-documents/{outside['id']}").status_code == 404
    # A document moved to the trash leaves the share at once.
    owner.delete(f"/api/v1/documents/{inside['id']}")
    assert reader.get(f"/api/v1/shared-documents/{inside['id']}").status_code == 404
    refused = owner.post("/api/v1/shares", json={"target": "commune-b", "document_id": secret["id"]})
    assert refused.status_code == 409


def test_only_admins_share(app, tenant_a, tenant_b, api):
    agent = api(tenant_a, "agent")
    doc = upload(agent, make_pdf(), "a.pdf").get_json()
    assert agent.post("/api/v1/shares", json={"target": "commune-b",
                                              "document_id": doc["id"]}).status_code == 403


def test_raw_sql_as_b_sees_only_shared_rows(app, tenant_a, tenant_b, api, pg_database):
    from saas.tenancy.context import tenant_context

    owner = api(tenant_a, "admin")
    shared = upload(owner, make_pdf(), "s.pdf", title="Partagé").get_json()
    private = upload(owner, make_pdf(), "p.pdf", title="Privé").get_json()
    owner.post("/api/v1/shares", json={"target": "commune-b", "document_id": shared["id"]})
    engine = sa.create_engine(pg_database.app_url)  # the app role: no BYPASSRLS
    try:
        def visible(tenant) -> tuple[set[str], int, int]:
            with engine.begin() as conn:
                conn.execute(sa.text("SELECT set_config('app.current_tenant', :t, true)"),
                             {"t": str(tenant.id)})
                docs = set(map(str, conn.execute(sa.text("SELECT id FROM ged_documents")).scalars()))
                versions = conn.execute(sa.text("SELECT count(*) FROM ged_versions")).scalar()
                shares = conn.execute(sa.text("SELECT count(*) FROM ged_shares")).scalar()
                return docs, versions, shares
        docs, versions, shares = visible(tenant_b)
        assert docs == {shared["id"]} and versions == 1 and shares == 1
        with engine.begin() as conn:
            conn.execute(sa.text("SELECT set_config('app.current_tenant', :t, true)"),
                         {"t": str(tenant_b.id)})
            # Read-only: an UPDATE through the share touches nothing.
            updated = conn.execute(sa.text("UPDATE ged_documents SET title = 'x'")).rowcount
            assert updated == 0
        assert visible(tenant_a)[0] == {shared["id"], private["id"]}
        with engine.begin() as conn:
            conn.execute(sa.text("SELECT set_config('app.current_tenant', :t, true)"),
                         {"t": str(tenant_a.id)})
            conn.execute(sa.text("UPDATE ged_shares SET revoked_at = now()"))
        assert visible(tenant_b) == (set(), 0, 0)
    finally:
        engine.dispose()
    with tenant_context(tenant_a):
        db.session.rollback()


def test_share_and_revoke_are_audited(app, tenant_a, tenant_b, api):
    from saas.audit.models import AuditEvent
    from saas.tenancy.context import tenant_context

    owner, doc = _shared_setup(tenant_a, tenant_b, api)
    share = owner.post("/api/v1/shares", json={"target": "commune-b", "document_id": doc["id"]}).get_json()
    owner.delete(f"/api/v1/shares/{share['id']}")
    with tenant_context(tenant_a):
        actions = db.session.execute(sa.select(AuditEvent.action)).scalars().all()
    assert "ged.share" in actions and "ged.revoke" in actions


def test_a_suspended_communes_shares_serve_nothing(app, tenant_a, tenant_b, api, web):
    from saas.tenancy.models import TenantStatus

    owner, doc = _shared_setup(tenant_a, tenant_b, api)
    assert owner.post("/api/v1/shares", json={"target": "commune-b", "document_id": doc["id"]}
                      ).status_code == 201
    reader = api(tenant_b, "agent")
    page = web(tenant_b, "agent")
    paths = (f"/api/v1/shared-documents/{doc['id']}", f"/api/v1/shared-documents/{doc['id']}/content")
    assert [reader.get(p).status_code for p in paths] == [200, 200]
    tenant_a.status = TenantStatus.SUSPENDED
    db.session.commit()
    assert reader.get("/api/v1/shared-documents").get_json()["total"] == 0
    assert [reader.get(p).status_code for p in paths] == [404, 404]
    assert page.get(f"/ged/partages/documents/{doc['id']}").status_code == 404
    assert page.get(f"/ged/partages/documents/{doc['id']}/contenu").status_code == 404
    assert doc["title"] not in page.get("/ged/partages").get_data(as_text=True)
    tenant_a.status = TenantStatus.ACTIVE
    db.session.commit()
    assert reader.get(paths[0]).status_code == 200


def test_elus_do_not_list_the_communes_shares(app, tenant_a, tenant_b, api):
    owner, doc = _shared_setup(tenant_a, tenant_b, api)
    assert owner.post("/api/v1/shares", json={"target": "commune-b", "document_id": doc["id"]}
                      ).status_code == 201
    elu = api(tenant_a, "elu")
    refused = elu.get("/api/v1/shares")
    assert refused.status_code == 403
    assert doc["id"] not in refused.get_data(as_text=True)
    assert api(tenant_a, "agent").get("/api/v1/shares").get_json()["total"] == 1
    assert owner.get("/api/v1/shares").get_json()["total"] == 1
