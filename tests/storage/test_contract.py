"""One contract for every ObjectStore backend: the local filesystem and S3 (moto or MinIO)."""

from __future__ import annotations

import hashlib
import io
import math
import multiprocessing
import os
import socket
import threading
import time
import tracemalloc
from concurrent.futures import ProcessPoolExecutor
from types import SimpleNamespace
from urllib.parse import parse_qs, urlsplit

import pytest

from saas.storage import BucketMissing, ObjectNotFound, StorageError
from saas.storage.base import CHUNK_SIZE, make_bucket_name, validate_key
from saas.storage.local import LocalStore
from saas.storage.s3 import PART_SIZE, S3Store, parse_endpoint
from tests.storage import workers
from tests.storage.streams import PatternStream, SourceFailure, pattern_sha256

MiB = 1024 * 1024


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def keys_of(objects) -> list[str]:
    return [o.key for o in objects]


def temp_files(store: LocalStore) -> list[str]:
    return [os.path.join(d, f) for d, _, files in os.walk(store.root) for f in files
            if f.startswith(".tmp-")]


# -- round trips --------------------------------------------------------------------------


def test_put_get_round_trip(store, commune_a):
    data = os.urandom(300_000)
    key = "dossiers/2025/délibération n°1.pdf"
    info = store.put(commune_a, key, io.BytesIO(data), length=len(data),
                     content_type="application/pdf",
                     metadata={"Auteur": "Élise Dupont", "source": "guichet 100%",
                               "nom-origine": "C:\\Dossiers\\acte n°1.pdf"})

    assert info.key == key
    assert info.size == len(data)
    assert info.sha256 == sha(data)
    assert info.version_id
    assert info.content_type == "application/pdf"
    assert info.metadata == {"auteur": "Élise Dupont", "source": "guichet 100%",
                             "nom-origine": "C:\\Dossiers\\acte n°1.pdf"}
    assert info.last_modified is not None and info.last_modified.tzinfo is not None

    with store.get(commune_a, key) as reader:
        assert reader.info.version_id == info.version_id
        assert reader.info.sha256 == sha(data)
        assert reader.info.size == len(data)
        body = b"".join(reader)
    assert body == data

    stat = store.stat(commune_a, key)
    assert (stat.key, stat.size, stat.sha256, stat.content_type, stat.version_id, stat.etag) == (
        key, len(data), sha(data), "application/pdf", info.version_id, info.etag)
    assert stat.metadata == info.metadata


def test_empty_object(store, commune_a):
    info = store.put(commune_a, "vide.txt", io.BytesIO(b""))

    assert info.size == 0
    assert info.sha256 == sha(b"")
    assert store.get(commune_a, "vide.txt").read_all() == b""
    assert store.get(commune_a, "vide.txt", offset=0, length=10).read_all() == b""
    with pytest.raises(ValueError):
        store.get(commune_a, "vide.txt", offset=1)


def test_reader_is_file_like_and_copies_between_tenants(store, commune_a, commune_b):
    data = os.urandom(3 * MiB + 17)
    store.put(commune_a, "source.bin", io.BytesIO(data))

    with store.get(commune_a, "source.bin") as reader:
        assert reader.read(5) == data[:5]
        assert reader.read(0) == b""
        copied = store.put(commune_b, "copie.bin", reader)

    assert copied.size == len(data) - 5
    assert copied.sha256 == sha(data[5:])
    assert store.get(commune_b, "copie.bin").read_all() == data[5:]


def test_large_object_streams_without_buffering(store, commune_a, monkeypatch):
    size = 40 * MiB
    expected = pattern_sha256(size, seed=1)
    source = PatternStream(size, seed=1)
    part_uploads: list[tuple[int, int]] = []
    measure_memory = isinstance(store, LocalStore)

    if isinstance(store, S3Store):
        # Watch the part uploads on the wire: when part n leaves, the store must have read
        # no more than the parts its buffers hold (n and the `upload_threads` after it).
        original = store._http.urlopen

        def spy(method, url, *args, **kwargs):
            query = parse_qs(urlsplit(url).query)
            if method == "PUT" and "partNumber" in query:
                part_uploads.append((int(query["partNumber"][0]), source.position))
            return original(method, url, *args, **kwargs)

        monkeypatch.setattr(store._http, "urlopen", spy)

    if measure_memory:
        tracemalloc.start()
    try:
        info = store.put(commune_a, "archives/gros.bin", source,
                         content_type="application/octet-stream")
        if measure_memory:
            put_peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.reset_peak()
        digest = hashlib.sha256()
        received = chunks = biggest = 0
        with store.get(commune_a, "archives/gros.bin") as reader:
            for chunk in reader:
                digest.update(chunk)
                received += len(chunk)
                chunks += 1
                biggest = max(biggest, len(chunk))
        if measure_memory:
            get_peak = tracemalloc.get_traced_memory()[1]
    finally:
        if measure_memory:
            tracemalloc.stop()

    assert info.size == size
    assert info.sha256 == expected
    assert received == size
    assert digest.hexdigest() == expected
    assert biggest <= CHUNK_SIZE and chunks >= size // CHUNK_SIZE
    # The source is asked for a piece at a time, never for a whole part.
    assert source.max_request <= CHUNK_SIZE
    if measure_memory:
        assert put_peak < 20 * MiB, f"put peaked at {put_peak / MiB:.1f} MiB"
        assert get_peak < 20 * MiB, f"get peaked at {get_peak / MiB:.1f} MiB"
    if isinstance(store, S3Store):
        parts = math.ceil(size / PART_SIZE)
        assert sorted(n for n, _ in part_uploads) == list(range(1, parts + 1))
        for number, position in part_uploads:
            assert position <= (number + store.upload_threads) * PART_SIZE, (number, position)
        assert info.etag.endswith(f"-{parts}")  # a multipart object, as the ETag says


# -- versions, ranges, stat, delete, list -------------------------------------------------


def test_versions(store, commune_a):
    v1 = store.put(commune_a, "doc.txt", io.BytesIO(b"first"))
    v2 = store.put(commune_a, "doc.txt", io.BytesIO(b"second version"))
    # Keys sharing the prefix are other objects, not versions.
    store.put(commune_a, "doc.txt.bak", io.BytesIO(b"backup"))
    store.put(commune_a, "doc.txt/inner", io.BytesIO(b"inner"))

    assert v1.version_id != v2.version_id
    versions = store.list_versions(commune_a, "doc.txt")
    assert [v.version_id for v in versions] == [v2.version_id, v1.version_id]
    assert [v.size for v in versions] == [14, 5]
    assert all(v.key == "doc.txt" for v in versions)
    assert store.get(commune_a, "doc.txt").read_all() == b"second version"
    assert store.get(commune_a, "doc.txt", version_id=v1.version_id).read_all() == b"first"
    assert store.stat(commune_a, "doc.txt").version_id == v2.version_id
    assert store.stat(commune_a, "doc.txt", version_id=v1.version_id).sha256 == sha(b"first")
    assert store.list_versions(commune_a, "absent.txt") == []


def test_range_reads(store, commune_a):
    data = bytes(range(256)) * 12_289  # ~3 MiB: ranges cross the 1 MiB chunk boundaries
    old = store.put(commune_a, "plage.bin", io.BytesIO(b"old bytes here"))
    store.put(commune_a, "plage.bin", io.BytesIO(data))
    size = len(data)

    cases = [(0, 1), (0, 100), (100, None), (CHUNK_SIZE - 10, 20), (CHUNK_SIZE, CHUNK_SIZE + 3),
             (size - 5, 100), (size - 1, None), (0, None), (0, size + 10)]
    for offset, length in cases:
        with store.get(commune_a, "plage.bin", offset=offset, length=length) as reader:
            end = size if length is None else offset + length
            assert reader.read() == data[offset:end], (offset, length)
            assert reader.info.size == size

    older = store.get(commune_a, "plage.bin", version_id=old.version_id, offset=4, length=5)
    assert older.read_all() == b"bytes"

    for offset, length in [(size, None), (size + 10, 1), (-1, None), (0, 0), (3, -2)]:
        with pytest.raises(ValueError):
            store.get(commune_a, "plage.bin", offset=offset, length=length)


def test_missing_objects_and_versions(store, commune_a):
    with pytest.raises(ObjectNotFound):
        store.stat(commune_a, "absent.txt")
    with pytest.raises(ObjectNotFound):
        store.get(commune_a, "absent.txt")
    with pytest.raises(ObjectNotFound):
        store.delete(commune_a, "absent.txt")

    gone = store.put(commune_a, "k.txt", io.BytesIO(b"1"))
    store.put(commune_a, "k.txt", io.BytesIO(b"2"))
    store.delete(commune_a, "k.txt", version_id=gone.version_id)
    with pytest.raises(ObjectNotFound):
        store.get(commune_a, "k.txt", version_id=gone.version_id)
    with pytest.raises(ObjectNotFound):
        store.stat(commune_a, "k.txt", version_id=gone.version_id)
    for bogus in ("not-a-version", "../../etc/passwd"):
        with pytest.raises(ObjectNotFound):
            store.get(commune_a, "k.txt", version_id=bogus)


def test_delete_whole_key(store, commune_a):
    store.put(commune_a, "x/y.txt", io.BytesIO(b"one"))
    store.put(commune_a, "x/y.txt", io.BytesIO(b"two!"))
    store.put(commune_a, "x/z.txt", io.BytesIO(b"kept"))

    store.delete(commune_a, "x/y.txt")

    assert store.list_versions(commune_a, "x/y.txt") == []
    with pytest.raises(ObjectNotFound):
        store.get(commune_a, "x/y.txt")
    with pytest.raises(ObjectNotFound):
        store.delete(commune_a, "x/y.txt")
    assert keys_of(store.list(commune_a)) == ["x/z.txt"]
    assert store.usage_bytes(commune_a) == 4

    again = store.put(commune_a, "x/y.txt", io.BytesIO(b"back"))
    assert [v.version_id for v in store.list_versions(commune_a, "x/y.txt")] == [again.version_id]


def test_delete_one_version(store, commune_a):
    v1 = store.put(commune_a, "k.txt", io.BytesIO(b"v1"))
    v2 = store.put(commune_a, "k.txt", io.BytesIO(b"v2!"))

    store.delete(commune_a, "k.txt", version_id=v2.version_id)

    assert store.get(commune_a, "k.txt").read_all() == b"v1"
    assert [v.version_id for v in store.list_versions(commune_a, "k.txt")] == [v1.version_id]
    with pytest.raises(ObjectNotFound):
        store.delete(commune_a, "k.txt", version_id=v2.version_id)

    store.delete(commune_a, "k.txt", version_id=v1.version_id)
    with pytest.raises(ObjectNotFound):
        store.stat(commune_a, "k.txt")
    assert list(store.list(commune_a)) == []


def test_list_with_prefix(store, commune_a):
    keys = ["a", "a-b", "a/x", "a/y/z", "b", "dossiers/2024/f.pdf", "dossiers/2025/g.pdf",
            "dossiers/archive", ".well-known/x", "~tilde/k", "%pct", "Zèbre", "é/1"]
    latest = {}
    for n, key in enumerate(keys):
        latest[key] = store.put(commune_a, key, io.BytesIO(b"x" * (n + 1)))
    latest["a"] = store.put(commune_a, "a", io.BytesIO(b"newest a"))

    listed = list(store.list(commune_a))
    # S3 order: by the UTF-8 bytes of the key (which is code point order).
    assert keys_of(listed) == sorted(keys, key=lambda k: k.encode())
    for obj in listed:
        assert obj.version_id == latest[obj.key].version_id
        assert obj.size == latest[obj.key].size
        assert obj.last_modified is not None

    assert keys_of(store.list(commune_a, "dossiers/202")) == [
        "dossiers/2024/f.pdf", "dossiers/2025/g.pdf"]
    assert keys_of(store.list(commune_a, "dossiers/")) == [
        "dossiers/2024/f.pdf", "dossiers/2025/g.pdf", "dossiers/archive"]
    assert keys_of(store.list(commune_a, "a/")) == ["a/x", "a/y/z"]
    assert keys_of(store.list(commune_a, "a")) == ["a", "a-b", "a/x", "a/y/z"]
    assert keys_of(store.list(commune_a, "~")) == ["~tilde/k"]
    assert keys_of(store.list(commune_a, ".")) == [".well-known/x"]
    assert keys_of(store.list(commune_a, "%")) == ["%pct"]
    assert keys_of(store.list(commune_a, "zzz")) == []
    assert keys_of(store.list(commune_a, "a/y/z/deeper")) == []


def test_usage_counts_every_version(store, commune_a):
    assert store.usage_bytes(commune_a) == 0
    store.put(commune_a, "k", io.BytesIO(b"a" * 100))
    newer = store.put(commune_a, "k", io.BytesIO(b"b" * 50))
    store.put(commune_a, "dir/other", io.BytesIO(b"c" * 30))
    assert store.usage_bytes(commune_a) == 180

    store.delete(commune_a, "k", version_id=newer.version_id)
    assert store.usage_bytes(commune_a) == 130
    store.delete(commune_a, "dir/other")
    assert store.usage_bytes(commune_a) == 100


# -- tenants and buckets ------------------------------------------------------------------


def test_tenant_isolation(store, commune_a, commune_b):
    assert store.bucket_name(commune_a) != store.bucket_name(commune_b)
    secret = store.put(commune_a, "etat-civil/acte.pdf", io.BytesIO(b"confidentiel"))

    with pytest.raises(ObjectNotFound):
        store.get(commune_b, "etat-civil/acte.pdf")
    with pytest.raises(ObjectNotFound):
        store.get(commune_b, "etat-civil/acte.pdf", version_id=secret.version_id)
    with pytest.raises(ObjectNotFound):
        store.stat(commune_b, "etat-civil/acte.pdf")
    with pytest.raises(ObjectNotFound):
        store.delete(commune_b, "etat-civil/acte.pdf")
    assert list(store.list(commune_b)) == []
    assert store.list_versions(commune_b, "etat-civil/acte.pdf") == []
    assert store.usage_bytes(commune_b) == 0
    # A slug string addresses the same bucket as the tenant object.
    assert store.get("commune-a", "etat-civil/acte.pdf").read_all() == b"confidentiel"


def test_missing_bucket(store):
    ghost = SimpleNamespace(slug="commune-fantome")
    assert store.bucket_exists(ghost) is False
    calls = [
        lambda: store.put(ghost, "k", io.BytesIO(b"x")),
        lambda: store.get(ghost, "k"),
        lambda: store.stat(ghost, "k"),
        lambda: store.stat(ghost, "k", version_id="00000000000000000001-deadbeef"),
        lambda: store.delete(ghost, "k"),
        lambda: store.delete(ghost, "k", version_id="00000000000000000001-deadbeef"),
        lambda: store.list(ghost),
        lambda: store.list_versions(ghost, "k"),
        lambda: store.usage_bytes(ghost),
    ]
    for call in calls:
        with pytest.raises(BucketMissing):
            call()

    assert store.ensure_bucket(ghost) is True
    assert store.ensure_bucket(ghost) is False
    assert store.bucket_exists(ghost) is True
    assert list(store.list(ghost)) == []


def test_bucket_names():
    assert make_bucket_name("mutualis-", SimpleNamespace(slug="commune-a")) == "mutualis-commune-a"
    assert make_bucket_name("mutualis-", "saint-herblain") == "mutualis-saint-herblain"
    for slug in ("", "Commune", "a_b", "a.b", "a/b", "x" * 60, "fin-"):
        with pytest.raises(ValueError):
            make_bucket_name("mutualis-", slug)


# -- validation ---------------------------------------------------------------------------

HOSTILE_KEYS = [
    "", "/etc/passwd", "/", "../escape", "a/../../escape", "a/./b", "./a", "a//b", "a/", ".",
    "..", "a\x00b", "line\nbreak", "tab\tkey", "del\x7f", "c1\x85", "back\\slash",
    "é" * 513, "x/" + "s" * 251, "\ud800", None, b"bytes",
]
HOSTILE_PREFIXES = ["/", "/abs", "../", "a/../", "a//", "x\x00", "./"]


def test_hostile_keys_rejected_before_any_backend_call(store, commune_a, monkeypatch):
    if isinstance(store, S3Store):
        def no_network(*args, **kwargs):
            raise AssertionError("a hostile key reached the S3 endpoint")

        monkeypatch.setattr(store._http, "urlopen", no_network)

    for key in HOSTILE_KEYS:
        for call in (
            lambda key=key: store.put(commune_a, key, io.BytesIO(b"evil")),
            lambda key=key: store.get(commune_a, key),
            lambda key=key: store.stat(commune_a, key),
            lambda key=key: store.delete(commune_a, key),
            lambda key=key: store.list_versions(commune_a, key),
        ):
            with pytest.raises(ValueError):
                call()
    for prefix in HOSTILE_PREFIXES:
        with pytest.raises(ValueError):
            store.list(commune_a, prefix)

    monkeypatch.undo()
    assert list(store.list(commune_a)) == []
    if isinstance(store, LocalStore):
        # Nothing was written anywhere: only the (empty) bucket directory exists.
        everything = [os.path.join(d, n) for d, dirs, files in os.walk(store.root)
                      for n in dirs + files]
        assert everything == [str(store.root / store.bucket_name(commune_a))]


def test_unusual_but_valid_keys_round_trip(store, commune_a):
    keys = ["~a", "%b", ".hidden", "a b/c é.pdf", "ünïcödé/文件.txt", "a..b", "...", "x/.../y",
            "semi;colon,comma=eq&amp+plus", "s" * 250, "~x/~y/%z/.w"]
    for key in keys:
        assert validate_key(key) == key
        store.put(commune_a, key, io.BytesIO(key.encode()))
    for key in keys:
        assert store.get(commune_a, key).read_all() == key.encode()
    assert sorted(keys_of(store.list(commune_a))) == sorted(keys)


def test_metadata_and_content_type_validation(store, commune_a):
    for metadata in ({"bad key": "v"}, {"under_score": "v"}, {"saas-sha256": "forged"},
                     {"k": "x" * 2000}, {"k": 3}, {"k": "new\nline"}, {"K": "a", "k": "b"}):
        with pytest.raises(ValueError):
            store.put(commune_a, "m.txt", io.BytesIO(b"x"), metadata=metadata)
    for content_type in ("", "text/plain\r\nX-Injected: 1", "é/è"):
        with pytest.raises(ValueError):
            store.put(commune_a, "m.txt", io.BytesIO(b"x"), content_type=content_type)
    assert list(store.list(commune_a)) == []


# -- failures -----------------------------------------------------------------------------


@pytest.mark.parametrize("size, fail_at", [
    (200_000, 100_000),                      # small object: fails before anything is sent
    (PART_SIZE + 4 * MiB, 10 * MiB),         # fails while reading the first part
    # The S3 store reads two parts before it starts a multipart upload: fail in the third.
    (2 * PART_SIZE + 4 * MiB, 2 * PART_SIZE + 2 * MiB),  # fails after S3 parts were uploaded
], ids=["small", "first-part", "multipart"])
def test_failed_put_leaves_nothing(request, store, commune_a, size, fail_at):
    stable = store.put(commune_a, "k", io.BytesIO(b"stable"))

    with pytest.raises(SourceFailure):
        store.put(commune_a, "k", PatternStream(size, fail_at=fail_at))
    with pytest.raises(SourceFailure):
        store.put(commune_a, "new", PatternStream(size, fail_at=fail_at))

    assert [v.version_id for v in store.list_versions(commune_a, "k")] == [stable.version_id]
    assert store.get(commune_a, "k").read_all() == b"stable"
    assert store.list_versions(commune_a, "new") == []
    with pytest.raises(ObjectNotFound):
        store.stat(commune_a, "new")
    assert keys_of(store.list(commune_a)) == ["k"]
    assert store.usage_bytes(commune_a) == len(b"stable")
    if isinstance(store, LocalStore):
        assert temp_files(store) == []
    else:
        # The multipart upload was aborted: no parts linger on the server.
        import boto3

        settings = request.getfixturevalue("storage_s3_settings")
        s3 = boto3.client(
            "s3", endpoint_url=("https://" if store.secure else "http://") + store.endpoint,
            aws_access_key_id=settings.access_key or "x",
            aws_secret_access_key=settings.secret_key or "x",
            region_name=settings.region)
        uploads = s3.list_multipart_uploads(Bucket=store.bucket_name(commune_a))
        assert uploads.get("Uploads", []) == []


def test_length_mismatch_stores_nothing(store, commune_a):
    with pytest.raises(ValueError):
        store.put(commune_a, "court", io.BytesIO(b"abc"), length=10)
    with pytest.raises(ValueError):
        store.put(commune_a, "long", io.BytesIO(b"abcdef"), length=3)
    assert list(store.list(commune_a)) == []
    exact = store.put(commune_a, "exact", io.BytesIO(b"abcdef"), length=6)
    assert exact.size == 6


def test_ping(store):
    store.ping()


def test_unreachable_s3_endpoint_raises_storage_error():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    # Nothing listens on the port once the socket is closed: connections are refused.
    store = S3Store(f"http://127.0.0.1:{port}", "key", "secret", False, "fr-east-1", "t-")
    started = time.monotonic()
    for call in (
        store.ping,
        lambda: store.bucket_exists("commune-a"),
        lambda: store.ensure_bucket("commune-a"),
        lambda: store.put("commune-a", "k", io.BytesIO(b"x")),
        lambda: store.get("commune-a", "k"),
        lambda: store.stat("commune-a", "k"),
        lambda: store.list("commune-a"),
        lambda: store.usage_bytes("commune-a"),
    ):
        with pytest.raises(StorageError) as caught:
            call()
        assert type(caught.value) is StorageError
    assert time.monotonic() - started < 15


def test_local_ping_fails_on_unusable_root(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    with pytest.raises(StorageError):
        LocalStore(blocker / "objects", bucket_prefix="t-").ping()


def test_parse_endpoint():
    assert parse_endpoint("minio:9000", False) == ("minio:9000", False)
    assert parse_endpoint("minio:9000", True) == ("minio:9000", True)
    assert parse_endpoint("http://minio:9000", False) == ("minio:9000", False)
    assert parse_endpoint("https://s3.example.fr", False) == ("s3.example.fr", True)
    assert parse_endpoint("https://s3.example.fr:9000/", False) == ("s3.example.fr:9000", True)
    for bad in ("", "ftp://x", "http://minio:9000/bucket", "https://user:pw@host", "host/path"):
        with pytest.raises(ValueError):
            parse_endpoint(bad, False)
    with pytest.raises(ValueError):
        parse_endpoint("http://minio:9000", True)  # would silently drop TLS


# -- local backend specifics --------------------------------------------------------------


def test_local_layout_stays_inside_the_bucket(local_store):
    local_store.ensure_bucket("commune-a")
    info = local_store.put("commune-a", "a/b/c.txt", io.BytesIO(b"abc"))
    local_store.put("commune-a", "a/b", io.BytesIO(b"ab"))
    local_store.put("commune-a", "~x/.y/%z", io.BytesIO(b"odd"))

    bucket = local_store.root / local_store.bucket_name("commune-a")
    assert (bucket / "a" / "b" / "~c.txt" / f"{info.version_id}.bin").read_bytes() == b"abc"
    assert (bucket / "a" / "~b").is_dir()
    assert (bucket / "%~x" / "%.y" / "~%z").is_dir()
    assert keys_of(local_store.list("commune-a")) == ["a/b", "a/b/c.txt", "~x/.y/%z"]


def test_local_concurrent_writers_in_several_processes(local_store):
    local_store.ensure_bucket("commune-a")
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=4, mp_context=context) as pool:
        futures = [pool.submit(workers.put_many, str(local_store.root),
                               local_store.bucket_prefix, "partage/registre.txt", 10, seed)
                   for seed in range(4)]
        written = [item for future in futures for item in future.result()]

    versions = local_store.list_versions("commune-a", "partage/registre.txt")
    assert len(versions) == len(written) == 40
    assert {v.version_id for v in versions} == {vid for vid, _ in written}
    assert [v.version_id for v in versions] == sorted((v.version_id for v in versions),
                                                      reverse=True)
    expected = dict(written)
    for version in versions:
        data = local_store.get("commune-a", "partage/registre.txt",
                               version_id=version.version_id).read_all()
        assert sha(data) == expected[version.version_id] == version.sha256
    assert temp_files(local_store) == []


def test_local_concurrent_put_and_delete_prune_safely(local_store):
    local_store.ensure_bucket("commune-a")
    errors: list[BaseException] = []

    def churn(key: str) -> None:
        try:
            for i in range(150):
                local_store.put("commune-a", key, io.BytesIO(str(i).encode()))
                local_store.delete("commune-a", key)
        except BaseException as exc:  # reported below, with the thread's context
            errors.append(exc)

    threads = [threading.Thread(target=churn, args=(key,))
               for key in ("p/q/r", "p/q/s", "p/t", "p/q/r/u")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert list(local_store.list("commune-a")) == []
    assert local_store.usage_bytes("commune-a") == 0


def test_local_crash_never_exposes_a_partial_version(local_store, monkeypatch):
    import saas.storage.local as local_module

    local_store.ensure_bucket("commune-a")
    kept = local_store.put("commune-a", "doc.txt", io.BytesIO(b"kept"))
    real_replace = os.replace
    calls = []

    def failing_replace(src, dst):
        calls.append(dst)
        if str(dst).endswith(".json"):
            raise OSError(28, "No space left on device")
        return real_replace(src, dst)

    monkeypatch.setattr(local_module.os, "replace", failing_replace)
    with pytest.raises(StorageError):
        local_store.put("commune-a", "doc.txt", io.BytesIO(b"half-written"))
    monkeypatch.undo()

    assert calls  # the failure happened at commit time, after the data was in place
    assert [v.version_id for v in local_store.list_versions("commune-a", "doc.txt")] == [
        kept.version_id]
    object_dir = local_store.root / local_store.bucket_name("commune-a") / "~doc.txt"
    assert sorted(os.listdir(object_dir)) == [f"{kept.version_id}.bin",
                                              f"{kept.version_id}.json"]

    # Debris of a real crash (a temp file, data without metadata) stays invisible.
    (object_dir / ".tmp-0123456789abcdef").write_bytes(b"partial")
    (object_dir / "99999999999999999999-deadbeef.bin").write_bytes(b"uncommitted")
    assert local_store.stat("commune-a", "doc.txt").version_id == kept.version_id
    assert local_store.get("commune-a", "doc.txt").read_all() == b"kept"
    assert len(local_store.list_versions("commune-a", "doc.txt")) == 1
    assert local_store.usage_bytes("commune-a") == 4


# -- compose (resumable uploads) and object lock ------------------------------------------


def test_compose_concatenates_versions_and_hashes_the_whole(store, commune_a):
    from saas.storage.base import MIN_COMPOSE_PART

    first = os.urandom(MIN_COMPOSE_PART)
    second = os.urandom(MIN_COMPOSE_PART + 123)
    last = b"tail bytes"
    parts = []
    for n, data in enumerate((first, second, last)):
        info = store.put(commune_a, f"uploads/u1/{n:05d}", io.BytesIO(data), length=len(data))
        parts.append((info.key, info.version_id))
    # A later version of a source key must not leak into the composition.
    store.put(commune_a, "uploads/u1/00002", io.BytesIO(b"other"), length=5)
    whole = first + second + last
    result = store.compose(commune_a, "ged/doc/final", parts, content_type="application/pdf",
                           metadata={"document": "doc"})
    assert result.size == len(whole)
    assert result.sha256 == sha(whole)
    assert result.content_type == "application/pdf"
    assert store.get(commune_a, "ged/doc/final").read_all() == whole
    assert store.stat(commune_a, "ged/doc/final").content_type == "application/pdf"
    # Sources are left in place; the caller removes them.
    assert store.get(commune_a, parts[0][0], version_id=parts[0][1]).read_all() == first


def test_compose_refuses_small_non_final_sources(store, commune_a):
    a = store.put(commune_a, "uploads/u2/a", io.BytesIO(b"x" * 1000), length=1000)
    b = store.put(commune_a, "uploads/u2/b", io.BytesIO(b"y" * 10), length=10)
    with pytest.raises(ValueError, match="at least"):
        store.compose(commune_a, "ged/doc/small", [(a.key, a.version_id), (b.key, b.version_id)])
    with pytest.raises(ObjectNotFound):
        store.stat(commune_a, "ged/doc/small")
    single = store.compose(commune_a, "ged/doc/single", [(b.key, b.version_id)])
    assert single.size == 10 and single.sha256 == sha(b"y" * 10)


def test_compose_of_missing_source_raises(store, commune_a):
    with pytest.raises(ObjectNotFound):
        store.compose(commune_a, "ged/doc/none", [("uploads/none/00000", None)])


def test_lock_until_is_refused_without_bucket_object_lock(store, commune_a):
    from datetime import UTC, datetime, timedelta

    info = store.put(commune_a, "ged/doc/locked", io.BytesIO(b"abc"), length=3)
    assert store.lock_until(commune_a, info.key, info.version_id,
                            datetime.now(UTC) + timedelta(days=1)) is False
    store.delete(commune_a, info.key)  # no lock was set: deletion still works
