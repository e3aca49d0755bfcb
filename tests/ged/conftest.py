"""GED fixtures: API clients with tokens, web clients logged in, and sample files made on the fly."""

from __future__ import annotations

import dataclasses
import io
import zipfile
from collections.abc import Callable

import pytest


@pytest.fixture
def api(client_for, make_token) -> Callable:
    """api(tenant, role="agent", user=None) -> a test client sending a fresh bearer token."""

    def make(tenant, role: str = "agent", user=None):
        token, user = make_token(tenant, role, user)
        client = client_for(tenant)
        client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {token}"
        client.user = user
        return client

    return make


@pytest.fixture
def web(client_for, make_user) -> Callable:
    """web(tenant, role="agent", user=None) -> a test client logged in on the commune's host."""
    from tests.auth.helpers import code_for, location_path, login, secret_from, submit_code

    def make(tenant, role: str = "agent", user=None):
        user = user or make_user(tenant, role)
        client = client_for(tenant)
        response = login(client, user.email)
        assert response.status_code in (302, 303), response.get_data(as_text=True)[:500]
        if location_path(response).startswith("/auth/totp/enrol"):
            # Commune administrators enrol a second factor at their first login.
            secret = secret_from(client.get("/auth/totp/enrol").get_data(as_text=True))
            enrolled = submit_code(client, "/auth/totp/enrol", code_for(secret))
            # The answer shows the recovery codes, once; the login is complete.
            assert enrolled.status_code == 200 and "recovery-codes" in enrolled.get_data(as_text=True)
        client.user = user
        return client

    return make


def ged_settings(monkeypatch, app, **changes) -> None:
    """Run this test with other GED settings (as SAAS_GED_* would give them)."""
    settings = app.config["SAAS_SETTINGS"]
    monkeypatch.setitem(app.config, "SAAS_SETTINGS",
                        dataclasses.replace(settings, ged=dataclasses.replace(settings.ged, **changes)))


def csrf_from(html: str) -> str:
    from tests.auth.helpers import csrf_token

    return csrf_token(html)


def make_pdf(text: str = "Délibération du conseil municipal") -> bytes:
    """A small valid PDF whose page shows `text` (Latin-1 glyphs)."""
    content = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode("latin-1")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
    ]
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n" % number + body + b"\nendobj\n")
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1))
    for offset in offsets:
        out.write(b"%010d 00000 n \n" % offset)
    out.write(b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref))
    return out.getvalue()


def make_docx(paragraphs: list[str], *, big_member: int = 0) -> bytes:
    """A minimal DOCX; `big_member` adds that many highly compressible bytes (a zip bomb)."""
    ns = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
    body = "".join(f"<w:p><w:r><w:t>{p}</w:t></w:r></w:p>" for p in paragraphs)
    document = (f'<?xml version="1.0" encoding="UTF-8"?><w:document xmlns:w="{ns}"><w:body>'
                f"{body}</w:body></w:document>")
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml",
                         '<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/'
                         'package/2006/content-types"/>')
        archive.writestr("word/document.xml", document)
        if big_member:
            archive.writestr("word/media/padding.bin", b" " * big_member)
    return out.getvalue()


def make_odt(paragraphs: list[str]) -> bytes:
    """A minimal ODT (mimetype stored first, as ODF requires)."""
    content = ('<?xml version="1.0" encoding="UTF-8"?><office:document-content '
               'xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" '
               'xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0"><office:body>'
               "<office:text>" + "".join(f"<text:p>{p}</text:p>" for p in paragraphs)
               + "</office:text></office:body></office:document-content>")
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr(zipfile.ZipInfo("mimetype"), "application/vnd.oasis.opendocument.text",
                         compress_type=zipfile.ZIP_STORED)
        archive.writestr("content.xml", content, compress_type=zipfile.ZIP_DEFLATED)
    return out.getvalue()


def upload(client, data: bytes, filename: str = "fichier.pdf", path: str = "/api/v1/documents",
           **fields):
    """POST a multipart upload with the API's field names."""
    form = {k: v for k, v in fields.items()}
    form["file"] = (io.BytesIO(data), filename)
    return client.post(path, data=form, content_type="multipart/form-data")


def objects(tenant, prefix: str = "") -> list[str]:
    """Keys currently in the commune's bucket."""
    from saas.storage import get_store

    return [o.key for o in get_store().list(tenant, prefix)]


def run_jobs() -> int:
    from saas.jobs import run_pending

    return run_pending()


@pytest.fixture(autouse=True)
def _empty_buckets(request):
    """Buckets outlive the database truncation: empty them so each test sees only its objects.

    Before the test too: tests elsewhere (the tenant-isolation sweep) store GED objects in the
    same communes' buckets. Autouse, this runs before the test's communes create their buckets.
    """
    if "app" not in request.fixturenames:
        yield
        return
    from tests.support.s3 import purge_buckets

    settings = request.getfixturevalue("s3_settings")
    prefix = request.getfixturevalue("s3_bucket_prefix")
    purge_buckets(settings, prefix)
    yield
    purge_buckets(settings, prefix)
