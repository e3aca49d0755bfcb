"""S3 multipart uploads: parts go up in parallel, memory stays bounded, any failure leaves nothing.

A store with 5 MiB parts (S3's minimum) keeps the objects small; a spy on the store's HTTP pool
slows the S3 server down, watches the parts on the wire and makes requests fail.
"""

from __future__ import annotations

import hashlib
import io
import logging
import threading
import time
from urllib.parse import parse_qs, urlsplit

import pytest
import urllib3

from saas.storage import ObjectNotFound, StorageError
from saas.storage.base import CHUNK_SIZE
from saas.storage.s3 import S3Store, _PartBuffers
from tests.storage.streams import PatternStream, SourceFailure, pattern_sha256
from tests.support.s3 import purge_buckets

MiB = 1024 * 1024
PART = 5 * MiB
THREADS = 3
TENANT = "commune-a"


@pytest.fixture
def small_parts(storage_s3_settings, storage_bucket_prefix):
    settings = storage_s3_settings
    store = S3Store(settings.endpoint, settings.access_key, settings.secret_key,
                    settings.secure, settings.region, storage_bucket_prefix,
                    part_size=PART, upload_threads=THREADS)
    store.ensure_bucket(TENANT)
    yield store
    purge_buckets(settings, storage_bucket_prefix)


class Wire:
    """Spy on the store's HTTP pool: delays, failures, and what went out when."""

    def __init__(self, store: S3Store, monkeypatch, source=None, delay: float = 0.0):
        self.store = store
        self.source = source
        self.delay = delay
        self.lock = threading.Lock()
        self.in_flight = 0
        self.max_in_flight = 0
        self.parts: list[tuple[int, int]] = []  # (part number, source position) as each leaves
        self.started: list[tuple[int, float]] = []  # (part number, monotonic time)
        self.failed_at: float | None = None
        self.requests: list[tuple[str, dict]] = []
        self.fail_part: int | None = None
        self.fail_abort = False
        self.fail_as_s3_error = False
        self._original = store._http.urlopen
        monkeypatch.setattr(store._http, "urlopen", self.urlopen)

    def urlopen(self, method, url, *args, **kwargs):
        query = parse_qs(urlsplit(url).query, keep_blank_values=True)
        with self.lock:
            self.requests.append((method, query))
        if method == "DELETE" and "uploadId" in query and self.fail_abort:
            raise urllib3.exceptions.ProtocolError("abort lost")
        if method != "PUT" or "partNumber" not in query:
            return self._original(method, url, *args, **kwargs)
        number = int(query["partNumber"][0])
        with self.lock:
            self.parts.append((number, self.source.position if self.source else 0))
            self.started.append((number, time.monotonic()))
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            time.sleep(self.delay)
            if number != self.fail_part:
                return self._original(method, url, *args, **kwargs)
            try:
                if not self.fail_as_s3_error:
                    raise urllib3.exceptions.ProtocolError("connection reset")
                # A real error reply from the server: a part for a bucket that does not exist.
                bucket = self.store.bucket_name(TENANT)
                return self._original(method, url.replace(f"/{bucket}/", "/no-such-bucket-x/"),
                                      *args, **kwargs)
            finally:
                self.failed_at = time.monotonic()
        finally:
            with self.lock:
                self.in_flight -= 1

    def started_after_failure(self) -> list[int]:
        assert self.failed_at is not None
        return [n for n, at in self.started if at > self.failed_at]


def part_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("s3-part")]


def pending_uploads(store: S3Store) -> list[str]:
    client = store._client
    result = client._list_multipart_uploads(store.bucket_name(TENANT))
    return [upload.upload_id for upload in result.uploads]


def assert_nothing_stored(store: S3Store, key: str) -> None:
    assert store.list_versions(TENANT, key) == []
    with pytest.raises(ObjectNotFound):
        store.stat(TENANT, key)
    assert pending_uploads(store) == []
    assert part_threads() == []


def test_parts_go_up_in_parallel_and_the_reader_stays_bounded(small_parts, monkeypatch):
    size = 9 * PART + 123_456
    source = PatternStream(size, seed=3)
    wire = Wire(small_parts, monkeypatch, source, delay=0.15)

    info = small_parts.put(TENANT, "gros.bin", source)

    assert info.size == size and info.sha256 == pattern_sha256(size, seed=3)
    assert info.etag.endswith("-10")
    assert sorted(n for n, _ in wire.parts) == list(range(1, 11))
    # Parallel, never more than the threads; the source is read at most `THREADS` parts
    # ahead of a part that leaves: (THREADS + 1) parts in memory, whatever S3's speed.
    assert wire.max_in_flight == THREADS
    for number, position in wire.parts:
        assert position <= (number + THREADS) * PART, (number, position)
    assert source.max_request <= CHUNK_SIZE
    assert part_threads() == []
    digest = hashlib.sha256()
    with small_parts.get(TENANT, "gros.bin") as reader:
        for chunk in reader:
            digest.update(chunk)
    assert digest.hexdigest() == info.sha256


@pytest.mark.parametrize("size, parts", [(PART, 0), (PART + 1, 2), (2 * PART, 2)],
                         ids=["exactly-one-part", "one-byte-more", "two-parts"])
def test_part_boundaries(small_parts, monkeypatch, size, parts):
    wire = Wire(small_parts, monkeypatch)
    info = small_parts.put(TENANT, "k", PatternStream(size, seed=size), length=size)
    assert info.size == size and info.sha256 == pattern_sha256(size, seed=size)
    assert len(wire.parts) == parts
    stat = small_parts.stat(TENANT, "k")
    if parts:
        assert info.etag.endswith(f"-{parts}")
        assert stat.sha256 is None  # only put() knows a multipart object's hash
    else:
        assert stat.sha256 == info.sha256  # one request: the hash travels as metadata
    assert small_parts.get(TENANT, "k").read_all() == PatternStream(size, seed=size).read(size)


@pytest.mark.parametrize("failure", ["transport", "s3-error"])
def test_s3_failure_mid_upload_aborts_and_stops_reading(small_parts, monkeypatch, failure):
    stable = small_parts.put(TENANT, "k", io.BytesIO(b"stable"))
    source = PatternStream(12 * PART, seed=4)
    wire = Wire(small_parts, monkeypatch, source, delay=0.05)
    wire.fail_part = 4
    wire.fail_as_s3_error = failure == "s3-error"

    with pytest.raises(StorageError):
        small_parts.put(TENANT, "k", source)

    # Once the failure is seen, nothing more leaves (but parts a thread was already starting)
    # and reading stops; the multipart upload is aborted.
    assert len(wire.started_after_failure()) < THREADS
    assert source.position <= (4 + THREADS + 1) * PART
    assert ("DELETE", {"uploadId": [pending_id_of(wire)]}) in wire.requests
    assert [v.version_id for v in small_parts.list_versions(TENANT, "k")] == [stable.version_id]
    assert small_parts.get(TENANT, "k").read_all() == b"stable"
    assert pending_uploads(small_parts) == []
    assert part_threads() == []


def pending_id_of(wire: Wire) -> str:
    ids = {query["uploadId"][0] for method, query in wire.requests
           if method == "PUT" and "uploadId" in query} - {"unknown-upload"}
    assert len(ids) == 1
    return ids.pop()


def test_source_failure_with_parts_in_flight(small_parts, monkeypatch):
    source = PatternStream(12 * PART, seed=5, fail_at=6 * PART + 100)
    Wire(small_parts, monkeypatch, source, delay=0.1)
    with pytest.raises(SourceFailure):  # the stream's own error, unchanged
        small_parts.put(TENANT, "new", source)
    assert_nothing_stored(small_parts, "new")


@pytest.mark.parametrize("announced, actual", [
    (3 * PART, 3 * PART + 10), (4 * PART, 3 * PART + 10),  # multipart: longer, shorter
    (PART, PART + 1), (PART, PART - 1), (PART + 1, PART),  # around one part
])
def test_length_mismatch_stores_nothing(small_parts, announced, actual):
    with pytest.raises(ValueError):
        small_parts.put(TENANT, "court", PatternStream(actual), length=announced)
    assert_nothing_stored(small_parts, "court")


def test_a_failed_abort_still_raises_the_original_error(small_parts, monkeypatch, caplog):
    wire = Wire(small_parts, monkeypatch, delay=0.0)
    wire.fail_part = 2
    wire.fail_abort = True
    with caplog.at_level(logging.WARNING, logger="saas.storage"), pytest.raises(StorageError):
        small_parts.put(TENANT, "k", PatternStream(3 * PART))
    assert "could not abort multipart upload" in caplog.text
    assert small_parts.list_versions(TENANT, "k") == []
    assert part_threads() == []
    # The server still holds the upload (it expires with a lifecycle rule); clean up here.
    wire.fail_abort = False
    for upload_id in pending_uploads(small_parts):
        small_parts._client._abort_multipart_upload(small_parts.bucket_name(TENANT), "k",
                                                    upload_id)


def test_part_buffers_block_when_all_are_in_use():
    buffers = _PartBuffers(1024, 2)
    buffers.claim()  # the first part, read as bytes
    second = buffers.take()
    assert isinstance(second, bytearray) and len(second) == 1024
    got = []
    taker = threading.Thread(target=lambda: got.append(buffers.take()))
    taker.start()
    taker.join(0.2)
    assert taker.is_alive() and got == []  # back-pressure: nothing free
    buffers.give(second)
    taker.join(2)
    assert got == [second]  # recycled, not a new buffer
    buffers.give(b"the first part")  # bytes cannot be reused: a new buffer replaces it
    third = buffers.take()
    assert third is not second and len(third) == 1024


def test_store_settings_are_checked(storage_s3_settings):
    settings = storage_s3_settings
    with pytest.raises(ValueError):
        S3Store(settings.endpoint, "k", "s", part_size=4 * MiB)
    with pytest.raises(ValueError):
        S3Store(settings.endpoint, "k", "s", part_size=5 * MiB + 1)
    with pytest.raises(ValueError):
        S3Store(settings.endpoint, "k", "s", upload_threads=0)
