"""The GED pages: browse, upload without JavaScript, escaping, preview, trash, bordereaux."""

from __future__ import annotations

import io
from datetime import date, timedelta

import sqlalchemy as sa

from saas.extensions import db
from saas.ged.models import Document
from saas.tenancy.context import tenant_context
from tests.ged.conftest import csrf_from, make_pdf, objects, upload

XSS = '<script>alert("x")</script><img src=x onerror=alert(1)>'


def test_browse_shows_the_default_filing_plan_and_usage(app, tenant_a, web):
    page = web(tenant_a).get("/ged/")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    for label in ("Administration générale", "Finances", "Urbanisme", "Personnel",
                  "Conseil municipal", "Marchés publics", "Voirie et patrimoine"):
        assert label in html
    assert "Espace utilisé" in html and "<meter" in html


def test_upload_form_without_javascript_and_escaping(app, tenant_a, web):
    client = web(tenant_a)
    token = csrf_from(client.get("/ged/deposer").get_data(as_text=True))
    response = client.post("/ged/deposer", data={
        "csrf_token": token, "title": XSS, "type": "courrier", "classification": "1.1",
        "tags": "<i>x</i>", "file": (io.BytesIO(make_pdf()), XSS + ".pdf")},
        content_type="multipart/form-data")
    assert response.status_code == 303, response.get_data(as_text=True)[:300]
    page = client.get(response.headers["Location"])
    html = page.get_data(as_text=True)
    assert "<script>alert" not in html and "<img src=x" not in html
    assert "&lt;script&gt;alert(" in html
    assert 'src="/ged/documents/' in html and "inline=1" in html  # the PDF preview frame
    listing = client.get("/ged/?q=alert").get_data(as_text=True)
    assert "<script>alert" not in listing


def test_upload_form_refuses_without_csrf_before_storing(app, tenant_a, web):
    client = web(tenant_a)
    response = client.post("/ged/deposer", data={"file": (io.BytesIO(make_pdf()), "a.pdf")},
                           content_type="multipart/form-data")
    assert response.status_code == 400
    assert objects(tenant_a, "ged/") == []


def test_upload_form_shows_precise_errors(app, tenant_a, web):
    client = web(tenant_a)
    token = csrf_from(client.get("/ged/deposer").get_data(as_text=True))
    response = client.post("/ged/deposer", data={
        "csrf_token": token, "file": (io.BytesIO(b"MZ" + b"\0" * 100), "a.pdf")},
        content_type="multipart/form-data")
    assert response.status_code == 415
    html = response.get_data(as_text=True)
    assert 'role="alert"' in html and "programme exécutable" in html


def test_inline_preview_and_download(app, tenant_a, api, web):
    doc = upload(api(tenant_a), make_pdf(), "a.pdf").get_json()
    client = web(tenant_a)
    inline = client.get(f"/ged/documents/{doc['id']}/contenu?inline=1")
    assert inline.status_code == 200
    assert inline.headers["Content-Disposition"].startswith("inline;")
    assert inline.headers["X-Frame-Options"] == "SAMEORIGIN"
    download = client.get(f"/ged/documents/{doc['id']}/contenu?version=1")
    assert download.headers["Content-Disposition"].startswith("attachment;")
    assert client.get(f"/ged/documents/{doc['id']}/contenu?version=7").status_code == 404
    assert client.get(f"/ged/documents/{doc['id']}/contenu?version={2**40}").status_code == 404


def test_trash_and_restore_pages(app, tenant_a, api, web):
    doc = upload(api(tenant_a), make_pdf(), "a.pdf", title="À jeter").get_json()
    client = web(tenant_a)
    page = client.get(f"/ged/documents/{doc['id']}").get_data(as_text=True)
    token = csrf_from(page)
    assert client.post(f"/ged/documents/{doc['id']}/supprimer",
                       data={"csrf_token": token}).status_code == 303
    trash = client.get("/ged/corbeille").get_data(as_text=True)
    assert "À jeter" in trash
    assert client.post(f"/ged/corbeille/{doc['id']}/restaurer",
                       data={"csrf_token": token}).status_code == 303
    assert client.get(f"/ged/documents/{doc['id']}").status_code == 200


def test_retention_sweep_proposes_and_only_approval_destroys(app, tenant_a, api, web):
    from saas.ged import tasks

    admin_api = api(tenant_a, "admin")
    old_invoice = upload(admin_api, make_pdf(), "f.pdf", type="facture",
                         document_date=(date.today() - timedelta(days=365 * 11)).isoformat()).get_json()
    old_letter = upload(admin_api, make_pdf(), "c.pdf", type="courrier",
                        document_date="2001-01-01").get_json()
    kept = upload(admin_api, make_pdf(), "d.pdf", type="deliberation",
                  document_date="1990-01-01").get_json()
    recent = upload(admin_api, make_pdf(), "r.pdf", type="facture").get_json()
    with tenant_context(tenant_a):
        result = tasks.retention_sweep()
        db.session.commit()
        assert tasks.retention_sweep()["proposal"] is None  # already proposed: not twice
    assert result["documents"] == 2
    # Nothing was destroyed by the sweep itself.
    for doc in (old_invoice, old_letter, kept, recent):
        assert admin_api.get(f"/api/v1/documents/{doc['id']}").status_code == 200
    client = web(tenant_a, "admin")
    listing = client.get("/ged/bordereaux").get_data(as_text=True)
    assert "à traiter" in listing
    proposal_id = result["proposal"]
    page = client.get(f"/ged/bordereaux/{proposal_id}").get_data(as_text=True)
    token = csrf_from(page)
    unconfirmed = client.post(f"/ged/bordereaux/{proposal_id}", data={"csrf_token": token,
                                                                      "action": "approve"})
    assert unconfirmed.status_code == 303
    assert admin_api.get(f"/api/v1/documents/{old_invoice['id']}").status_code == 200
    done = client.post(f"/ged/bordereaux/{proposal_id}", data={"csrf_token": token,
                                                               "action": "approve", "confirm": "1"})
    assert done.status_code == 303
    # détruire → destroyed; trier → kept by default unless a human chose otherwise.
    assert admin_api.get(f"/api/v1/documents/{old_invoice['id']}").status_code == 404
    assert admin_api.get(f"/api/v1/documents/{old_letter['id']}").status_code == 200
    assert len(objects(tenant_a, "ged/")) == 3
    from saas.audit.models import AuditEvent

    with tenant_context(tenant_a):
        actions = db.session.execute(sa.select(AuditEvent.action)).scalars().all()
    assert "ged.elimination.approve" in actions and "ged.destroy" in actions
    assert web(tenant_a, "agent").get("/ged/bordereaux").status_code == 403


def test_trash_purge_after_30_days(app, tenant_a, api):
    from saas.ged import tasks
    from saas.modelbase import utcnow

    client = api(tenant_a)
    doc = upload(client, make_pdf(), "a.pdf").get_json()
    recent = upload(client, make_pdf(), "b.pdf").get_json()
    client.delete(f"/api/v1/documents/{doc['id']}")
    client.delete(f"/api/v1/documents/{recent['id']}")
    with tenant_context(tenant_a):
        db.session.execute(sa.update(Document).where(Document.id == doc["id"])
                           .values(deleted_at=utcnow() - timedelta(days=31)))
        db.session.commit()
        assert tasks.purge_trash()["purged"] == 1
    assert [d["id"] for d in client.get("/api/v1/trash").get_json()["items"]] == [recent["id"]]
    assert len(objects(tenant_a, "ged/")) == 1
    usage = client.get("/api/v1/ged/usage").get_json()["used_bytes"]
    assert usage == len(make_pdf())


def test_upload_streams_with_bounded_memory(app, tenant_a, api, tmp_path):
    """A 64 MB upload through the app keeps the Python heap peak far below the file size."""
    import tracemalloc

    from saas.storage.local import LocalStore

    # The local backend, so the in-process S3 stand-in's own buffers do not count.
    store = LocalStore(tmp_path / "objects", bucket_prefix="mem-")
    store.ensure_bucket(tenant_a)
    saved = app.extensions["saas_store"]
    app.extensions["saas_store"] = store
    try:
        client = api(tenant_a)
        size = 64 * 1024 * 1024

        class Body(io.RawIOBase):
            """A multipart body generated on the fly: the test holds no copy of the file."""

            def __init__(self):
                self.parts = [b'--B\r\nContent-Disposition: form-data; name="file"; '
                              b'filename="gros.pdf"\r\n\r\n%PDF-1.4\n']
                self.left = size
                self.tail = b"\r\n--B--\r\n"

            def readable(self):
                return True

            def readinto(self, buffer):
                if self.parts:
                    data = self.parts.pop()
                elif self.left > 0:
                    data = b"0" * min(len(buffer), self.left, 1 << 20)
                    self.left -= len(data)
                elif self.tail:
                    data, self.tail = self.tail, b""
                else:
                    return 0
                buffer[: len(data)] = data
                return len(data)

        body = io.BufferedReader(Body(), 1 << 20)
        length = len(b'--B\r\nContent-Disposition: form-data; name="file"; '
                     b'filename="gros.pdf"\r\n\r\n%PDF-1.4\n') + size + len(b"\r\n--B--\r\n")
        tracemalloc.start()
        try:
            response = client.post("/api/v1/documents",
                                   headers={"Content-Type": "multipart/form-data; boundary=B",
                                            "Content-Length": str(length)},
                                   environ_overrides={
                                       "wsgi.input": body, "CONTENT_LENGTH": str(length),
                                       # The test client would invent its own boundary.
                                       "CONTENT_TYPE": "multipart/form-data; boundary=B"})
            _current, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert response.status_code == 201, response.get_json()
        assert response.get_json()["current_version"]["size"] == size + 9
        assert peak < 20 * 1024 * 1024, f"peak {peak / 1e6:.1f} MB"
    finally:
        app.extensions["saas_store"] = saved


def test_sqlite_fallback_search(sqlite_app):
    """The embedded default (SQLite, local store) searches accent- and case-blind."""
    from saas.auth.actor import Actor
    from saas.ged import public
    from saas.ged.services.search import SearchParams, search_page
    from saas.tenancy.models import Tenant

    tenant = Tenant(slug="village", name="Village", siren="210000019", departement="44",
                    modules=["ged"], quota_bytes=0)
    db.session.add(tenant)
    db.session.commit()
    from saas.storage import get_store

    get_store().ensure_bucket(tenant)
    with tenant_context(tenant):
        actor = Actor(None, "agent")
        public.create_document_from_stream(io.BytesIO(make_pdf()), filename="d.pdf", actor=actor,
                                           title="Délibération sur l'ÉCOLE", tags="école")
        found = search_page(SearchParams(q="ecole deliberation"), actor).items
        assert [d.title for d in found] == ["Délibération sur l'ÉCOLE"]
        by_tag = search_page(SearchParams(tag="école"), actor).items
        assert len(by_tag) == 1
        none = search_page(SearchParams(q="mairie"), actor).items
        assert none == []


def test_folder_with_unknown_parent_is_refused_not_filed_at_top(app, tenant_a, web):
    page = web(tenant_a, "admin")
    csrf = csrf_from(page.get("/ged/").get_data(as_text=True))
    response = page.post("/ged/plan", data={"csrf_token": csrf, "code": "9.1", "label": "Égaré",
                                            "parent": "00000000-0000-0000-0000-000000000000"},
                         follow_redirects=True)
    assert "parent choisi n'existe pas" in response.get_data(as_text=True).replace("&#39;", "'")
    assert "Égaré" not in page.get("/ged/").get_data(as_text=True)


def test_document_page_follows_the_text_extraction_job(app, tenant_a, api, web):
    from tests.ged.conftest import run_jobs

    doc = upload(api(tenant_a), make_pdf("Délibération budget"), "b.pdf").get_json()
    client = web(tenant_a)
    page = client.get(f"/ged/documents/{doc['id']}").get_data(as_text=True)
    assert "Indexation du texte" in page and "La tâche attend son tour." in page
    assert "/taches/" in page
    run_jobs()
    page = client.get(f"/ged/documents/{doc['id']}").get_data(as_text=True)
    assert "Indexation du texte" not in page and "indexé" in page
