"""'Personnes désignées' on the GED pages: prefilled on edit, empty means nobody, shown, kept
through the resumable (JavaScript) upload's metadata."""

from __future__ import annotations

import base64
import io
from html.parser import HTMLParser

import sqlalchemy as sa

from saas.extensions import db
from saas.ged.models import DocumentAccess
from saas.tenancy.context import tenant_context
from tests.ged.conftest import csrf_from, make_pdf, upload


def _access(tenant, document_id) -> set:
    with tenant_context(tenant):
        ids = set(db.session.execute(sa.select(DocumentAccess.user_id).where(
            DocumentAccess.document_id == document_id)).scalars())
        db.session.rollback()
    return ids


class _EditForm(HTMLParser):
    """The edit form's fields as the browser would send them (untouched)."""

    def __init__(self):
        super().__init__()
        self.inside = False
        self.select = None
        self.values: dict[str, str] = {}

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form":
            self.inside = "/modifier" in a.get("action", "")
        if not self.inside:
            return
        if tag == "input" and a.get("name"):
            if a.get("type") in ("radio", "checkbox"):
                if "checked" in a:
                    self.values[a["name"]] = a.get("value", "on")
            else:
                self.values[a["name"]] = a.get("value") or ""
        elif tag == "select":
            self.select = a["name"]
            self.values.setdefault(self.select, "")
        elif tag == "option" and self.select and "selected" in a:
            self.values[self.select] = a.get("value", "")

    def handle_endtag(self, tag):
        if tag == "form":
            self.inside = False
        if tag == "select":
            self.select = None


def _form_values(html: str) -> dict:
    parser = _EditForm()
    parser.feed(html)
    return parser.values


def test_renaming_a_document_as_the_browser_sends_the_form(app, tenant_a, api, web):
    """The untouched form posts access="" (no JavaScript): 303, not 422 "« » n'est pas membre"."""
    client = web(tenant_a)
    doc = upload(api(tenant_a), make_pdf(), "a.pdf", title="Avant").get_json()
    values = _form_values(client.get(f"/ged/documents/{doc['id']}").get_data(as_text=True))
    assert values["access"] == ""
    values["title"] = "Après"
    response = client.post(f"/ged/documents/{doc['id']}/modifier", data=values)
    assert response.status_code == 303, response.get_data(as_text=True)[:800]
    assert "Après" in client.get(f"/ged/documents/{doc['id']}").get_data(as_text=True)


def test_designated_people_are_prefilled_shown_and_kept_on_edit(app, tenant_a, api, web, make_user):
    elu = make_user(tenant_a, "elu", name="Élu Désigné")
    client = web(tenant_a)
    token = csrf_from(client.get("/ged/deposer").get_data(as_text=True))
    response = client.post("/ged/deposer", data={
        "csrf_token": token, "title": "Note pour l'élu", "confidentiality": "restricted",
        "access": elu.email, "file": (io.BytesIO(make_pdf()), "note.pdf")},
        content_type="multipart/form-data")
    assert response.status_code == 303, response.get_data(as_text=True)[:800]
    doc_id = response.headers["Location"].rsplit("/", 1)[-1]
    assert _access(tenant_a, doc_id) == {elu.id}
    html = client.get(f"/ged/documents/{doc_id}").get_data(as_text=True)
    assert f"Élu Désigné ({elu.email})" in html  # who is designated is shown
    values = _form_values(html)
    assert values["access"] == elu.email  # and prefilled
    values["type"] = "courrier"
    assert client.post(f"/ged/documents/{doc_id}/modifier", data=values).status_code == 303
    assert _access(tenant_a, doc_id) == {elu.id}
    values["access"] = ""  # emptied on purpose: nobody any more
    assert client.post(f"/ged/documents/{doc_id}/modifier", data=values).status_code == 303
    assert _access(tenant_a, doc_id) == set()


def test_an_unknown_person_is_still_refused(app, tenant_a, api, web):
    client = web(tenant_a)
    doc = upload(api(tenant_a), make_pdf(), "a.pdf").get_json()
    values = _form_values(client.get(f"/ged/documents/{doc['id']}").get_data(as_text=True))
    values["access"] = "inconnu@example.org"
    response = client.post(f"/ged/documents/{doc['id']}/modifier", data=values)
    assert response.status_code == 422
    assert "inconnu@example.org" in response.get_data(as_text=True)


def test_resumable_upload_keeps_the_designated_people(app, tenant_a, api, make_user):
    elu = make_user(tenant_a, "elu")
    client = api(tenant_a)
    body = make_pdf()
    meta = ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in (
        ("filename", "note.pdf"), ("confidentiality", "restricted"), ("access", elu.email)))
    created = client.post("/api/v1/uploads", headers={
        "Tus-Resumable": "1.0.0", "Upload-Length": str(len(body)), "Upload-Metadata": meta})
    assert created.status_code == 201, created.get_data(as_text=True)
    done = client.patch(created.headers["Location"], data=body, headers={
        "Tus-Resumable": "1.0.0", "Upload-Offset": "0",
        "Content-Type": "application/offset+octet-stream"})
    assert done.status_code == 204, done.get_data(as_text=True)
    assert _access(tenant_a, done.headers["Document-Id"]) == {elu.id}


def test_api_patch_with_an_empty_list_clears_the_designated_people(app, tenant_a, api, make_user):
    elu = make_user(tenant_a, "elu")
    client = api(tenant_a, "admin")
    doc = upload(client, make_pdf(), "a.pdf").get_json()
    assert client.patch(f"/api/v1/documents/{doc['id']}", json={"access": [elu.email]}).status_code == 200
    assert _access(tenant_a, doc["id"]) == {elu.id}
    assert client.patch(f"/api/v1/documents/{doc['id']}", json={"title": "x"}).status_code == 200
    assert _access(tenant_a, doc["id"]) == {elu.id}
    assert client.patch(f"/api/v1/documents/{doc['id']}", json={"access": []}).status_code == 200
    assert _access(tenant_a, doc["id"]) == set()
