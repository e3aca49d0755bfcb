"""The one object-store interface every feature uses; one bucket per tenant."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import BinaryIO


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


class ObjectReader:
    """A streaming read: iterate for chunks; close() releases the connection or file."""

    def __init__(self, info: StoredObject, chunks: Iterator[bytes], close):
        self.info = info
        self._chunks = chunks
        self._close = close

    def __iter__(self) -> Iterator[bytes]:
        return self._chunks

    def read_all(self) -> bytes:
        try:
            return b"".join(self._chunks)
        finally:
            self.close()

    def close(self) -> None:
        self._close()

    def __enter__(self) -> ObjectReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def tenant_slug(tenant) -> str:
    return tenant if isinstance(tenant, str) else tenant.slug


class ObjectStore(ABC):
    """Tenant-addressed storage. Callers pass a tenant (or its slug), never a bucket name."""

    @abstractmethod
    def bucket_name(self, tenant) -> str: ...

    @abstractmethod
    def ensure_bucket(self, tenant) -> bool:
        """Create the tenant's bucket with versioning on; return True if it was created."""

    @abstractmethod
    def bucket_exists(self, tenant) -> bool: ...

    @abstractmethod
    def put(self, tenant, key: str, stream: BinaryIO, *, length: int = -1,
            content_type: str = "application/octet-stream",
            metadata: dict[str, str] | None = None) -> StoredObject:
        """Stream `stream` into the tenant's bucket, hashing SHA-256 on the fly."""

    @abstractmethod
    def get(self, tenant, key: str, *, version_id: str | None = None, offset: int = 0,
            length: int | None = None) -> ObjectReader: ...

    @abstractmethod
    def stat(self, tenant, key: str, *, version_id: str | None = None) -> StoredObject: ...

    @abstractmethod
    def delete(self, tenant, key: str, *, version_id: str | None = None) -> None: ...

    @abstractmethod
    def list(self, tenant, prefix: str = "") -> Iterator[StoredObject]: ...

    @abstractmethod
    def list_versions(self, tenant, key: str) -> list[StoredObject]: ...

    @abstractmethod
    def usage_bytes(self, tenant) -> int:
        """Bytes held by the tenant's bucket, every version counted."""

    @abstractmethod
    def ping(self) -> None:
        """Raise StorageError when the store is unreachable."""
