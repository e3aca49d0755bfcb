"""Filesystem object store for the embedded mode: a directory per bucket, every put a version.

Layout under the root::

    <bucket>/                        one per tenant: bucket prefix + tenant slug
      <segment>/.../~<last segment>/ one directory per key ("a/b/c" -> a/b/~c/)
        <version-id>.bin             the bytes of one version
        <version-id>.json            its metadata, renamed into place last: its presence
                                     is what makes the version visible
        .tmp-<hex>                   writes in flight, never visible

An object directory is '~' + the last key segment, and a prefix directory name starting with
'~', '%' or '.' gets a '%' in front, so keys "a" and "a/b" can coexist and no key can collide
with an object directory or an internal '.' file. Version ids sort by creation time, so the
latest version is the greatest id.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from saas.storage.base import (
    CHUNK_SIZE,
    BucketMissing,
    HashingReader,
    ObjectNotFound,
    ObjectReader,
    ObjectStore,
    StorageError,
    StoredObject,
    check_compose_sources,
    check_range,
    make_bucket_name,
    prime_iterator,
    range_not_satisfiable,
    validate_content_type,
    validate_key,
    validate_metadata,
    validate_prefix,
)

_VERSION_ID = re.compile(r"^[0-9]{20}-[0-9a-f]{8}$")
_TEMP_PREFIX = ".tmp-"
_FILE_MODE = 0o640
# Attempts to create a temp file when a concurrent delete keeps pruning the empty directory.
_CREATE_ATTEMPTS = 8

_clock_lock = threading.Lock()
_last_ns = 0


def _new_version_id() -> tuple[str, int]:
    """Return a time-sortable unique version id and its timestamp in nanoseconds."""
    global _last_ns
    with _clock_lock:
        # Strictly increasing within the process, so two quick puts keep their order even
        # when the clock is coarse or steps back; the random suffix separates processes.
        ns = max(time.time_ns(), _last_ns + 1)
        _last_ns = ns
    return f"{ns:020d}-{uuid.uuid4().hex[:8]}", ns


def _escape(segment: str) -> str:
    return "%" + segment if segment[0] in "~%." else segment


def _unescape(name: str) -> str:
    return name[1:] if name.startswith("%") else name


def _fsync_dir(path: Path) -> None:
    # Durability of the renames themselves: without it a power cut can forget them.
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _unlink_quiet(path: Path) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _write_json_temp(directory: Path, payload: dict) -> Path:
    path = directory / f"{_TEMP_PREFIX}{uuid.uuid4().hex}"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, _FILE_MODE)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(payload, fh, ensure_ascii=False, sort_keys=True)
            fh.flush()
            os.fsync(fh.fileno())
    except BaseException:
        _unlink_quiet(path)
        raise
    return path


def _info_from_json(data: dict) -> StoredObject:
    return StoredObject(
        key=data["key"],
        version_id=data["version_id"],
        size=data["size"],
        sha256=data["sha256"],
        etag=data["etag"],
        content_type=data["content_type"],
        last_modified=datetime.fromisoformat(data["last_modified"]),
        metadata=dict(data.get("metadata") or {}),
    )


class LocalStore(ObjectStore):
    """Versioned object storage on the local filesystem, safe for concurrent processes."""

    def __init__(self, root: Path, bucket_prefix: str):
        self.root = Path(root)
        self.bucket_prefix = bucket_prefix

    def __repr__(self) -> str:
        return f"LocalStore({str(self.root)!r}, bucket_prefix={self.bucket_prefix!r})"

    # -- buckets -----------------------------------------------------------------------------

    def bucket_name(self, tenant) -> str:
        """Return the bucket name of the tenant (prefix + slug)."""
        return make_bucket_name(self.bucket_prefix, tenant)

    def _bucket_dir(self, tenant) -> Path:
        return self.root / self.bucket_name(tenant)

    def _existing_bucket(self, tenant) -> Path:
        path = self._bucket_dir(tenant)
        if not path.is_dir():
            raise BucketMissing(f"bucket {path.name!r} does not exist in {self.root}")
        return path

    def ensure_bucket(self, tenant) -> bool:
        """Create the tenant's bucket directory; return True if it was created."""
        path = self._bucket_dir(tenant)
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            path.mkdir()
        except FileExistsError:
            return False
        except OSError as exc:
            raise StorageError(f"cannot create bucket directory {path}: {exc}") from exc
        _fsync_dir(self.root)
        return True

    def bucket_exists(self, tenant) -> bool:
        """Return True when the tenant's bucket directory exists."""
        return self._bucket_dir(tenant).is_dir()

    # -- paths -------------------------------------------------------------------------------

    @staticmethod
    def _object_dir(bucket: Path, key: str) -> Path:
        segments = validate_key(key).split("/")
        path = bucket.joinpath(*(_escape(s) for s in segments[:-1]), "~" + segments[-1])
        # Defence in depth: validate_key already rules out every way out of the bucket.
        if os.path.commonpath([bucket, os.path.normpath(path)]) != str(bucket):
            raise ValueError(f"object key {key!r} escapes the bucket")
        return path

    def _create_temp(self, object_dir: Path) -> tuple[Path, int]:
        for _ in range(_CREATE_ATTEMPTS):
            try:
                object_dir.mkdir(parents=True, exist_ok=True)
                path = object_dir / f"{_TEMP_PREFIX}{uuid.uuid4().hex}"
                return path, os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, _FILE_MODE)
            except FileNotFoundError:
                # A concurrent delete pruned an empty directory between mkdir and open.
                continue
        raise StorageError(f"cannot create a temporary file in {object_dir}")

    @staticmethod
    def _prune(bucket: Path, object_dir: Path) -> None:
        """Remove the object directory and its parents up to the bucket, while empty."""
        path = object_dir
        while path != bucket and bucket in path.parents:
            try:
                path.rmdir()
            except OSError:
                # Not empty (another key, or a write in flight) or already gone: stop here.
                return
            path = path.parent

    # -- versions ----------------------------------------------------------------------------

    @staticmethod
    def _version_ids(object_dir: Path) -> list[str]:
        """Return the committed version ids of one key, newest first."""
        try:
            names = os.listdir(object_dir)
        except (FileNotFoundError, NotADirectoryError):
            return []
        except OSError as exc:
            raise StorageError(f"cannot list {object_dir}: {exc}") from exc
        ids = [n[:-5] for n in names if n.endswith(".json") and _VERSION_ID.match(n[:-5])]
        ids.sort(reverse=True)
        return ids

    @staticmethod
    def _load(object_dir: Path, version_id: str) -> StoredObject | None:
        try:
            with open(object_dir / f"{version_id}.json", encoding="utf-8") as fh:
                return _info_from_json(json.load(fh))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError) as exc:
            raise StorageError(f"unreadable metadata for version {version_id} in "
                               f"{object_dir}: {exc}") from exc

    def _latest(self, object_dir: Path) -> StoredObject | None:
        for version_id in self._version_ids(object_dir):
            info = self._load(object_dir, version_id)
            if info is not None:  # None: deleted since the listing
                return info
        return None

    def _candidates(self, object_dir: Path, key: str, version_id: str | None) -> list[str]:
        if version_id is None:
            return self._version_ids(object_dir)
        # Anything else cannot name a version here (and must never reach a path).
        if not isinstance(version_id, str) or not _VERSION_ID.match(version_id):
            raise ObjectNotFound(f"no version {version_id!r} of {key!r}")
        return [version_id]

    @staticmethod
    def _not_found(key: str, version_id: str | None) -> ObjectNotFound:
        if version_id is None:
            return ObjectNotFound(f"no object {key!r}")
        return ObjectNotFound(f"no version {version_id!r} of {key!r}")

    # -- operations --------------------------------------------------------------------------

    def put(self, tenant, key: str, stream: BinaryIO, *, length: int = -1,
            content_type: str = "application/octet-stream",
            metadata: dict[str, str] | None = None) -> StoredObject:
        """Stream into a new version: temp file, fsync, then rename data and metadata in place."""
        validate_key(key)
        validate_content_type(content_type)
        user_metadata = validate_metadata(metadata)
        bucket = self._existing_bucket(tenant)
        object_dir = self._object_dir(bucket, key)
        reader = HashingReader(stream, length)

        data_tmp: Path | None = None
        meta_tmp: Path | None = None
        data_final: Path | None = None
        committed = False
        try:
            data_tmp, fd = self._create_temp(object_dir)
            with os.fdopen(fd, "wb") as fh:
                while chunk := reader.read(CHUNK_SIZE):
                    fh.write(chunk)
                fh.flush()
                os.fsync(fh.fileno())
            version_id, ns = _new_version_id()
            info = StoredObject(
                key=key,
                version_id=version_id,
                size=reader.size,
                sha256=reader.sha256,
                etag=reader.sha256,
                content_type=content_type,
                last_modified=datetime.fromtimestamp(ns / 1e9, tz=UTC),
                metadata=user_metadata,
            )
            meta_tmp = _write_json_temp(object_dir, {
                "key": key,
                "version_id": version_id,
                "size": info.size,
                "sha256": info.sha256,
                "etag": info.etag,
                "content_type": content_type,
                "last_modified": info.last_modified.isoformat(),
                "metadata": user_metadata,
            })
            data_final = object_dir / f"{version_id}.bin"
            os.replace(data_tmp, data_final)
            data_tmp = None
            # The version becomes visible with this rename, and only once its data is in place.
            os.replace(meta_tmp, object_dir / f"{version_id}.json")
            meta_tmp = None
            committed = True
            _fsync_dir(object_dir)
            return info
        except BaseException as exc:
            if not committed:
                for path in (data_tmp, meta_tmp, data_final):
                    if path is not None:
                        try:
                            _unlink_quiet(path)
                        except OSError:
                            pass
                self._prune(bucket, object_dir)
            if exc is reader.source_error or not isinstance(exc, OSError):
                raise
            raise StorageError(f"cannot write {key!r} in {bucket}: {exc}") from exc

    def get(self, tenant, key: str, *, version_id: str | None = None, offset: int = 0,
            length: int | None = None) -> ObjectReader:
        """Open a version for a streaming read of [offset, offset+length)."""
        check_range(offset, length)
        validate_key(key)
        object_dir = self._object_dir(self._existing_bucket(tenant), key)
        for candidate in self._candidates(object_dir, key, version_id):
            info = self._load(object_dir, candidate)
            if info is None:
                continue
            try:
                # Closed by the reader (or by its chunk iterator when exhausted).
                fh = open(object_dir / f"{candidate}.bin", "rb")
            except FileNotFoundError:
                continue  # deleted between the metadata and the data: try the next version
            except OSError as exc:
                raise StorageError(f"cannot open {key!r}: {exc}") from exc
            if offset and offset >= info.size:
                fh.close()
                raise range_not_satisfiable(offset, info.size)
            end = info.size if length is None else min(info.size, offset + length)
            fh.seek(offset)
            return ObjectReader(info, self._chunks(fh, end - offset, key), fh.close)
        raise self._not_found(key, version_id)

    @staticmethod
    def _chunks(fh, remaining: int, key: str) -> Iterator[bytes]:
        try:
            while remaining > 0:
                data = fh.read(min(CHUNK_SIZE, remaining))
                if not data:
                    raise StorageError(f"data of {key!r} is shorter than its metadata says")
                remaining -= len(data)
                yield data
        finally:
            fh.close()

    def stat(self, tenant, key: str, *, version_id: str | None = None) -> StoredObject:
        """Describe the latest (or given) version from its metadata file."""
        validate_key(key)
        object_dir = self._object_dir(self._existing_bucket(tenant), key)
        for candidate in self._candidates(object_dir, key, version_id):
            info = self._load(object_dir, candidate)
            if info is not None:
                return info
        raise self._not_found(key, version_id)

    def delete(self, tenant, key: str, *, version_id: str | None = None) -> None:
        """Delete one version, or every version of the key when version_id is None."""
        validate_key(key)
        bucket = self._existing_bucket(tenant)
        object_dir = self._object_dir(bucket, key)
        candidates = self._candidates(object_dir, key, version_id)
        removed = 0
        try:
            for candidate in candidates:
                # Metadata first: the version disappears atomically, then its data goes.
                try:
                    os.unlink(object_dir / f"{candidate}.json")
                except FileNotFoundError:
                    continue
                removed += 1
                _unlink_quiet(object_dir / f"{candidate}.bin")
        except OSError as exc:
            raise StorageError(f"cannot delete {key!r}: {exc}") from exc
        if not removed:
            raise self._not_found(key, version_id)
        _fsync_dir(object_dir)
        self._prune(bucket, object_dir)

    def compose(self, tenant, key: str, sources: list[tuple[str, str | None]], *,
                content_type: str = "application/octet-stream",
                metadata: dict[str, str] | None = None) -> StoredObject:
        """Concatenate source versions into a new version of `key`, streaming and hashing."""
        validate_key(key)
        infos = [self.stat(tenant, src_key, version_id=src_version)
                 for src_key, src_version in sources]
        check_compose_sources(sources, [info.size for info in infos])
        readers = iter(infos)
        total = sum(info.size for info in infos)

        class _Concat:
            def __init__(inner):
                inner.current = None

            def read(inner, size: int = -1) -> bytes:
                while True:
                    if inner.current is None:
                        info = next(readers, None)
                        if info is None:
                            return b""
                        inner.current = self.get(tenant, info.key, version_id=info.version_id)
                    data = inner.current.read(size if size and size > 0 else CHUNK_SIZE)
                    if data:
                        return data
                    inner.current.close()
                    inner.current = None

        stream = _Concat()
        try:
            return self.put(tenant, key, stream, length=total, content_type=content_type,
                            metadata=metadata)
        finally:
            if stream.current is not None:
                stream.current.close()

    def list(self, tenant, prefix: str = "") -> Iterator[StoredObject]:
        """Yield the latest version of every key starting with `prefix`, in key order."""
        validate_prefix(prefix)
        bucket = self._existing_bucket(tenant)
        directory, _, partial = prefix.rpartition("/")
        start = bucket.joinpath(*(_escape(s) for s in directory.split("/"))) if directory else bucket
        return prime_iterator(self._walk(start, partial))

    def _walk(self, directory: Path, partial: str) -> Iterator[StoredObject]:
        try:
            with os.scandir(directory) as it:
                entries = [(e.name, e.path) for e in it if e.is_dir(follow_symlinks=False)]
        except (FileNotFoundError, NotADirectoryError):
            return
        except OSError as exc:
            raise StorageError(f"cannot list {directory}: {exc}") from exc
        items: list[tuple[bytes, bool, str]] = []
        for name, path in entries:
            if name.startswith("."):
                continue
            is_object = name.startswith("~")
            segment = name[1:] if is_object else _unescape(name)
            if not segment.startswith(partial):
                continue
            # S3 order is by UTF-8 bytes of the whole key: a prefix directory sorts as
            # "segment/", so "a" < "a-b" < "a/x" as in S3.
            sort_key = (segment if is_object else segment + "/").encode("utf-8")
            items.append((sort_key, is_object, path))
        items.sort()
        for _, is_object, path in items:
            if is_object:
                info = self._latest(Path(path))
                if info is not None:
                    yield info
            else:
                yield from self._walk(Path(path), "")

    def list_versions(self, tenant, key: str) -> list[StoredObject]:
        """Return every version of the key, newest first."""
        validate_key(key)
        object_dir = self._object_dir(self._existing_bucket(tenant), key)
        versions = (self._load(object_dir, v) for v in self._version_ids(object_dir))
        return [info for info in versions if info is not None]

    def usage_bytes(self, tenant) -> int:
        """Sum the data size of every committed version in the tenant's bucket."""
        bucket = self._existing_bucket(tenant)
        total = 0
        for dirpath, _dirnames, filenames in os.walk(bucket):
            if not os.path.basename(dirpath).startswith("~"):
                continue
            names = set(filenames)
            for name in filenames:
                version_id = name[:-5]
                if (name.endswith(".json") and _VERSION_ID.match(version_id)
                        and f"{version_id}.bin" in names):
                    try:
                        total += os.stat(os.path.join(dirpath, f"{version_id}.bin")).st_size
                    except FileNotFoundError:
                        pass  # deleted during the walk
        return total

    def ping(self) -> None:
        """Raise StorageError unless the root directory exists (or can be made) and is writable."""
        probe = self.root / f".ping-{uuid.uuid4().hex}"
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, _FILE_MODE)
            os.close(fd)
            os.unlink(probe)
        except OSError as exc:
            raise StorageError(f"local store {self.root} is not writable: {exc}") from exc
