"""S3 object store on the minio SDK, kept to standard S3 calls (MinIO, Garage, SeaweedFS, Ceph RGW).

Each tenant has a versioned bucket. Uploads stream through a SHA-256 hasher. An object that
fits in one part goes up in one request, hashed before it, so its SHA-256 is also stored as
metadata and reported by stat()/get(); for multipart objects only put() knows it (callers
record what put() returns).

Multipart uploads are our own (on the SDK's multipart calls) rather than put_object's: the
calling thread reads the parts in order, hashing them, and a few threads send them in
parallel. Reading waits for one of `upload_threads` + 1 recycled part buffers, so memory
stays bounded however fast the client and however slow the S3 server (the SDK's parallel
mode queues parts without limit). Any failure aborts the multipart upload, so a failed put
leaves no visible object and no parts.
"""

from __future__ import annotations

import logging
import math
import os
import queue
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from email.utils import parsedate_to_datetime
from typing import BinaryIO
from urllib.parse import urlsplit

import certifi
import urllib3
from minio import Minio
from minio.commonconfig import GOVERNANCE, ComposeSource
from minio.datatypes import Part
from minio.error import InvalidResponseError, S3Error, ServerError
from minio.versioningconfig import ENABLED, VersioningConfig

from saas.storage.base import (
    CHUNK_SIZE,
    RESERVED_METADATA_PREFIX,
    BucketMissing,
    HashingReader,
    ObjectNotFound,
    ObjectReader,
    ObjectStore,
    StorageError,
    StoredObject,
    check_compose_sources,
    check_range,
    decode_metadata_value,
    encode_metadata_value,
    make_bucket_name,
    prime_iterator,
    validate_content_type,
    validate_key,
    validate_metadata,
    validate_prefix,
)

# 8 MiB parts: measured as fast as 16 MiB ones against the S3 server (parts go up in parallel),
# for half the memory: (UPLOAD_THREADS + 1) x 8 MiB = 32 MiB per upload at most. Objects of
# unknown length can reach 10,000 parts (78 GiB); known lengths get larger parts when needed.
PART_SIZE = 8 * 1024 * 1024
# Parts sent at once by one put (the SDK's own default for put_object).
UPLOAD_THREADS = 3
_MAX_PARTS = 10_000
_MIB = 1024 * 1024
_META = "x-amz-meta-"
_SHA256_META = f"{_META}{RESERVED_METADATA_PREFIX}sha256"

# Failures that mean "the endpoint did not answer properly", as opposed to an S3 error reply.
_TRANSPORT_ERRORS = (urllib3.exceptions.HTTPError, ServerError, InvalidResponseError, OSError)

log = logging.getLogger("saas.storage")


def parse_endpoint(endpoint: str, secure: bool) -> tuple[str, bool]:
    """Return (host:port, secure) from 'host:port' or an http(s):// URL."""
    endpoint = (endpoint or "").strip()
    if "://" not in endpoint:
        if not endpoint or "/" in endpoint:
            raise ValueError(f"invalid S3 endpoint {endpoint!r}: expected host:port or a URL")
        return endpoint, secure
    parts = urlsplit(endpoint)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"invalid S3 endpoint {endpoint!r}: expected http(s)://host:port")
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
        raise ValueError(f"invalid S3 endpoint {endpoint!r}: no path, query or credentials")
    if parts.scheme == "http" and secure:
        # Refuse rather than silently downgrade a connection configured as TLS.
        raise ValueError(f"S3 endpoint {endpoint!r} is http:// but S3_SECURE is on")
    return parts.netloc, parts.scheme == "https"


class _PartBuffers:
    """The part buffers of one put: at most `count`, made on demand, recycled as parts are sent.

    take() blocks while every buffer is in use: that is the back-pressure on the reader.
    """

    def __init__(self, size: int, count: int):
        self.size = size
        self._unmade = count
        self._free: queue.SimpleQueue[bytearray | None] = queue.SimpleQueue()

    def take(self) -> bytearray:
        """Return a free buffer of `size` bytes, waiting for one when all are in use."""
        try:
            item = self._free.get_nowait()
        except queue.Empty:
            if self._unmade > 0:
                self._unmade -= 1
                return bytearray(self.size)
            item = self._free.get()
        return item if item is not None else bytearray(self.size)

    def claim(self) -> None:
        """Count a part read into memory elsewhere (the first one, as bytes) as a buffer."""
        self._unmade -= 1

    def give(self, buffer: bytes | bytearray) -> None:
        """Hand a part's memory back once the part is sent (or will not be)."""
        self._free.put(buffer if isinstance(buffer, bytearray) else None)

    def clear(self) -> None:
        """Drop the free buffers (their memory goes back as soon as the put returns)."""
        while True:
            try:
                self._free.get_nowait()
            except queue.Empty:
                return


def _info_from_headers(key: str, headers) -> StoredObject:
    content_range = headers.get("content-range", "")
    if "/" in content_range and not content_range.endswith("/*"):
        size = int(content_range.rsplit("/", 1)[1])
    else:
        size = int(headers.get("content-length", 0))
    last_modified = headers.get("last-modified")
    version_id = headers.get("x-amz-version-id")
    metadata = {}
    for name, value in headers.items():
        name = name.lower()
        if name.startswith(_META) and not name.startswith(_META + RESERVED_METADATA_PREFIX):
            metadata[name[len(_META):]] = decode_metadata_value(value)
    return StoredObject(
        key=key,
        version_id=None if version_id in (None, "null") else version_id,
        size=size,
        sha256=headers.get(_SHA256_META),
        etag=(headers.get("etag") or "").strip('"') or None,
        content_type=headers.get("content-type") or "application/octet-stream",
        last_modified=parsedate_to_datetime(last_modified) if last_modified else None,
        metadata=metadata,
    )


def _info_from_listing(obj) -> StoredObject:
    return StoredObject(
        key=obj.object_name,
        version_id=None if obj.version_id in (None, "null") else obj.version_id,
        size=obj.size or 0,
        sha256=None,
        etag=(obj.etag or "").strip('"') or None,
        # Listings carry no content type: stat() the object when it matters.
        content_type="",
        last_modified=obj.last_modified,
    )


class S3Store(ObjectStore):
    """Versioned object storage on an S3 server through the minio SDK."""

    def __init__(self, endpoint: str, access_key: str, secret_key: str, secure: bool = False,
                 region: str = "us-east-1", bucket_prefix: str = "mutualis-", *,
                 connect_timeout: float = 10.0, read_timeout: float = 300.0,
                 connect_retries: int = 2, part_size: int = PART_SIZE,
                 upload_threads: int = UPLOAD_THREADS):
        self.endpoint, self.secure = parse_endpoint(endpoint, secure)
        self.region = region
        self.bucket_prefix = bucket_prefix
        if part_size < 5 * _MIB or part_size % _MIB:
            raise ValueError("part_size must be a whole number of MiB, at least 5 (S3's minimum)")
        if upload_threads < 1:
            raise ValueError("upload_threads must be at least 1")
        self.part_size = part_size
        self.upload_threads = upload_threads
        # Our own pool rather than the SDK default: the default retries a refused connection
        # for ~6 s, which turns a down endpoint into hung health checks and requests.
        http = urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=connect_timeout, read=read_timeout),
            # Kept connections: every request thread's parallel part uploads reuse theirs.
            maxsize=32,
            cert_reqs="CERT_REQUIRED",
            ca_certs=os.environ.get("SSL_CERT_FILE") or certifi.where(),
            retries=urllib3.Retry(
                total=connect_retries + 2,
                connect=connect_retries,
                backoff_factor=0.2,
                status_forcelist=[500, 502, 503, 504],
            ),
        )
        self._http = http
        self._client = Minio(
            self.endpoint,
            access_key=access_key or None,
            secret_key=secret_key or None,
            secure=self.secure,
            region=region,
            http_client=http,
        )

    def __repr__(self) -> str:
        scheme = "https" if self.secure else "http"
        return f"S3Store({scheme}://{self.endpoint}, bucket_prefix={self.bucket_prefix!r})"

    # -- errors ------------------------------------------------------------------------------

    def _translate(self, exc: S3Error, bucket: str, key: str | None,
                   version_id: str | None) -> Exception:
        code = exc.code
        if code == "NoSuchBucket":
            return BucketMissing(f"bucket {bucket!r} does not exist")
        if code == "NoSuchKey" and version_id is None:
            return ObjectNotFound(f"no object {key!r}")
        # A malformed version id is refused as a bad request (400), and a delete marker
        # answers MethodNotAllowed: for the caller both mean "no such version".
        if code in ("NoSuchKey", "NoSuchVersion", "InvalidArgument", "BadRequest",
                    "MethodNotAllowed") and version_id is not None:
            return ObjectNotFound(f"no version {version_id!r} of {key!r}")
        if code == "InvalidRange":
            return ValueError("range not satisfiable: offset at or past the end of the object")
        return StorageError(f"S3 {code} on {bucket}/{key or ''}: {exc.message}")

    def _map_error(self, exc: Exception, bucket: str, key: str | None,
                   version_id: str | None) -> Exception:
        if isinstance(exc, S3Error):
            return self._translate(exc, bucket, key, version_id)
        if isinstance(exc, _TRANSPORT_ERRORS):
            return StorageError(f"S3 endpoint {self.endpoint} failed: {exc}")
        return exc

    @contextmanager
    def _errors(self, bucket: str, key: str | None = None, version_id: str | None = None):
        try:
            yield
        except (S3Error, *_TRANSPORT_ERRORS) as exc:
            raise self._map_error(exc, bucket, key, version_id) from exc

    def _object_not_found_or_bucket(self, tenant, exc: ObjectNotFound) -> StorageError:
        # HEAD replies carry no error body: a missing bucket also looks like a missing key.
        return exc if self.bucket_exists(tenant) else BucketMissing(
            f"bucket {self.bucket_name(tenant)!r} does not exist")

    # -- buckets -----------------------------------------------------------------------------

    def bucket_name(self, tenant) -> str:
        """Return the bucket name of the tenant (prefix + slug)."""
        return make_bucket_name(self.bucket_prefix, tenant)

    def ensure_bucket(self, tenant) -> bool:
        """Create the tenant's bucket in the configured region and turn versioning on."""
        bucket = self.bucket_name(tenant)
        created = False
        with self._errors(bucket):
            if not self._client.bucket_exists(bucket):
                try:
                    self._client.make_bucket(bucket, location=self.region)
                    created = True
                except S3Error as exc:
                    # Created concurrently by another worker: fine, it is ours.
                    if exc.code != "BucketAlreadyOwnedByYou":
                        raise
            # Always reassert: idempotent, and repairs a bucket created by hand without it.
            try:
                self._client.set_bucket_versioning(bucket, VersioningConfig(ENABLED))
            except S3Error as exc:
                if exc.code == "NotImplemented":
                    raise StorageError(
                        f"S3 server {self.endpoint} does not implement bucket versioning "
                        "(Garage, for one), which the object store requires") from exc
                raise
        return created

    def bucket_exists(self, tenant) -> bool:
        """Return True when the tenant's bucket exists."""
        bucket = self.bucket_name(tenant)
        with self._errors(bucket):
            return self._client.bucket_exists(bucket)

    # -- objects -----------------------------------------------------------------------------

    def put(self, tenant, key: str, stream: BinaryIO, *, length: int = -1,
            content_type: str = "application/octet-stream",
            metadata: dict[str, str] | None = None) -> StoredObject:
        """Stream into a new version, hashing SHA-256 on the fly; parts go up in parallel.

        At most `upload_threads` + 1 parts are in memory: the ones being sent and the one
        being read. Any failure aborts the multipart upload: no object, no version, no parts.
        """
        validate_key(key)
        validate_content_type(content_type)
        user_metadata = validate_metadata(metadata)
        bucket = self.bucket_name(tenant)
        length = -1 if length is None else length
        part_size = self.part_size
        if length > part_size * _MAX_PARTS:
            # S3 allows 10,000 parts: grow the parts (whole MiB) for very large known sizes.
            part_size = math.ceil(length / _MAX_PARTS / _MIB) * _MIB
        headers = {f"{_META}{k}": encode_metadata_value(v) for k, v in user_metadata.items()}
        headers["Content-Type"] = content_type
        reader = HashingReader(stream, length)
        buffers = _PartBuffers(part_size, self.upload_threads + 1)
        try:
            pieces = reader.read_pieces(part_size)
            body: bytes | None = b"".join(pieces)  # one piece: no copy
            pieces.clear()
            if len(body) == part_size and length == part_size:
                reader.read_pieces(1)  # raises ValueError if the stream goes on past `length`
            elif len(body) == part_size:
                # Perhaps the first of several parts: read the next one to know.
                buffers.claim()
                second = buffers.take()
                second_size = reader.readinto(second)
                if second_size:
                    # The list is the parts' only reference: _put_parts drops each once sent.
                    parts = [(body, part_size), (second, second_size)]
                    body = second = None
                    result = self._put_parts(bucket, key, headers, reader, buffers, parts)
            if body is not None:
                # The whole object is in hand, so its hash travels as metadata in the request.
                headers[_SHA256_META] = reader.sha256
                result = self._client._put_object(bucket, key, body, headers)
                del body
        except BaseException as exc:
            # The stream's own errors (and a length mismatch) reach the caller unchanged.
            mapped = self._map_error(exc, bucket, key, None)
            if exc is reader.source_error or isinstance(exc, ValueError) or mapped is exc:
                raise
            raise mapped from exc
        finally:
            buffers.clear()
        sha256 = reader.sha256
        try:
            info = self.stat(tenant, key, version_id=result.version_id)
            last_modified = info.last_modified
        except StorageError:
            # Stored all the same; only the timestamp is unknown.
            last_modified = None
        return StoredObject(
            key=key,
            version_id=result.version_id,
            size=reader.size,
            sha256=sha256,
            etag=(result.etag or "").strip('"') or None,
            content_type=content_type,
            last_modified=last_modified,
            metadata=user_metadata,
        )

    def _put_parts(self, bucket: str, key: str, headers: dict[str, str], reader: HashingReader,
                   buffers: _PartBuffers, pending: list[tuple[bytes | bytearray, int]]):
        """Multipart upload of the `pending` parts already read, then of the rest of `reader`.

        The calling thread reads the parts in order (the reader hashes them) and a pool of
        `upload_threads` sends them; reading waits for a free buffer, so a fast client cannot
        outrun the S3 server. On any failure nothing more is sent, the parts in flight are
        waited for and the multipart upload is aborted.
        """
        client = self._client
        upload_id = client._create_multipart_upload(bucket, key, dict(headers))
        etags: dict[int, str] = {}
        errors: list[BaseException] = []
        failed = threading.Event()

        def send(number: int, buffer: bytes | bytearray, size: int) -> None:
            try:
                if not failed.is_set():  # once a part failed, send nothing more
                    with memoryview(buffer) as view:
                        etags[number] = client._upload_part(
                            bucket, key, view[:size], None, upload_id, number)
            except BaseException as exc:
                errors.append(exc)
                failed.set()
            finally:
                buffers.give(buffer)

        pool = ThreadPoolExecutor(self.upload_threads, thread_name_prefix="s3-part")
        number = 0
        try:
            while True:
                if pending:
                    buffer, size = pending.pop(0)
                else:
                    buffer = buffers.take()
                    size = 0 if failed.is_set() else reader.readinto(buffer)
                if not size or failed.is_set():
                    buffers.give(buffer)
                    break
                number += 1
                if number > _MAX_PARTS:
                    raise ValueError(f"stream is longer than {_MAX_PARTS} parts of "
                                     f"{buffers.size} bytes")
                pool.submit(send, number, buffer, size)
                del buffer
            pool.shutdown(wait=True)
            if errors:
                raise errors[0]
            parts = [Part(n, etags[n]) for n in range(1, number + 1)]
            return client._complete_multipart_upload(bucket, key, upload_id, parts)
        except BaseException:
            failed.set()
            pool.shutdown(wait=True, cancel_futures=True)
            try:
                client._abort_multipart_upload(bucket, key, upload_id)
            except Exception:  # the original failure matters more; the upload expires anyway
                log.warning("could not abort multipart upload %s of %s/%s", upload_id, bucket,
                            key, exc_info=True)
            raise

    def get(self, tenant, key: str, *, version_id: str | None = None, offset: int = 0,
            length: int | None = None) -> ObjectReader:
        """Open a version for a streaming read of [offset, offset+length), 1 MiB at a time."""
        check_range(offset, length)
        validate_key(key)
        bucket = self.bucket_name(tenant)
        try:
            with self._errors(bucket, key, version_id):
                response = self._client.get_object(
                    bucket, key, offset=offset, length=length or 0, version_id=version_id)
        except ValueError:
            if offset:
                raise
            # S3 refuses any range on an empty object; the whole (empty) object is the answer.
            with self._errors(bucket, key, version_id):
                response = self._client.get_object(bucket, key, version_id=version_id)
        info = _info_from_headers(key, response.headers)
        released = False

        def release() -> None:
            # After a complete read urllib3 has already put the connection back in the pool;
            # before, close() drops it (its unread bytes make it unusable).
            nonlocal released
            if not released:
                released = True
                response.close()
                response.release_conn()

        def chunks() -> Iterator[bytes]:
            try:
                # Bytes as stored: no transparent gunzip of a Content-Encoding set by a client.
                yield from response.stream(CHUNK_SIZE, decode_content=False)
            except _TRANSPORT_ERRORS as exc:
                raise StorageError(f"reading {key!r} from {self.endpoint} failed: {exc}") from exc
            finally:
                release()

        return ObjectReader(info, chunks(), release)

    def stat(self, tenant, key: str, *, version_id: str | None = None) -> StoredObject:
        """Describe the latest (or given) version with a HEAD request."""
        validate_key(key)
        bucket = self.bucket_name(tenant)
        try:
            with self._errors(bucket, key, version_id):
                result = self._client.stat_object(bucket, key, version_id=version_id)
        except ObjectNotFound as exc:
            raise self._object_not_found_or_bucket(tenant, exc) from None
        return _info_from_headers(key, result.metadata)

    def delete(self, tenant, key: str, *, version_id: str | None = None) -> None:
        """Delete one version, or every version (and delete marker) of the key."""
        validate_key(key)
        bucket = self.bucket_name(tenant)
        if version_id is not None:
            # S3 deletes of absent versions succeed silently; check first to report them.
            self.stat(tenant, key, version_id=version_id)
            with self._errors(bucket, key, version_id):
                self._client.remove_object(bucket, key, version_id=version_id)
            return
        with self._errors(bucket, key):
            entries = list(self._key_versions(bucket, key))
            for entry in entries:
                self._client.remove_object(bucket, key, version_id=entry.version_id)
        if not any(not entry.is_delete_marker for entry in entries):
            raise ObjectNotFound(f"no object {key!r}")

    def _key_versions(self, bucket: str, key: str):
        """Yield the versions and delete markers of exactly `key`, newest first."""
        for obj in self._client.list_objects(bucket, prefix=key, recursive=True,
                                             include_version=True):
            if obj.object_name != key:
                # Listings are in key order and `key` is the shortest key with this prefix.
                break
            yield obj

    def list(self, tenant, prefix: str = "") -> Iterator[StoredObject]:
        """Yield the latest version of every key under `prefix` (no sha256 or content type)."""
        validate_prefix(prefix)
        bucket = self.bucket_name(tenant)

        def generate() -> Iterator[StoredObject]:
            with self._errors(bucket):
                for obj in self._client.list_objects(bucket, prefix=prefix or None,
                                                     recursive=True, include_version=True):
                    if not obj.is_delete_marker and str(obj.is_latest).lower() == "true":
                        yield _info_from_listing(obj)

        return prime_iterator(generate())

    def list_versions(self, tenant, key: str) -> list[StoredObject]:
        """Return every version of the key, newest first (no sha256 or content type)."""
        validate_key(key)
        bucket = self.bucket_name(tenant)
        with self._errors(bucket, key):
            return [_info_from_listing(obj) for obj in self._key_versions(bucket, key)
                    if not obj.is_delete_marker]

    def compose(self, tenant, key: str, sources: list[tuple[str, str | None]], *,
                content_type: str = "application/octet-stream",
                metadata: dict[str, str] | None = None) -> StoredObject:
        """Server-side compose (UploadPartCopy), then one streaming read to hash the result."""
        import hashlib

        validate_key(key)
        validate_content_type(content_type)
        user_metadata = validate_metadata(metadata)
        for src_key, _version in sources:
            validate_key(src_key)
        bucket = self.bucket_name(tenant)
        infos = [self.stat(tenant, src_key, version_id=src_version)
                 for src_key, src_version in sources]
        check_compose_sources(sources, [info.size for info in infos])
        headers = {"Content-Type": content_type}
        headers.update({f"{_META}{k}": encode_metadata_value(v) for k, v in user_metadata.items()})
        with self._errors(bucket, key):
            result = self._client.compose_object(
                bucket, key,
                [ComposeSource(bucket, info.key, version_id=info.version_id) for info in infos],
                metadata=headers)
        digest = hashlib.sha256()
        size = 0
        with self.get(tenant, key, version_id=result.version_id) as reader:
            for chunk in reader:
                digest.update(chunk)
                size += len(chunk)
            last_modified = reader.info.last_modified
        return StoredObject(
            key=key,
            version_id=result.version_id,
            size=size,
            sha256=digest.hexdigest(),
            etag=(result.etag or "").strip('"') or None,
            content_type=content_type,
            last_modified=last_modified,
            metadata=user_metadata,
        )

    def lock_until(self, tenant, key: str, version_id: str | None, until) -> bool:
        """Set a GOVERNANCE retention on the version when the bucket has object lock enabled."""
        from minio.retention import Retention

        validate_key(key)
        bucket = self.bucket_name(tenant)
        try:
            self._client.get_object_lock_config(bucket)
        except S3Error:
            return False  # ObjectLockConfigurationNotFoundError: buckets are created without lock
        except _TRANSPORT_ERRORS as exc:
            raise StorageError(f"S3 endpoint {self.endpoint} failed: {exc}") from exc
        with self._errors(bucket, key, version_id):
            self._client.set_object_retention(bucket, key, Retention(GOVERNANCE, until),
                                              version_id=version_id)
        return True

    def usage_bytes(self, tenant) -> int:
        """Sum the size of every version in the tenant's bucket."""
        bucket = self.bucket_name(tenant)
        with self._errors(bucket):
            return sum(obj.size or 0 for obj in self._client.list_objects(
                bucket, recursive=True, include_version=True) if not obj.is_delete_marker)

    def ping(self) -> None:
        """Raise StorageError unless the endpoint answers an authenticated ListBuckets."""
        with self._errors("-"):
            self._client.list_buckets()
