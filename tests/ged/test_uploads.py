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


def _expire(tenant, upload_location: str) -> None:
    """Make an upload expired, as 24 h later (its row and pieces stay until the sweep)."""
    import uuid
    from datetime import timedelta

    import sqlalchemy as sa

    from saas.extensions import db
    from saas.ged.models import Upload
    from saas.modelbase import utcnow
    from saas.tenancy.context import tenant_context

    upload_id = uuid.UUID(upload_location.rsplit("/", 1)[1])
    with tenant_context(tenant):
        result = db.session.execute(sa.update(Upload).where(Upload.id == upload_id)
                                    .values(expires_at=utcnow() - timedelta(seconds=1)))
        assert result.rowcount == 1
        db.session.commit()


def test_pending_uploads_reserve_room_in_the_quota(app, make_tenant, api, monkeypatch):
    """Creation reserves the declared length; deposits and creations count every reservation.

    Before: each creation checked only its own length against the usage, so uploads in
    progress (and their stored pieces) were invisible to the quota.
    """
    from saas.tenancy.context import tenant_context

    ged_settings(monkeypatch, app, upload_chunk=1024)
    tenant = make_tenant("petite", quota_bytes=20_000)
    client = api(tenant)
    other = api(tenant)  # another agent of the same commune

    def create(c, length, **values):
        return c.post("/api/v1/uploads", headers={
            **TUS, "Upload-Length": str(length), "Upload-Metadata": meta(filename="p.pdf", **values)})

    first = create(client, 16_000)
    assert first.status_code == 201
    second = create(other, 16_000)
    assert second.status_code == 413, second.status_code
    error = second.get_json()["error"]
    assert error["code"] == "quota_exceeded"
    assert error["details"]["reserved_bytes"] == 16_000 and error["details"]["used_bytes"] == 0
    # A streamed deposit sees the reservation too: 4,000 bytes are left.
    from tests.ged.conftest import upload as deposit

    assert deposit(other, make_pdf() + b"\0" * 5_000).status_code == 413
    small = deposit(other, make_pdf("petit"))
    assert small.status_code == 201
    used = small.get_json()["current_version"]["size"]
    # Terminating an upload releases its room.
    assert client.delete(first.headers["Location"], headers=TUS).status_code == 204
    third = create(other, 16_000)
    assert third.status_code == 201
    # Expired, it still counts the pieces it stores, until the sweep removes them.
    data = make_pdf("morceaux") + b"\0" * 3_000
    piece = patch(other, third.headers["Location"], 0, data[:2048])
    assert piece.status_code == 204 and piece.headers["Upload-Offset"] == "2048"
    _expire(tenant, third.headers["Location"])
    assert create(client, 20_000 - used - 2048 + 1).status_code == 413
    from saas.ged.services import uploads
    from saas.modelbase import utcnow

    with tenant_context(tenant):
        assert uploads.sweep_uploads(tenant, utcnow()) == 1
    assert objects(tenant, "uploads/") == []
    # (In one piece: S3 composes need pieces of 5 MiB.)
    ged_settings(monkeypatch, app, upload_chunk=CHUNK)
    fourth = create(client, len(data))
    assert fourth.status_code == 201
    # Completing it turns its reservation into the document's usage, within the quota.
    done = patch(client, fourth.headers["Location"], 0, data)
    assert done.status_code == 204 and done.headers["Document-Id"]
    usage = client.get("/api/v1/ged/usage").get_json()
    assert usage["used_bytes"] == used + len(data)
    assert create(client, 20_000 - used - len(data)).status_code == 201
    assert create(other, 1).status_code == 413


def test_a_person_has_a_bounded_number_of_uploads_in_progress(app, tenant_a, api, monkeypatch):
    ged_settings(monkeypatch, app, max_pending_uploads=2)
    client, colleague = api(tenant_a), api(tenant_a)

    def create(c):
        return c.post("/api/v1/uploads", headers={**TUS, "Upload-Length": "100"})

    first, second = create(client), create(client)
    assert first.status_code == second.status_code == 201
    refused = create(client)
    assert refused.status_code == 429
    assert refused.get_json()["error"]["code"] == "too_many_uploads"
    assert create(colleague).status_code == 201  # a cap per person, not per commune
    client.delete(first.headers["Location"], headers=TUS)
    assert create(client).status_code == 201
    _expire(tenant_a, second.headers["Location"])  # an expired upload no longer takes a slot
    assert create(client).status_code == 201


def test_concurrent_creations_cannot_share_the_last_room(app, make_tenant, api):
    """Eight creations at once, each fitting alone, two never together: exactly one passes."""
    import threading

    tenant = make_tenant("course", quota_bytes=20_000)
    clients = [api(tenant) for _ in range(8)]
    barrier = threading.Barrier(len(clients))
    statuses = []

    def create(c):
        barrier.wait()
        statuses.append(c.post("/api/v1/uploads", headers={
            **TUS, "Upload-Length": "16000"}).status_code)

    threads = [threading.Thread(target=create, args=(c,)) for c in clients]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(statuses) == [201] + [413] * 7, statuses


def test_a_piece_size_s3_cannot_compose_is_refused_at_start(tmp_path):
    """A chunk below 5 MiB used to be accepted, then every multi-piece upload failed (a 500)."""
    import pytest

    from saas.config import ConfigError, load_settings

    with pytest.raises(ConfigError, match="SAAS_GED_UPLOAD_CHUNK"):
        load_settings({"INSTANCE_PATH": str(tmp_path), "GED_UPLOAD_CHUNK": "1024"})
    settings = load_settings({"INSTANCE_PATH": str(tmp_path), "GED_UPLOAD_CHUNK": str(CHUNK)})
    assert settings.ged.upload_chunk == CHUNK
