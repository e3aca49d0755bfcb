"""Object storage: S3 (minio SDK) in production, the local filesystem in the embedded default."""

from __future__ import annotations

from flask import current_app

from saas.config import Settings
from saas.storage.base import (  # noqa: F401  (public API)
    BucketMissing,
    ObjectNotFound,
    ObjectReader,
    ObjectStore,
    StorageError,
    StoredObject,
)


def build_store(settings: Settings) -> ObjectStore:
    if settings.s3_endpoint:
        from saas.storage.s3 import S3Store

        return S3Store(
            endpoint=settings.s3_endpoint,
            access_key=settings.s3_access_key or "",
            secret_key=settings.s3_secret_key or "",
            secure=settings.s3_secure,
            region=settings.s3_region,
            bucket_prefix=settings.s3_bucket_prefix,
        )
    from saas.storage.local import LocalStore

    return LocalStore(settings.instance_path / "objects", bucket_prefix=settings.s3_bucket_prefix)


def get_store() -> ObjectStore:
    return current_app.extensions["saas_store"]
