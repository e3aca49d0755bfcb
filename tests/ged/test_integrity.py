"""Integrity: a tampered or missing object is refused when served and found by the scrub.

Run on both storage backends. Tampering writes other bytes of the same length under the same
key and version (the nastiest case: sizes still match, only the SHA-256 tells): the file in
place on the local store, the version's bytes inside the in-process S3 server (moto).
"""

from __future__ import annotations

import logging

import pytest
import sqlalchemy as sa

from saas.extensions import db
from saas.files.serve import IntegrityError
from tests.ged.conftest import ged_settings, make_pdf, run_jobs, upload


@pytest.fixture(params=["s3", "local"])
def backend(request, app, tmp_path):
    """The app's object store for this test: S3 (the run's endpoint) or the local one."""
    if request.param == "s3":
        yield "s3"
        return
    from saas.storage.local import LocalStore

    saved = app.extensions["saas_store"]
    app.extensions["saas_store"] = LocalStore(tmp_path / "objects", bucket_prefix="integ-")
    try:
        yield "local"
    finally:
        app.extensions["saas_store"] = saved


def tamper(tenant, key: str, version_id: str | None, data: bytes | None) -> None:
    """Replace a stored version's bytes in place (`data` None: delete the version)."""
    from saas.storage import get_store
    from saas.storage.local import LocalStore

    store = get_store()
    if data is None:
        store.delete(tenant, key, version_id=version_id)
        return
    if isinstance(store, LocalStore):
        path = store._object_dir(store._existing_bucket(tenant), key) / f"{version_id}.bin"
        assert path.stat().st_size == len(data)
        path.write_bytes(data)
        return
    from tests.support.s3 import test_s3_settings

    if not test_s3_settings().in_process:
        pytest.skip("rewriting a version in place needs the in-process S3 server")
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.s3.models import s3_backends

    bucket = s3_backends[DEFAULT_ACCOUNT_ID]["aws"].buckets[store.bucket_name(tenant)]
    for fake in bucket.keys.getlist(key):
        if fake.version_id == version_id:
            assert fake.size == len(data)
            fake.value = data
            return
    raise AssertionError(f"no version {version_id} of {key}")


def _flip(data: bytes) -> bytes:
    """The same bytes with one changed near the end (same length, another SHA-256)."""
    return data[:-100] + bytes([data[-100] ^ 0xFF]) + data[-99:]


def _stored(tenant, document_id: str):
    from saas.ged.models import DocumentVersion
    from saas.tenancy.context import tenant_context

    with tenant_context(tenant):
        return db.session.execute(sa.select(DocumentVersion).where(
            DocumentVersion.document_id == document_id)
            .order_by(DocumentVersion.number)).scalars().all()


def _deposit(client, data: bytes) -> str:
    response = upload(client, data, "plan.pdf")
    assert response.status_code == 201, response.get_json()
    return response.get_json()["id"]


def test_a_whole_range_of_a_tampered_large_file_is_cut_short(app, backend, make_tenant, api,
                                                             monkeypatch):
    """Range bytes=0- (or 0-<n-1>) is checked like a full GET; it used to serve the bytes whole."""
    ged_settings(monkeypatch, app, verify_whole_below=0)  # the streamed path, as for a big file
    tenant = make_tenant("falsifiee")
    client = api(tenant)
    data = make_pdf("original") + b"\0" * 300_000
    doc_id = _deposit(client, data)
    version = _stored(tenant, doc_id)[0]
    tamper(tenant, version.object_key, version.object_version_id, _flip(data))
    url = f"/api/v1/documents/{doc_id}/content"
    for header in ("bytes=0-", f"bytes=0-{len(data) - 1}", None):
        # The body is refused at its end (the last chunk held back): werkzeug's test client
        # reads the first chunk at once, so the error shows in the request itself.
        with pytest.raises(IntegrityError):
            client.get(url, headers={"Range": header} if header else {}).get_data()
    # A partial range of a large file cannot be hashed without reading it all: still served.
    part = client.get(url, headers={"Range": "bytes=10-19"})
    assert part.status_code == 206 and part.get_data() == data[10:20]


def test_a_small_tampered_file_is_a_clean_error_before_any_byte(app, backend, make_tenant, api,
                                                                caplog):
    """Up to SAAS_GED_VERIFY_WHOLE_BELOW the file is hashed before sending: a 500, no body."""
    tenant = make_tenant("falsifiee")
    client = api(tenant)
    data = make_pdf("petit") + b"\0" * 20_000
    doc_id = _deposit(client, data)
    version = _stored(tenant, doc_id)[0]
    url = f"/api/v1/documents/{doc_id}/content"
    assert client.get(url, headers={"Range": "bytes=5-9"}).get_data() == data[5:10]
    tamper(tenant, version.object_key, version.object_version_id, _flip(data))
    with caplog.at_level(logging.ERROR, logger="saas.files"):
        for headers in ({}, {"Range": "bytes=0-"}, {"Range": "bytes=5-9"}):
            response = client.get(url, headers=headers)
            assert response.status_code == 500, headers
            assert response.get_json()["error"]["code"] == "integrity_error"
    assert any("integrity" in r.getMessage() for r in caplog.records)


def test_the_scrub_reports_mismatched_and_missing_versions(app, backend, make_tenant, api,
                                                           monkeypatch, caplog, client_for,
                                                           make_user):
    from saas.audit.models import AuditEvent
    from saas.ged.services import integrity
    from saas.tenancy.context import tenant_context

    tenant, other = make_tenant("verifiee", name="Verifiée"), make_tenant("saine", name="Saine")
    client = api(tenant)
    intact = _deposit(client, make_pdf("intact"))
    altered_data = make_pdf("altere") + b"\0" * 1000
    altered = _deposit(client, altered_data)
    # An older version counts too: give `altered` a second version and tamper with the first.
    assert upload(client, make_pdf("v2"), "v2.pdf",
                  path=f"/api/v1/documents/{altered}/versions").status_code == 201
    lost = _deposit(client, make_pdf("perdu"))
    _deposit(api(other), make_pdf("ailleurs"))
    first = _stored(tenant, altered)[0]
    tamper(tenant, first.object_key, first.object_version_id, _flip(altered_data))
    gone = _stored(tenant, lost)[0]
    tamper(tenant, gone.object_key, gone.object_version_id, None)
    # One version's worth of bytes per step: the run goes on over several jobs.
    ged_settings(monkeypatch, app, scrub_batch_bytes=1)
    with caplog.at_level(logging.ERROR, logger="saas.ged"):
        for commune in (tenant, other):
            with tenant_context(commune):
                from saas.jobs import enqueue

                enqueue(integrity.SCRUB_KIND)
                db.session.commit()
        while run_jobs():
            pass
    with tenant_context(tenant):
        summary = integrity.last_scrub()
        events = db.session.execute(sa.select(AuditEvent.action, AuditEvent.target).where(
            AuditEvent.action.like("ged.integrity.%"))).all()
        from saas.ged.models import ScrubRun

        steps = db.session.execute(sa.select(ScrubRun.steps)).scalar_one()
    assert summary is not None
    assert (summary.checked, summary.ok, summary.mismatched, summary.missing) == (4, 2, 1, 1)
    assert set(summary.document_ids) == {altered, lost}
    assert intact not in summary.document_ids
    assert steps >= 4
    assert sorted(events) == sorted([("ged.integrity.mismatch", f"document:{altered}"),
                                     ("ged.integrity.missing", f"document:{lost}")])
    assert sum("integrity: version" in r.getMessage() for r in caplog.records) == 2
    with tenant_context(other):
        clean = integrity.last_scrub()
    assert (clean.checked, clean.ok, clean.mismatched, clean.missing) == (1, 1, 0, 0)
    # The console lists each commune's last scrub and the damaged documents.
    from tests.web.test_pages import _console_client

    page = _console_client(make_user, client_for).get("/console/integrite")
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert altered in text and lost in text and intact not in text
    assert "Saine" in text and "1 collectivité a des fichiers altérés ou manquants" in text


def test_the_scrub_is_a_daily_job_of_every_commune():
    from saas.ged import tasks  # noqa: F401  (declares the periodic tasks)
    from saas.jobs.scheduler import PERIODIC

    task = PERIODIC["ged.integrity_scrub"]
    assert task.kind == "ged.integrity_scrub" and task.per_tenant and task.daily_at is not None
