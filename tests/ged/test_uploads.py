"""Resumable uploads (tus 1.0.0): a transfer cut at 90 % resumes where it stopped."""

from __future__ import annotations

import base64
import hashlib
import io
import os

from tests.ged.conftest import ged_settings, make_pdf, objects

TUS = {"Tus-Resumable": "1.0.0"}
CHUNK = 5 * 1024 * 1024  # the smallest piece S3 composes accept


def meta(**values) -> str:
    return ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in values.items())


def patch(client, location, offset, data):
    return client.patch(location, data=data, headers={
        **TUS, "Upload-Offset": str(offset), "Content-Type": "application/offset+octet-stream"})


def test_options_advertises_the_protocol(app, tenant_a, api):
    response = api(tenant_a).options("/api/v1/uploads")
    assert response.status_code == 204
    assert response.headers["Tus-Version"] == "1.0.0"
    assert response.headers["Tus-Extension"] == "creation,termination"
    assert int(response.headers["Tus-Max-Size"]) > 0


def test_interrupted_upload_resumes_from_the_last_piece(app, tenant_a, api, monkeypatch):
    ged_settings(monkeypatch, app, upload_chunk=CHUNK)
    client = api(tenant_a)
    data = make_pdf("Plan local d'urbanisme") + os.urandom(3 * CHUNK - 70_000)
    created = client.post("/api/v1/uploads", headers={
        **TUS, "Upload-Length": str(len(data)),
        "Upload-Metadata": meta(filename="plu.pdf", title="PLU", type="plan")})
    assert created.status_code == 201, created.get_json()
    location = created.headers["Location"]
    assert location.startswith("/api/v1/uploads/")
    # The connection drops at about 90 %: two whole pieces arrived, the rest is lost.
    cut = int(len(data) * 0.9)
    first = patch(client, location, 0, data[:cut])
    assert first.status_code == 204
    assert first.headers["Upload-Offset"] == str(2 * CHUNK)
    head = client.head(location, headers=TUS)
    assert head.status_code == 200
    assert head.headers["Upload-Offset"] == str(2 * CHUNK)
    assert head.headers["Upload-Length"] == str(len(data))
    assert head.headers["Cache-Control"] == "no-store"
    # A stale offset is refused with 409 and the server's offset.
    stale = patch(client, location, 0, data[:10])
    assert stale.status_code == 409
    assert stale.get_json()["error"]["details"]["offset"] == 2 * CHUNK
    done = patch(client, location, 2 * CHUNK, data[2 * CHUNK:])
    assert done.status_code == 204, done.get_json()
    assert done.headers["Upload-Offset"] == str(len(data))
    doc_id = done.headers["Document-Id"]
    doc = client.get(f"/api/v1/documents/{doc_id}").get_json()
    assert doc["title"] == "PLU" and doc["type"] == "plan"
    assert doc["current_version"]["sha256"] == hashlib.sha256(data).hexdigest()
    assert doc["current_version"]["content_type"] == "application/pdf"
    assert client.get(f"/api/v1/documents/{doc_id}/content").data == data
    assert objects(tenant_a, "uploads/") == []  # pieces removed once composed


def test_new_version_through_tus_and_termination(app, tenant_a, api):
    client = api(tenant_a)
    doc = client.post("/api/v1/documents", data={"file": (io.BytesIO(make_pdf("v1")), "a.pdf")},
                      content_type="multipart/form-data").get_json()
    data = make_pdf("v2")
    created = client.post("/api/v1/uploads", headers={
        **TUS, "Upload-Length": str(len(data)),
        "Upload-Metadata": meta(filename="a-v2.pdf", document_id=doc["id"])})
    done = patch(client, created.headers["Location"], 0, data)
    assert done.headers["Document-Version"] == "2"
    assert client.get(f"/api/v1/documents/{doc['id']}/content").data == data
    other = client.post("/api/v1/uploads", headers={**TUS, "Upload-Length": "100"})
    assert client.delete(other.headers["Location"], headers=TUS).status_code == 204
    assert client.head(other.headers["Location"], headers=TUS).status_code == 404


def test_tus_refusals(app, make_tenant, api, tenant_b):
    tenant = make_tenant("quota", quota_bytes=1000)
    client = api(tenant)
    assert client.post("/api/v1/uploads", headers={"Upload-Length": "10"}).status_code == 412
    big = client.post("/api/v1/uploads", headers={**TUS, "Upload-Length": "5000"})
    assert big.status_code == 413 and big.get_json()["error"]["code"] == "quota_exceeded"
    created = client.post("/api/v1/uploads", headers={**TUS, "Upload-Length": "100",
                                                      "Upload-Metadata": meta(filename="x.pdf")})
    location = created.headers["Location"]
    wrong_type = client.patch(location, data=b"x", headers={**TUS, "Upload-Offset": "0"})
    assert wrong_type.status_code == 415
    exe = patch(client, location, 0, b"MZ" + b"\x00" * 98)
    assert exe.status_code == 415 and exe.get_json()["error"]["code"] == "executable_refused"
    assert objects(tenant, "uploads/") == []
    # Another commune's (or person's) upload is not found.
    created = client.post("/api/v1/uploads", headers={**TUS, "Upload-Length": "100"})
    assert api(tenant_b).head(created.headers["Location"], headers=TUS).status_code == 404


def test_web_session_uploads_need_the_csrf_header(app, tenant_a, web):
    from tests.ged.conftest import csrf_from

    client = web(tenant_a)
    token = csrf_from(client.get("/ged/deposer").get_data(as_text=True))
    data = make_pdf("depuis le navigateur")
    refused = client.post("/api/v1/uploads", headers={**TUS, "Upload-Length": str(len(data))})
    assert refused.status_code == 400 and refused.get_json()["error"]["code"] == "csrf_failed"
    created = client.post("/api/v1/uploads", headers={
        **TUS, "Upload-Length": str(len(data)), "X-CSRFToken": token,
        "Upload-Metadata": meta(filename="nav.pdf")})
    assert created.status_code == 201
    done = client.patch(created.headers["Location"], data=data, headers={
        **TUS, "Upload-Offset": "0", "X-CSRFToken": token,
        "Content-Type": "application/offset+octet-stream"})
    assert done.status_code == 204 and done.headers["Document-Id"]


BAD_COUNTS = ["²", "-1", "+5", "1e3", "0x10", "12 ", " 12", "abc", "", "1" * 20,
              str(2 ** 63), "9" * 1000]


def test_bad_upload_length_is_a_clear_400(app, tenant_a, api):
    """Upload-Length: ² used to pass str.isdigit() and make int() raise: a 500."""
    client = api(tenant_a)
    for raw in BAD_COUNTS:
        response = client.post("/api/v1/uploads", headers={**TUS, "Upload-Length": raw})
        assert response.status_code == 400, (raw, response.status_code)
        assert response.get_json()["error"]["code"] == "upload_length"
    # A well-formed but huge length is the tus 413 (above Tus-Max-Size), not a 500 either.
    huge = client.post("/api/v1/uploads", headers={**TUS, "Upload-Length": str(2 ** 63 - 1)})
    assert huge.status_code == 413


def test_bad_upload_offset_is_a_clear_400(app, tenant_a, api):
    client = api(tenant_a)
    created = client.post("/api/v1/uploads", headers={**TUS, "Upload-Length": "100",
                                                      "Upload-Metadata": meta(filename="x.pdf")})
    location = created.headers["Location"]
    for raw in BAD_COUNTS:
        response = client.patch(location, data=b"%PDF", headers={
            **TUS, "Upload-Offset": raw, "Content-Type": "application/offset+octet-stream"})
        assert response.status_code == 400, (raw, response.status_code)
        assert response.get_json()["error"]["code"] == "upload_offset"
    assert client.head(location, headers=TUS).headers["Upload-Offset"] == "0"
