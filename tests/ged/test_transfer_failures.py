"""Uploads and downloads that fail halfway leave nothing behind and no thread running.

The commune's store is set to 5 MiB parts (S3's minimum) so that a 16 MB file is a parallel
multipart upload; a spy on the store's HTTP pool makes S3 fail in the middle of it.
"""

from __future__ import annotations

import io
import threading
from urllib.parse import parse_qs, urlsplit

import pytest
import urllib3

from saas.storage import get_store
from tests.ged.conftest import make_pdf, upload
from tests.ged.test_bad_input import nothing_left

MiB = 1024 * 1024
BOUNDARY = "TransferBoundary"


@pytest.fixture
def small_parts(app, monkeypatch):
    store = get_store()
    monkeypatch.setattr(store, "part_size", 5 * MiB)
    return store


def pdf_of(size: int) -> bytes:
    head = make_pdf("Gros plan")
    return head + bytes(range(256)) * ((size - len(head)) // 256)


def pending_uploads(store, tenant) -> list:
    return store._client._list_multipart_uploads(store.bucket_name(tenant)).uploads


def background_threads() -> list[str]:
    return [t.name for t in threading.enumerate()
            if t.name.startswith("s3-part")]


def test_s3_failure_in_the_middle_of_a_parallel_upload(app, tenant_a, api, small_parts,
                                                        monkeypatch):
    original = small_parts._http.urlopen
    parts = []

    def failing(method, url, *args, **kwargs):
        query = parse_qs(urlsplit(url).query)
        if method == "PUT" and "partNumber" in query:
            parts.append(int(query["partNumber"][0]))
            if query["partNumber"] == ["3"]:
                raise urllib3.exceptions.ProtocolError("S3 went away")
        return original(method, url, *args, **kwargs)

    monkeypatch.setattr(small_parts._http, "urlopen", failing)
    response = upload(api(tenant_a), pdf_of(16 * MiB), "plan.pdf")

    assert response.status_code == 500
    assert 3 in parts
    nothing_left(tenant_a)  # no document, no version, no object, no usage
    assert pending_uploads(small_parts, tenant_a) == []  # the multipart upload was aborted
    assert background_threads() == []


class Disconnecting(io.RawIOBase):
    """A request body announced whole but cut after `cut` bytes: EOF, or a reset connection.

    Seekable (the test client measures the body by seeking to its end) over the whole body.
    """

    def __init__(self, body: bytes, cut: int, reset: bool):
        self.body = body
        self.cut = cut
        self.reset = reset
        self.pos = 0

    def readable(self):
        return True

    def seekable(self):
        return True

    def seek(self, offset, whence=io.SEEK_SET):
        self.pos = {io.SEEK_SET: 0, io.SEEK_CUR: self.pos, io.SEEK_END: len(self.body)}[whence]
        self.pos += offset
        return self.pos

    def tell(self):
        return self.pos

    def readinto(self, buffer):
        n = max(0, min(len(buffer), self.cut - self.pos))
        if n == 0:
            if self.reset:
                raise ConnectionResetError("client went away")
            return 0
        buffer[:n] = self.body[self.pos:self.pos + n]
        self.pos += n
        return n


@pytest.mark.parametrize("reset", [False, True], ids=["eof", "reset"])
def test_client_disconnect_in_the_middle_of_a_parallel_upload(app, tenant_a, api, small_parts,
                                                               reset, monkeypatch):
    original = small_parts._http.urlopen
    sent = []

    def watched(method, url, *args, **kwargs):
        query = parse_qs(urlsplit(url).query, keep_blank_values=True)
        sent.append((method, sorted(query)))
        return original(method, url, *args, **kwargs)

    monkeypatch.setattr(small_parts._http, "urlopen", watched)
    data = pdf_of(16 * MiB)
    body = (f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; '
            f'filename="plan.pdf"\r\nContent-Type: application/pdf\r\n\r\n').encode() + data + \
        f"\r\n--{BOUNDARY}--\r\n".encode()
    response = api(tenant_a).post(
        "/api/v1/documents", input_stream=Disconnecting(body, 12 * MiB, reset),
        headers={"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"},
        # As gunicorn serves it: the server delimits the body, the app reads to its end.
        environ_overrides={"wsgi.input_terminated": True})

    # A reset is a client disconnection too now that the body is read through the request's
    # size limit (Werkzeug's LimitedStream): 400, not a 500 logged as a server fault.
    assert response.status_code == 400
    # Two parts had gone up when the client vanished; the upload was then aborted.
    assert sent.count(("PUT", ["partNumber", "uploadId"])) == 2
    assert ("DELETE", ["uploadId"]) in sent
    if not reset:
        assert response.get_json()["error"]["code"] in ("truncated_body", "malformed_multipart")
    nothing_left(tenant_a)
    assert pending_uploads(small_parts, tenant_a) == []
    assert background_threads() == []


def test_a_large_upload_round_trips_through_parallel_parts(app, tenant_a, api, small_parts):
    import hashlib

    data = pdf_of(16 * MiB + 12_345)
    client = api(tenant_a)
    doc = upload(client, data, "plan.pdf").get_json()
    assert doc["current_version"]["sha256"] == hashlib.sha256(data).hexdigest()
    content = client.get(f"/api/v1/documents/{doc['id']}/content")
    assert content.status_code == 200 and content.data == data
    assert background_threads() == []


def test_download_abandoned_by_the_client_releases_its_s3_read(app, tenant_a, api, small_parts,
                                                              monkeypatch):
    data = pdf_of(12 * MiB)
    client = api(tenant_a)
    doc = upload(client, data, "plan.pdf").get_json()
    readers = []
    original = small_parts.get

    def watched_get(*args, **kwargs):
        reader = original(*args, **kwargs)
        readers.append(reader)
        return reader

    monkeypatch.setattr(small_parts, "get", watched_get)
    response = client.get(f"/api/v1/documents/{doc['id']}/content", buffered=False)
    assert response.status_code == 200
    chunks = iter(response.response)
    assert len(next(chunks)) > 0  # the client reads the start, then goes away
    assert len(readers) == 1 and not readers[0]._closed
    response.close()  # what the server does when the connection drops
    assert readers[0]._closed
    # The store still serves the next request (the half-read connection was not reused).
    again = client.get(f"/api/v1/documents/{doc['id']}/content")
    assert again.status_code == 200 and again.data == data
    assert background_threads() == []
