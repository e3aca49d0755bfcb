"""One way into a bucket: a streamed file and a composed (resumable) one pass the same checks."""

from __future__ import annotations

import hashlib
import io
import uuid
import zipfile

import pytest

from saas.errors import AppError
from saas.files.store import sanitize_filename, store_pieces, store_stream
from saas.storage import get_store
from saas.tenancy.context import tenant_context

HOSTILE_NAMES = [
    ("../../etc/passwd", "passwd"),
    ("..\\..\\windows\\system32\\evil.pdf", "evil.pdf"),
    ("rapport\x00\x07\x1b[31m.pdf", "rapport[31m.pdf"),
    ("facture\u202efdp.exe", "facturefdp.exe"),
    ("a" * 400 + ".pdf", "a" * 196 + ".pdf"),
    ("...", "document"),
    ('<script>"alert"</script>.pdf', "script_.pdf"),
]

PDF = b"%PDF-1.4\n" + b"1 0 obj << >> endobj\n" * 100 + b"%%EOF\n"


def _zip_bomb() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("word/document.xml", b"\x00" * (4 * 1024 * 1024))
    return out.getvalue()


def _keys(tenant, prefix: str) -> list[str]:
    return [o.key for o in get_store().list(tenant, prefix)]


@pytest.mark.parametrize("hostile, expected", HOSTILE_NAMES)
def test_hostile_file_names_are_sanitised(hostile, expected):
    assert sanitize_filename(hostile) == expected


def _streamed(tenant, key, data, filename):
    return store_stream(tenant, key, io.BytesIO(data), filename=filename)


def _composed(tenant, key, data, filename):
    piece = get_store().put(tenant, f"pieces/{key}", io.BytesIO(data))
    return store_pieces(tenant, key, [(piece.key, piece.version_id)], filename=filename)


@pytest.mark.parametrize("store_file", [_streamed, _composed])
def test_a_kept_file_is_typed_hashed_and_named(app, tenant_a, store_file):
    key = f"files/{uuid.uuid4()}"
    with tenant_context(tenant_a):
        stored = store_file(tenant_a, key, PDF, "../délibération.pdf")
    assert stored.key == key and stored.size == len(PDF)
    assert stored.stored.sha256 == hashlib.sha256(PDF).hexdigest()
    assert stored.sniffed.content_type == "application/pdf"
    assert stored.filename == "délibération.pdf"


@pytest.mark.parametrize("store_file", [_streamed, _composed])
@pytest.mark.parametrize("data, status, code", [
    (b"MZ" + b"\x00" * 200, 415, "executable_refused"),
    (_zip_bomb(), 422, "zip_bomb"),
])
def test_a_refused_file_leaves_nothing(app, tenant_a, store_file, data, status, code):
    key = f"files/{uuid.uuid4()}"
    with tenant_context(tenant_a), pytest.raises(AppError) as refused:
        store_file(tenant_a, key, data, "lettre.docx")
    assert (refused.value.status, refused.value.code) == (status, code)
    assert _keys(tenant_a, key) == []


def test_a_stream_past_its_limit_is_cut_and_removed(app, tenant_a):
    class TooBig(Exception):
        pass

    key = f"files/{uuid.uuid4()}"
    with tenant_context(tenant_a), pytest.raises(TooBig):
        store_stream(tenant_a, key, io.BytesIO(PDF + b"x" * 10_000), filename="a.pdf",
                     limit=len(PDF), on_limit=lambda count: TooBig(count))
    assert _keys(tenant_a, key) == []
