"""Idempotent writes: Idempotency-Key on the API's POSTs, one-time tokens on the pages' forms."""

from __future__ import annotations

import io
import re
from datetime import timedelta

import pytest
import sqlalchemy as sa

from saas.api import idempotency
from saas.api.models import IdempotencyKey
from saas.extensions import db
from saas.ged.models import Document
from saas.modelbase import utcnow
from saas.tenancy.context import tenant_context
from tests.ged.conftest import csrf_from, make_pdf, objects, upload


def _documents(tenant) -> int:
    with tenant_context(tenant):
        n = db.session.execute(sa.select(sa.func.count()).select_from(Document)).scalar_one()
        db.session.rollback()
    return n


def _post(client, data: bytes, key: str | None, filename: str = "a.pdf", **fields):
    form = {**fields, "file": (io.BytesIO(data), filename)}
    headers = {"Idempotency-Key": key} if key is not None else {}
    return client.post("/api/v1/documents", data=form, content_type="multipart/form-data",
                       headers=headers)


def test_a_repeated_post_with_the_same_key_creates_one_document(app, tenant_a, api):
    client = api(tenant_a)
    pdf = make_pdf()
    first = _post(client, pdf, "deposit-0001", title="Délibération 12")
    second = _post(client, pdf, "deposit-0001", title="Délibération 12")
    assert first.status_code == second.status_code == 201
    assert second.get_json() == first.get_json()
    assert second.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert _documents(tenant_a) == 1
    assert len(objects(tenant_a, "ged/")) == 1
    # Without a key, every POST is its own.
    assert _post(client, pdf, None).status_code == 201
    assert _post(client, pdf, None).status_code == 201
    assert _documents(tenant_a) == 3


def test_the_same_key_with_another_request_is_refused(app, tenant_a, api):
    client = api(tenant_a)
    doc = _post(client, make_pdf("un"), "k-reused").get_json()
    # The same key on another operation (a new version of that document): refused, not run.
    other = client.post(f"/api/v1/documents/{doc['id']}/versions",
                        data={"file": (io.BytesIO(make_pdf("deux")), "b.pdf")},
                        content_type="multipart/form-data", headers={"Idempotency-Key": "k-reused"})
    assert other.status_code == 422
    assert other.get_json()["error"]["code"] == "idempotency_key_reused"
    assert client.get(f"/api/v1/documents/{doc['id']}").get_json()["versions_count"] == 1
    # A resumable upload of another length with a key already used for one: refused.
    tus = {"Tus-Resumable": "1.0.0", "Upload-Metadata": "filename YS5wZGY=",
           "Idempotency-Key": "tus-1"}
    first = client.post("/api/v1/uploads", headers={**tus, "Upload-Length": "1000"})
    assert first.status_code == 201
    again = client.post("/api/v1/uploads", headers={**tus, "Upload-Length": "1000"})
    assert again.status_code == 201 and again.headers["Location"] == first.headers["Location"]
    longer = client.post("/api/v1/uploads", headers={**tus, "Upload-Length": "2000"})
    assert longer.status_code == 422
    assert _documents(tenant_a) == 1


def test_a_json_post_replays_and_refuses_another_body(app, tenant_a, tenant_b, api):
    owner = api(tenant_a, "admin")
    doc = upload(owner, make_pdf(), "a.pdf").get_json()
    body = {"target": "commune-b", "document_id": doc["id"]}
    first = owner.post("/api/v1/shares", json=body, headers={"Idempotency-Key": "share-1"})
    assert first.status_code == 201, first.get_json()
    again = owner.post("/api/v1/shares", json=body, headers={"Idempotency-Key": "share-1"})
    assert again.status_code == 201 and again.get_json() == first.get_json()
    changed = owner.post("/api/v1/shares", json={**body, "note": "autre"},
                         headers={"Idempotency-Key": "share-1"})
    assert changed.status_code == 422
    assert changed.get_json()["error"]["code"] == "idempotency_key_reused"


def test_a_duplicate_while_the_first_runs_gets_409(app, tenant_a, api):
    client = api(tenant_a)
    first = _post(client, make_pdf(), "in-flight")
    assert first.status_code == 201
    # The first request of another key is still running (claimed, no outcome yet): exactly
    # the row a concurrent node holds between its claim and its answer.
    with tenant_context(tenant_a):
        row = db.session.execute(sa.select(IdempotencyKey)).scalar_one()
        db.session.add(IdempotencyKey(actor=row.actor, key="running", kind="api",
                                      fingerprint=row.fingerprint, status=None, headers={},
                                      created_at=utcnow(), expires_at=utcnow() + timedelta(hours=24)))
        db.session.commit()
    duplicate = _post(client, make_pdf(), "running")
    assert duplicate.status_code == 409
    assert duplicate.get_json()["error"]["code"] == "idempotency_in_progress"
    assert "Retry-After" in duplicate.headers
    assert _documents(tenant_a) == 1


def test_the_key_is_checked_before_the_body_is_streamed(app, tenant_a, api, monkeypatch):
    """A replayed or refused upload never reaches the store: no second object, no read."""
    client = api(tenant_a)
    assert _post(client, make_pdf(), "stream-1").status_code == 201
    from saas.ged.services import intake

    def must_not_run(*args, **kwargs):
        raise AssertionError("the body was streamed")

    monkeypatch.setattr(intake, "receive_upload", must_not_run)
    assert _post(client, make_pdf(), "stream-1").status_code == 201
    refused = client.post("/api/v1/documents?autre=1", data={"file": (io.BytesIO(make_pdf()), "a.pdf")},
                          content_type="multipart/form-data", headers={"Idempotency-Key": "stream-1"})
    assert refused.status_code == 422
    assert refused.get_json()["error"]["code"] == "idempotency_key_reused"


def test_keys_are_per_person_and_per_commune(app, tenant_a, tenant_b, api):
    pdf = make_pdf()
    alice, bob, other = api(tenant_a), api(tenant_a), api(tenant_b)
    assert _post(alice, pdf, "same-key").status_code == 201
    bobs = _post(bob, pdf, "same-key")
    assert bobs.status_code == 201 and "Idempotent-Replayed" not in bobs.headers
    others = _post(other, pdf, "same-key")
    assert others.status_code == 201 and "Idempotent-Replayed" not in others.headers
    assert _documents(tenant_a) == 2 and _documents(tenant_b) == 1
    # Commune B's rows are not even visible from commune A.
    with tenant_context(tenant_a):
        assert db.session.execute(sa.select(sa.func.count()).select_from(IdempotencyKey)).scalar_one() == 2
        db.session.rollback()


def test_a_failed_attempt_releases_the_key(app, tenant_a, api):
    client = api(tenant_a)
    refused = _post(client, b"MZ" + b"\0" * 100, "retry-me", filename="a.exe")
    assert refused.status_code == 415
    assert _post(client, b"MZ" + b"\0" * 100, "retry-me", filename="a.exe").status_code == 415
    # Same key, corrected file: the operation runs (a failure is not an outcome to replay).
    fixed = _post(client, make_pdf(), "retry-me")
    assert fixed.status_code == 201 and "Idempotent-Replayed" not in fixed.headers


def test_an_expired_key_runs_again(app, tenant_a, api):
    client = api(tenant_a)
    assert _post(client, make_pdf(), "old-key").status_code == 201
    with tenant_context(tenant_a):
        db.session.execute(sa.update(IdempotencyKey).values(expires_at=utcnow() - timedelta(seconds=1)))
        db.session.commit()
    again = _post(client, make_pdf(), "old-key")
    assert again.status_code == 201 and "Idempotent-Replayed" not in again.headers
    assert _documents(tenant_a) == 2
    # Expired keys are removed as the person writes again: the table keeps a day per person.
    assert _post(client, make_pdf(), None).status_code == 201
    with tenant_context(tenant_a):
        db.session.execute(sa.update(IdempotencyKey).values(expires_at=utcnow() - timedelta(seconds=1)))
        db.session.commit()
    assert _post(client, make_pdf(), "new-key").status_code == 201
    with tenant_context(tenant_a):
        keys = db.session.execute(sa.select(IdempotencyKey.key)).scalars().all()
        db.session.rollback()
    assert keys == ["new-key"]


@pytest.mark.parametrize("key", ["", "a" * 256, "clé-accentuée", "with space"])
def test_a_malformed_key_is_refused(app, tenant_a, api, key):
    response = _post(api(tenant_a), make_pdf(), key)
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "invalid_idempotency_key"
    assert _documents(tenant_a) == 0


def test_openapi_documents_the_header_on_every_post(app, client_for, tenant_a):
    spec = client_for(tenant_a).get("/api/v1/openapi.json").get_json()
    posts = [(path, op) for path, item in spec["paths"].items() for method, op in item.items()
             if method == "post" and op.get("security") != []]
    assert posts
    for path, op in posts:
        names = [p["name"] for p in op.get("parameters", []) if p["in"] == "header"]
        assert "Idempotency-Key" in names, path
        assert "409" in op["responses"] and "422" in op["responses"], path


# -- pages -------------------------------------------------------------------------------------


def _upload_form(client) -> tuple[str, str]:
    html = client.get("/ged/deposer").get_data(as_text=True)
    action = re.search(r'<form method="post" action="(/ged/deposer[^"]*)"', html).group(1).replace("&amp;", "&")
    assert "once=" in action
    return action, csrf_from(html)


def test_a_double_click_on_deposer_creates_one_document(app, tenant_a, web):
    client = web(tenant_a)
    action, token = _upload_form(client)

    def post():
        return client.post(action, data={"csrf_token": token, "title": "Arrêté 7",
                                          "file": (io.BytesIO(make_pdf()), "arrete.pdf")},
                           content_type="multipart/form-data")

    first, second = post(), post()
    assert first.status_code == second.status_code == 303
    assert second.headers["Location"] == first.headers["Location"]
    assert _documents(tenant_a) == 1
    # A new page load is a new form: a new deposit.
    action2, _token = _upload_form(client)
    assert action2 != action


def test_every_state_changing_ged_form_carries_a_token(app, tenant_a, api, web):
    client = web(tenant_a, "admin")
    doc = upload(api(tenant_a), make_pdf(), "a.pdf").get_json()
    for path in ("/ged/", "/ged/deposer", f"/ged/documents/{doc['id']}", "/ged/partages"):
        html = client.get(path).get_data(as_text=True)
        # (Logging out twice is logging out: the header's form needs none.)
        forms = [f for f in re.findall(r'<form method="post"[^>]*>', html) if "/auth/logout" not in f]
        assert forms or path == "/ged/partages", path
        for form in forms:
            assert "once=" in form, (path, form)


def test_a_repeated_form_while_the_first_runs_answers_409(app, tenant_a, web, monkeypatch):
    monkeypatch.setattr(idempotency, "FORM_WAIT_SECONDS", 0)
    client = web(tenant_a)
    action, token = _upload_form(client)
    once = re.search(r"once=([^&]+)", action).group(1)
    with tenant_context(tenant_a):
        import hashlib

        db.session.add(IdempotencyKey(
            actor=str(client.user.id), key=once, kind="form",
            fingerprint=hashlib.sha256(b"POST /ged/deposer").hexdigest(), status=None,
            headers={}, created_at=utcnow(), expires_at=utcnow() + timedelta(hours=24)))
        db.session.commit()
    response = client.post(action, data={"csrf_token": token,
                                         "file": (io.BytesIO(make_pdf()), "a.pdf")},
                           content_type="multipart/form-data")
    assert response.status_code == 409
    assert "déjà en cours d&#39;envoi" in response.get_data(as_text=True)
    assert _documents(tenant_a) == 0 and objects(tenant_a, "ged/") == []
