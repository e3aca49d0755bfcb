"""The documents API of API.md: upload, read, versions, content (Range, ETag), search, trash."""

from __future__ import annotations

import hashlib
import uuid

import sqlalchemy as sa

from saas.extensions import db
from saas.ged.models import Document, DocumentVersion
from tests.ged.conftest import make_docx, make_odt, make_pdf, objects, run_jobs, upload


def test_upload_returns_the_document_and_stores_the_bytes(app, tenant_a, api):
    client = api(tenant_a)
    pdf = make_pdf("Budget primitif")
    response = upload(client, pdf, "budget.pdf", title="Budget 2025", type="deliberation",
                      classification="2.1", tags="budget, finances")
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert body["title"] == "Budget 2025"
    assert body["type"] == "deliberation"
    assert body["classification"] == "2.1"
    assert body["tags"] == ["budget", "finances"]
    assert body["versions_count"] == 1
    current = body["current_version"]
    assert current == {**current, "number": 1, "size": len(pdf),
                       "sha256": hashlib.sha256(pdf).hexdigest(),
                       "content_type": "application/pdf", "filename": "budget.pdf"}
    assert set(body) >= {"id", "title", "type", "classification", "tags", "created_at",
                         "current_version", "versions_count"}
    assert len(objects(tenant_a, "ged/")) == 1
    got = client.get(f"/api/v1/documents/{body['id']}")
    assert got.status_code == 200 and got.get_json()["id"] == body["id"]


def test_content_etag_range_and_versions(app, tenant_a, api):
    client = api(tenant_a)
    first = make_pdf("Version une")
    doc = upload(client, first, "acte.pdf").get_json()
    second = make_pdf("Version deux, plus longue")
    response = upload(client, second, "acte-v2.pdf", path=f"/api/v1/documents/{doc['id']}/versions")
    assert response.status_code == 201, response.get_json()
    assert response.get_json()["number"] == 2
    content = client.get(f"/api/v1/documents/{doc['id']}/content")
    assert content.status_code == 200
    assert content.data == second
    etag = f'"{hashlib.sha256(second).hexdigest()}"'
    assert content.headers["ETag"] == etag
    assert content.headers["Content-Type"] == "application/pdf"
    assert content.headers["Accept-Ranges"] == "bytes"
    assert "filename*=UTF-8''acte-v2.pdf" in content.headers["Content-Disposition"]
    old = client.get(f"/api/v1/documents/{doc['id']}/content?version=1")
    assert old.data == first
    assert old.headers["ETag"] == f'"{hashlib.sha256(first).hexdigest()}"'
    cached = client.get(f"/api/v1/documents/{doc['id']}/content", headers={"If-None-Match": etag})
    assert cached.status_code == 304 and cached.data == b""
    part = client.get(f"/api/v1/documents/{doc['id']}/content", headers={"Range": "bytes=5-14"})
    assert part.status_code == 206
    assert part.data == second[5:15]
    assert part.headers["Content-Range"] == f"bytes 5-14/{len(second)}"
    suffix = client.get(f"/api/v1/documents/{doc['id']}/content", headers={"Range": "bytes=-7"})
    assert suffix.status_code == 206 and suffix.data == second[-7:]
    stale = client.get(f"/api/v1/documents/{doc['id']}/content",
                       headers={"Range": "bytes=0-3", "If-Range": '"autre"'})
    assert stale.status_code == 200 and stale.data == second
    bad = client.get(f"/api/v1/documents/{doc['id']}/content",
                     headers={"Range": f"bytes={len(second) + 10}-"})
    assert bad.status_code == 416
    assert bad.get_json()["error"]["code"] == "range_not_satisfiable"
    assert bad.headers["Content-Range"] == f"bytes */{len(second)}"
    missing = client.get(f"/api/v1/documents/{doc['id']}/content?version=9")
    assert missing.status_code == 404
    assert missing.get_json()["error"]["code"] == "version_not_found"
    huge = client.get(f"/api/v1/documents/{doc['id']}/content?version={2**63}")
    assert huge.status_code == 404 and huge.get_json()["error"]["code"] == "version_not_found"
    gone = client.get(f"/api/v1/documents/{uuid.uuid4()}/content")
    assert gone.status_code == 404 and gone.get_json()["error"]["code"] == "not_found"
    versions = client.get(f"/api/v1/documents/{doc['id']}/versions").get_json()["items"]
    assert [v["number"] for v in versions] == [2, 1]


def test_unicode_filename_uses_rfc5987(app, tenant_a, api):
    client = api(tenant_a)
    doc = upload(client, make_pdf(), "Délibération n°12 été.pdf").get_json()
    response = client.get(f"/api/v1/documents/{doc['id']}/content")
    disposition = response.headers["Content-Disposition"]
    assert disposition.startswith("attachment; filename=\"")
    assert "filename*=UTF-8''D%C3%A9lib%C3%A9ration%20n%C2%B012%20%C3%A9t%C3%A9.pdf" in disposition
    inline = client.get(f"/api/v1/documents/{doc['id']}/content?disposition=inline")
    assert inline.headers["Content-Disposition"].startswith("inline;")
    assert "frame-ancestors 'self'" in inline.headers["Content-Security-Policy"]


def test_sha256_is_rechecked_on_read(app, tenant_a, api):
    import pytest

    client = api(tenant_a)
    doc = upload(client, make_pdf(), "a.pdf").get_json()
    from saas.tenancy.context import tenant_context

    with tenant_context(tenant_a):
        changed = db.session.execute(sa.update(DocumentVersion).values(sha256="0" * 64)).rowcount
        db.session.commit()
    assert changed == 1
    # A small file is hashed before its first byte: a clean error, no body.
    refused = client.get(f"/api/v1/documents/{doc['id']}/content")
    assert refused.status_code == 500
    assert refused.get_json()["error"]["code"] == "integrity_error"
    # A large one (here: anything, the threshold at 0) is refused before its first byte too
    # when the store's own record of the SHA-256 already differs from the database's.
    from tests.ged.conftest import ged_settings

    monkeypatch = pytest.MonkeyPatch()
    try:
        ged_settings(monkeypatch, app, verify_whole_below=0)
        for headers in ({}, {"Range": "bytes=10-19"}):
            refused = client.get(f"/api/v1/documents/{doc['id']}/content", headers=headers)
            assert refused.status_code == 500
            assert refused.get_json()["error"]["code"] == "integrity_error"
    finally:
        monkeypatch.undo()


def test_search_in_french_is_accent_and_case_blind_with_stemming(app, tenant_a, api):
    client = api(tenant_a)
    upload(client, make_pdf("Travaux de voirie rue des Ecoles"), "voirie.pdf",
           title="Marché de réfection", type="contrat", tags="voirie")
    upload(client, make_docx(["Les élèves de l'école communale", "Cantine scolaire"]),
           "cantine.docx", title="Règlement de la cantine", type="courrier")
    upload(client, make_odt(["Délibérations budgétaires du conseil"]), "budget.odt",
           title="Compte administratif", type="deliberation", tags="finances")
    assert run_jobs() == 3
    def titles(query):
        response = client.get("/api/v1/documents", query_string=query)
        assert response.status_code == 200, response.get_json()
        return sorted(d["title"] for d in response.get_json()["items"])
    assert titles({"q": "MARCHE"}) == ["Marché de réfection"]          # accents and case
    assert titles({"q": "écoles"}) == ["Marché de réfection", "Règlement de la cantine"]  # stemming + text
    assert titles({"q": "deliberation budgetaire"}) == ["Compte administratif"]  # ODT text, stemmed
    assert titles({"q": "cantine", "type": "courrier"}) == ["Règlement de la cantine"]
    assert titles({"q": "cantine", "type": "contrat"}) == []
    assert titles({"tag": "finances"}) == ["Compte administratif"]
    assert titles({"q": "inexistantissime"}) == []
    listing = client.get("/api/v1/documents").get_json()
    assert listing["total"] == 3 and listing["page"] == 1 and len(listing["items"]) == 3
    assert client.get("/api/v1/documents?type=nimporte").status_code == 422
    assert client.get("/api/v1/documents?date_from=hier").status_code == 422


def test_filters_by_classification_and_date(app, tenant_a, api):
    client = api(tenant_a)
    upload(client, make_pdf(), "a.pdf", title="Délib A", classification="5.1",
           document_date="2024-03-01")
    upload(client, make_pdf(), "b.pdf", title="Arrêté B", classification="5.2",
           document_date="2025-06-01")
    upload(client, make_pdf(), "c.pdf", title="Facture C", classification="2.2",
           document_date="2025-01-15")
    def titles(**query):
        return sorted(d["title"] for d in client.get("/api/v1/documents", query_string=query)
                      .get_json()["items"])
    assert titles(classification="5") == ["Arrêté B", "Délib A"]  # a folder includes sub-folders
    assert titles(classification="5.2") == ["Arrêté B"]
    assert titles(date_from="2025-01-01") == ["Arrêté B", "Facture C"]
    assert titles(date_from="2025-01-01", date_to="2025-03-01") == ["Facture C"]


def test_trash_and_restore(app, tenant_a, api):
    client = api(tenant_a)
    doc = upload(client, make_pdf(), "a.pdf").get_json()
    assert client.delete(f"/api/v1/documents/{doc['id']}").status_code == 204
    assert client.get(f"/api/v1/documents/{doc['id']}").status_code == 404
    trash = client.get("/api/v1/trash").get_json()
    assert [d["id"] for d in trash["items"]] == [doc["id"]]
    assert client.get("/api/v1/documents").get_json()["total"] == 0
    restored = client.post(f"/api/v1/documents/{doc['id']}/restore")
    assert restored.status_code == 200
    assert client.get(f"/api/v1/documents/{doc['id']}").status_code == 200
    assert client.post(f"/api/v1/documents/{doc['id']}/restore").status_code == 409


def test_retention_blocks_deletion(app, tenant_a, api):
    client = api(tenant_a)
    invoice = upload(client, make_pdf(), "f.pdf", type="facture").get_json()
    assert invoice["retention_years"] == 10 and invoice["final_fate"] == "detruire"
    response = client.delete(f"/api/v1/documents/{invoice['id']}")
    assert response.status_code == 409
    assert response.get_json()["error"]["code"] == "under_retention"
    assert "durée d'utilité administrative" in response.get_json()["error"]["message"]
    deliberation = upload(client, make_pdf(), "d.pdf", type="deliberation").get_json()
    assert client.delete(f"/api/v1/documents/{deliberation['id']}").status_code == 409
    admin = api(tenant_a, "admin")
    doc = upload(admin, make_pdf(), "x.pdf").get_json()
    held = admin.patch(f"/api/v1/documents/{doc['id']}", json={"legal_hold": True})
    assert held.status_code == 200 and held.get_json()["legal_hold"] is True
    blocked = admin.delete(f"/api/v1/documents/{doc['id']}")
    assert blocked.status_code == 409 and "gel juridique" in blocked.get_json()["error"]["message"]
    # An agent may not lift a legal hold.
    assert client.patch(f"/api/v1/documents/{doc['id']}", json={"legal_hold": False}).status_code == 403


def test_elus_read_only_and_confidential_documents(app, tenant_a, api, make_user):
    agent = api(tenant_a, "agent")
    other_agent = api(tenant_a, "agent")
    elu = api(tenant_a, "elu")
    public = upload(agent, make_pdf(), "p.pdf").get_json()
    secret = upload(agent, make_pdf(), "paie.pdf", type="bulletin_paie",
                    confidentiality="restricted").get_json()
    assert other_agent.get(f"/api/v1/documents/{public['id']}").status_code == 200
    assert other_agent.get(f"/api/v1/documents/{secret['id']}").status_code == 404
    assert other_agent.get(f"/api/v1/documents/{secret['id']}/content").status_code == 404
    assert agent.get(f"/api/v1/documents/{secret['id']}").status_code == 200
    assert elu.get(f"/api/v1/documents/{public['id']}").status_code == 404
    assert upload(elu, make_pdf(), "e.pdf").status_code == 403
    granted = agent.patch(f"/api/v1/documents/{public['id']}",
                          json={"access": [elu.user.email]})
    assert granted.status_code == 200, granted.get_json()
    assert elu.get(f"/api/v1/documents/{public['id']}").status_code == 200
    ids = {d["id"] for d in other_agent.get("/api/v1/documents").get_json()["items"]}
    assert ids == {public["id"]}


def test_every_write_is_audited(app, tenant_a, api):
    from saas.audit.models import AuditEvent
    from saas.tenancy.context import tenant_context

    client = api(tenant_a, "admin")
    doc = upload(client, make_pdf(), "a.pdf").get_json()
    upload(client, make_pdf("v2"), "a.pdf", path=f"/api/v1/documents/{doc['id']}/versions")
    client.delete(f"/api/v1/documents/{doc['id']}")
    client.post(f"/api/v1/documents/{doc['id']}/restore")
    secret = upload(client, make_pdf(), "s.pdf", confidentiality="restricted").get_json()
    client.get(f"/api/v1/documents/{secret['id']}/content").data  # noqa: B018
    with tenant_context(tenant_a):
        actions = db.session.execute(sa.select(AuditEvent.action).order_by(AuditEvent.seq)).scalars().all()
    for action in ("ged.upload", "ged.version", "ged.delete", "ged.restore", "ged.download"):
        assert action in actions


def test_documents_rows_match_objects(app, tenant_a, api):
    client = api(tenant_a)
    upload(client, make_pdf(), "a.pdf")
    from saas.tenancy.context import tenant_context

    with tenant_context(tenant_a):
        keys = set(db.session.execute(sa.select(DocumentVersion.object_key)).scalars())
        assert db.session.execute(sa.select(sa.func.count()).select_from(Document)).scalar() == 1
    assert keys == set(objects(tenant_a, "ged/"))
