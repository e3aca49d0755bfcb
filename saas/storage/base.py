"""The one object-store interface every feature uses; one bucket per tenant."""

from __future__ import annotations

import hashlib
import itertools
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import BinaryIO
from urllib.parse import quote, unquote

# Streaming unit for reads and writes: large enough for throughput, small enough that a
# request never holds more than this (plus one S3 part on the S3 path) in memory.
CHUNK_SIZE = 1024 * 1024

# S3 caps keys at 1024 UTF-8 bytes; 250 per segment keeps the local layout (one directory or
# file name per segment, plus a one-character marker) under the usual 255-byte NAME_MAX.
MAX_KEY_BYTES = 1024
MAX_SEGMENT_BYTES = 250

# S3 composes (UploadPartCopy) need every source but the last to hold at least 5 MiB; both
# backends enforce it so code that works on the local store also works on S3.
MIN_COMPOSE_PART = 5 * 1024 * 1024
MAX_COMPOSE_SOURCES = 10_000

# User metadata travels as x-amz-meta-* headers; S3 caps their total at 2 KiB, and the
# backends reserve the "saas-" namespace for their own bookkeeping (e.g. the SHA-256).
MAX_METADATA_BYTES = 1024
RESERVED_METADATA_PREFIX = "saas-"

_METADATA_KEY = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
# No dots: dotted bucket names break virtual-host addressing over TLS on most S3 servers.
_BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$")
# Printable ASCII except '%', so quoting is reversible and header-safe.
_METADATA_SAFE = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) != "%")


class StorageError(RuntimeError):
    """The store could not complete an operation (unreachable, refused)."""


class ObjectNotFound(StorageError):
    """No such object (or version) in this tenant's bucket."""


class BucketMissing(StorageError):
    """The tenant's bucket has not been provisioned."""


@dataclass(frozen=True)
class StoredObject:
    key: str
    version_id: str | None
    size: int
    sha256: str | None
    etag: str | None
    content_type: str
    last_modified: datetime | None = None
    # User metadata as given to put(), keys lower-cased; empty in list() results on S3.
    metadata: dict[str, str] = field(default_factory=dict, hash=False, compare=False)


class ObjectReader:
    """A streaming read: iterate for chunks; close() releases the connection or file."""

    def __init__(self, info: StoredObject, chunks: Iterator[bytes], close: Callable[[], None]):
        self.info = info
        self._chunks = chunks
        self._close = close
        self._pending = b""
        self._closed = False

    def __iter__(self) -> Iterator[bytes]:
        if self._pending:
            pending, self._pending = self._pending, b""
            yield pending
        yield from self._chunks

    def read(self, size: int = -1) -> bytes:
        """Read up to `size` bytes (all remaining when negative), as a file object would."""
        if size is None or size < 0:
            parts = [self._pending, *self._chunks]
            self._pending = b""
            return b"".join(parts)
        while len(self._pending) < size:
            chunk = next(self._chunks, None)
            if chunk is None:
                break
            self._pending += chunk
        data, self._pending = self._pending[:size], self._pending[size:]
        return data

    def read_all(self) -> bytes:
        """Read the remaining bytes and close the reader."""
        try:
            return self.read()
        finally:
            self.close()

    def close(self) -> None:
        """Release the underlying file or connection; safe to call twice."""
        if not self._closed:
            self._closed = True
            self._close()

    def __enter__(self) -> ObjectReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def tenant_slug(tenant) -> str:
    """Return the slug of a tenant object, or the string itself."""
    return tenant if isinstance(tenant, str) else tenant.slug


def make_bucket_name(prefix: str, tenant) -> str:
    """Return prefix + tenant slug, checked against the portable S3 bucket-name rules."""
    name = f"{prefix}{tenant_slug(tenant)}"
    # xn-- and the -s3alias / --ol-s3 suffixes are reserved by AWS and refused by some servers.
    reserved = name.startswith("xn--") or name.endswith(("-s3alias", "--ol-s3"))
    if not _BUCKET_NAME.match(name) or reserved:
        raise ValueError(
            f"invalid bucket name {name!r}: 3 to 63 characters among a-z, 0-9 and '-', "
            "starting and ending with a letter or digit"
        )
    return name


def _check_characters(value: str, what: str, *, path_like: bool = True) -> None:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(f"{what} {value!r} is not valid UTF-8 text") from exc
    for char in value:
        code = ord(char)
        # C0, DEL and C1 controls (NUL included): invisible, and unsafe in paths and headers.
        if code < 0x20 or 0x7F <= code <= 0x9F:
            raise ValueError(f"{what} {value!r} contains a control character (U+{code:04X})")
    # A separator on Windows, and a classic way to smuggle ".." past a naive check.
    if path_like and "\\" in value:
        raise ValueError(f"{what} {value!r} contains a backslash")


def _check_segment(segment: str, what: str, value: str) -> None:
    if segment == "":
        raise ValueError(f"{what} {value!r} has an empty segment (leading, trailing or double '/')")
    if segment in (".", ".."):
        raise ValueError(f"{what} {value!r} has a relative segment {segment!r}")
    if len(segment.encode("utf-8")) > MAX_SEGMENT_BYTES:
        raise ValueError(f"{what} {value!r} has a segment longer than {MAX_SEGMENT_BYTES} bytes")


def validate_key(key: str) -> str:
    """Return `key` if it is a safe object key, else raise ValueError saying why."""
    if not isinstance(key, str):
        raise ValueError(f"object key must be a string, not {type(key).__name__}")
    if not key:
        raise ValueError("object key is empty")
    _check_characters(key, "object key")
    if len(key.encode("utf-8")) > MAX_KEY_BYTES:
        raise ValueError(f"object key is longer than {MAX_KEY_BYTES} bytes")
    if key.startswith("/"):
        raise ValueError(f"object key {key!r} is absolute (starts with '/')")
    for segment in key.split("/"):
        _check_segment(segment, "object key", key)
    return key


def validate_prefix(prefix: str) -> str:
    """Return `prefix` if it can only match safe keys, else raise ValueError saying why."""
    if not isinstance(prefix, str):
        raise ValueError(f"prefix must be a string, not {type(prefix).__name__}")
    if not prefix:
        return prefix
    _check_characters(prefix, "prefix")
    if len(prefix.encode("utf-8")) > MAX_KEY_BYTES:
        raise ValueError(f"prefix is longer than {MAX_KEY_BYTES} bytes")
    if prefix.startswith("/"):
        raise ValueError(f"prefix {prefix!r} is absolute (starts with '/')")
    # The last segment is partial ("dossiers/20" matches "dossiers/2024/..."), so only the
    # complete segments before it must be valid key segments.
    for segment in prefix.split("/")[:-1]:
        _check_segment(segment, "prefix", prefix)
    return prefix


def validate_content_type(content_type: str) -> str:
    """Return `content_type` if it is a printable ASCII media type, else raise ValueError."""
    if (
        not isinstance(content_type, str)
        or not content_type
        or len(content_type) > 255
        or not all(0x20 <= ord(c) < 0x7F for c in content_type)
    ):
        raise ValueError(f"invalid content type {content_type!r}")
    return content_type


def encode_metadata_value(value: str) -> str:
    """Percent-encode a metadata value so any text survives an HTTP header."""
    return quote(value, safe=_METADATA_SAFE)


def decode_metadata_value(value: str) -> str:
    """Reverse encode_metadata_value."""
    return unquote(value)


def validate_metadata(metadata: dict[str, str] | None) -> dict[str, str]:
    """Return user metadata with lower-cased keys, or raise ValueError if it cannot be stored."""
    result: dict[str, str] = {}
    total = 0
    for name, value in (metadata or {}).items():
        if not isinstance(name, str) or not _METADATA_KEY.match(name.lower()):
            raise ValueError(f"invalid metadata key {name!r}: use a-z, 0-9 and '-' (max 63)")
        name = name.lower()
        if name.startswith(RESERVED_METADATA_PREFIX):
            raise ValueError(f"metadata key {name!r} uses the reserved prefix "
                             f"{RESERVED_METADATA_PREFIX!r}")
        if name in result:
            raise ValueError(f"metadata key {name!r} given twice (keys are case-insensitive)")
        if not isinstance(value, str):
            raise ValueError(f"metadata value for {name!r} must be a string")
        _check_characters(value, f"metadata value for {name!r}:", path_like=False)
        total += len(name) + len(encode_metadata_value(value))
        result[name] = value
    if total > MAX_METADATA_BYTES:
        raise ValueError(f"metadata is larger than {MAX_METADATA_BYTES} bytes once encoded")
    return result


def check_compose_sources(sources, sizes: list[int]) -> None:
    """Raise ValueError unless there is 1 to MAX_COMPOSE_SOURCES sources, all but the last >= 5 MiB."""
    if not sources:
        raise ValueError("compose needs at least one source")
    if len(sources) > MAX_COMPOSE_SOURCES:
        raise ValueError(f"compose takes at most {MAX_COMPOSE_SOURCES} sources")
    for (key, _version), size in zip(sources[:-1], sizes[:-1], strict=True):
        if size < MIN_COMPOSE_PART:
            raise ValueError(
                f"source {key!r} holds {size} bytes: every source but the last needs at least "
                f"{MIN_COMPOSE_PART} bytes")


def check_range(offset: int, length: int | None) -> None:
    """Raise ValueError unless offset >= 0 and length is None or >= 1."""
    if not isinstance(offset, int) or offset < 0:
        raise ValueError(f"offset must be a non-negative integer, not {offset!r}")
    if length is not None and (not isinstance(length, int) or length < 1):
        raise ValueError(f"length must be None or a positive integer, not {length!r}")


def range_not_satisfiable(offset: int, size: int) -> ValueError:
    """Return the error both backends raise for a read starting past the end."""
    return ValueError(f"range not satisfiable: offset {offset} >= object size {size}")


def prime_iterator(iterator: Iterator[StoredObject]) -> Iterator[StoredObject]:
    """Run an iterator to its first item now, so a missing bucket raises at the call site."""
    try:
        first = next(iterator)
    except StopIteration:
        return iter(())
    return itertools.chain((first,), iterator)


class HashingReader:
    """Wrap a source stream: hash SHA-256 and count bytes as they are read, check the length.

    Errors raised by the source are recorded in `source_error` so callers can tell them
    from storage failures and re-raise them unchanged.
    """

    def __init__(self, source: BinaryIO, expected_length: int = -1):
        if not callable(getattr(source, "read", None)):
            raise ValueError("stream must have a callable read()")
        self._source = source
        self._expected = expected_length if expected_length is not None else -1
        self._hash = hashlib.sha256()
        self.size = 0
        self.source_error: BaseException | None = None
        self._eof = False

    def _read_once(self, size: int) -> bytes:
        try:
            data = self._source.read(size)
        except BaseException as exc:
            self.source_error = exc
            raise
        if data is None:
            # A non-blocking raw stream with nothing ready; sources here must block.
            raise ValueError("stream returned None from read(): use a blocking stream")
        if not isinstance(data, bytes | bytearray | memoryview):
            raise ValueError(f"stream read() must return bytes, not {type(data).__name__}")
        return bytes(data)

    def read(self, size: int = -1) -> bytes:
        """Return up to `size` bytes, reading the source until that many or EOF."""
        if size is None or size < 0:
            size = CHUNK_SIZE
        if self._eof or size == 0:
            return b""
        parts: list[bytes] = []
        wanted = size
        # Fill the request completely: the minio SDK concatenates short reads, which would
        # copy a whole part once per chunk.
        while wanted > 0:
            data = self._read_once(wanted)
            if not data:
                self._eof = True
                break
            parts.append(data)
            wanted -= len(data)
        data = parts[0] if len(parts) == 1 else b"".join(parts)
        self._hash.update(data)
        self.size += len(data)
        self._check_length()
        return data

    def readinto(self, buffer: bytearray, *, piece: int = CHUNK_SIZE) -> int:
        """Fill `buffer` from the source (short only at EOF); return the number of bytes.

        The source is asked for at most `piece` bytes at a time and each piece is hashed and
        copied into the buffer as it arrives: one copy, and no second part-sized allocation.
        """
        size = len(buffer)
        if self._eof or size == 0:
            return 0
        have = 0
        with memoryview(buffer) as view:
            while have < size:
                data = self._take(min(piece, size - have))
                if not data:
                    break
                view[have:have + len(data)] = data
                have += len(data)
        self._check_length()
        return have

    def read_pieces(self, limit: int, *, piece: int = CHUNK_SIZE) -> list[bytes]:
        """Read up to `limit` bytes (fewer only at EOF) as the source's pieces, uncopied."""
        pieces: list[bytes] = []
        have = 0
        while have < limit and not self._eof:
            data = self._take(min(piece, limit - have))
            if not data:
                break
            pieces.append(data)
            have += len(data)
        self._check_length()
        return pieces

    def _take(self, wanted: int) -> bytes:
        """One read of at most `wanted` bytes from the source, hashed and counted; b"" at EOF."""
        data = self._read_once(wanted)
        if not data:
            self._eof = True
            return b""
        if len(data) > wanted:
            raise ValueError(f"stream read({wanted}) returned {len(data)} bytes")
        self._hash.update(data)
        self.size += len(data)
        self._check_length()
        return data

    def _check_length(self) -> None:
        if self._expected >= 0 and self.size > self._expected:
            raise ValueError(f"stream is longer than the announced length {self._expected}")
        if self._eof and self._expected >= 0 and self.size != self._expected:
            raise ValueError(
                f"stream ended after {self.size} bytes, announced length {self._expected}"
            )

    @property
    def sha256(self) -> str:
        return self._hash.hexdigest()


class ObjectStore(ABC):
    """Tenant-addressed storage. Callers pass a tenant (or its slug), never a bucket name.

    Keys are validated by validate_key() before any backend call, so both backends accept
    and reject exactly the same keys. Versioning is always on.
    """

    @abstractmethod
    def bucket_name(self, tenant) -> str:
        """Return the bucket name of the tenant (prefix + slug)."""

    @abstractmethod
    def ensure_bucket(self, tenant) -> bool:
        """Create the tenant's bucket with versioning on; return True if it was created."""

    @abstractmethod
    def bucket_exists(self, tenant) -> bool:
        """Return True when the tenant's bucket has been provisioned."""

    @abstractmethod
    def put(self, tenant, key: str, stream: BinaryIO, *, length: int = -1,
            content_type: str = "application/octet-stream",
            metadata: dict[str, str] | None = None) -> StoredObject:
        """Stream `stream` into the tenant's bucket, hashing SHA-256 on the fly.

        Every put creates a new version. When `length` is given, a stream of any other
        length raises ValueError and stores nothing. An exception raised by the stream
        propagates unchanged and leaves no object or version behind.
        """

    @abstractmethod
    def get(self, tenant, key: str, *, version_id: str | None = None, offset: int = 0,
            length: int | None = None) -> ObjectReader:
        """Open the latest (or given) version for a streaming read of [offset, offset+length).

        The reader's `info` describes the whole object. An offset at or past the end of a
        non-empty object raises ValueError.
        """

    @abstractmethod
    def stat(self, tenant, key: str, *, version_id: str | None = None) -> StoredObject:
        """Describe the latest (or given) version without reading its data."""

    @abstractmethod
    def delete(self, tenant, key: str, *, version_id: str | None = None) -> None:
        """Delete one version, or every version of the key when version_id is None.

        Raise ObjectNotFound when there is no such key or version.
        """

    @abstractmethod
    def list(self, tenant, prefix: str = "") -> Iterator[StoredObject]:
        """Yield the latest version of every key starting with `prefix`, in key order."""

    @abstractmethod
    def list_versions(self, tenant, key: str) -> list[StoredObject]:
        """Return every version of the key, newest first (empty when the key is absent)."""

    @abstractmethod
    def compose(self, tenant, key: str, sources: list[tuple[str, str | None]], *,
                content_type: str = "application/octet-stream",
                metadata: dict[str, str] | None = None) -> StoredObject:
        """Create a new version of `key` from the concatenation of (key, version id) sources.

        Every source but the last must hold at least MIN_COMPOSE_PART bytes (ValueError
        otherwise, nothing written). The result's `sha256` covers the whole composed object.
        Sources are left in place.
        """

    def lock_until(self, tenant, key: str, version_id: str | None, until) -> bool:
        """Protect a version from deletion until `until` (a datetime) where the bucket allows it.

        Returns False when the bucket has no object lock (the default): retention is then
        enforced by the application alone.
        """
        return False

    @abstractmethod
    def usage_bytes(self, tenant) -> int:
        """Bytes held by the tenant's bucket, every version counted."""

    @abstractmethod
    def ping(self) -> None:
        """Raise StorageError when the store is unreachable."""
