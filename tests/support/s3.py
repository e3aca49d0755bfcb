"""An S3 endpoint for tests: a real MinIO from SAAS_TEST_S3_* variables, else moto in-process.

moto's server mode speaks real HTTP on 127.0.0.1, so the minio SDK runs exactly as against
MinIO. Set SAAS_TEST_S3_ENDPOINT (and _ACCESS_KEY, _SECRET_KEY, _SECURE, optionally _REGION)
to run the same tests against a real server; bucket names then carry a per-run prefix so
concurrent runs against one shared server never collide.
"""

from __future__ import annotations

import logging
import os
import threading
import uuid
from collections.abc import Callable
from typing import NamedTuple

from minio import Minio
from minio.error import S3Error

DEFAULT_REGION = "fr-east-1"

_lock = threading.Lock()
_server = None  # moto.server.ThreadedMotoServer once started
_endpoint: str | None = None


class S3TestSettings(NamedTuple):
    endpoint: str
    access_key: str
    secret_key: str
    secure: bool
    # Stops the in-process server; None for an external server.
    stop: Callable[[], None] | None = None
    region: str = DEFAULT_REGION
    # True when the server runs in this process (its memory shows up in tracemalloc).
    in_process: bool = False


def start_moto_server() -> str:
    """Start moto's S3 server on a free 127.0.0.1 port (once per process); return host:port."""
    global _server, _endpoint
    with _lock:
        if _server is None:
            from moto.server import ThreadedMotoServer

            # One line per request on stderr drowns pytest's output.
            werkzeug_logger = logging.getLogger("werkzeug")
            if werkzeug_logger.level == logging.NOTSET:
                werkzeug_logger.setLevel(logging.WARNING)
            server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
            server.start()
            host, port = server.get_host_and_port()
            _server, _endpoint = server, f"{host}:{port}"
        assert _endpoint is not None
        return _endpoint


def stop_moto_server() -> None:
    """Stop the in-process moto server if it runs; safe to call twice."""
    global _server, _endpoint
    with _lock:
        server, _server, _endpoint = _server, None, None
    if server is not None:
        server.stop()


def test_s3_settings() -> S3TestSettings:
    """Return the S3 endpoint for tests: SAAS_TEST_S3_* when set, else moto started once."""
    endpoint = os.environ.get("SAAS_TEST_S3_ENDPOINT")
    region = os.environ.get("SAAS_TEST_S3_REGION") or DEFAULT_REGION
    if endpoint:
        secure = os.environ.get("SAAS_TEST_S3_SECURE", "").strip().lower() in {
            "1", "true", "yes", "on"}
        if endpoint.startswith("https://"):
            secure = True
        return S3TestSettings(
            endpoint=endpoint,
            access_key=os.environ.get("SAAS_TEST_S3_ACCESS_KEY", ""),
            secret_key=os.environ.get("SAAS_TEST_S3_SECRET_KEY", ""),
            secure=secure,
            region=region,
        )
    return S3TestSettings(
        endpoint=start_moto_server(),
        # moto checks no signature; any non-empty pair signs the requests.
        access_key="testing",
        secret_key="testing",
        secure=False,
        stop=stop_moto_server,
        region=region,
        in_process=True,
    )


# Not a test, despite the name the lead's fixtures import.
test_s3_settings.__test__ = False  # type: ignore[attr-defined]


def new_bucket_prefix(tag: str = "t") -> str:
    """Return a bucket prefix unique to this process and call, e.g. 't4242a1b2c3-'."""
    return f"{tag}{os.getpid()}{uuid.uuid4().hex[:6]}-".lower()


def admin_client(settings: S3TestSettings) -> Minio:
    """Return a minio client on the test endpoint, for set-up and clean-up only."""
    from saas.storage.s3 import parse_endpoint

    host, secure = parse_endpoint(settings.endpoint, settings.secure)
    return Minio(host, access_key=settings.access_key or None,
                 secret_key=settings.secret_key or None, secure=secure, region=settings.region)


def s3_store_for(settings: S3TestSettings, bucket_prefix: str):
    """Return an S3Store on the test endpoint with the given bucket prefix."""
    from saas.storage.s3 import S3Store

    return S3Store(endpoint=settings.endpoint, access_key=settings.access_key,
                   secret_key=settings.secret_key, secure=settings.secure,
                   region=settings.region, bucket_prefix=bucket_prefix)


def purge_buckets(settings: S3TestSettings, prefix: str) -> list[str]:
    """Delete every bucket named `prefix*` with all its versions; return the names removed."""
    if not prefix:
        raise ValueError("refusing to purge every bucket: give a prefix")
    client = admin_client(settings)
    removed = []
    for bucket in client.list_buckets():
        if not bucket.name.startswith(prefix):
            continue
        for obj in client.list_objects(bucket.name, recursive=True, include_version=True):
            client.remove_object(bucket.name, obj.object_name, version_id=obj.version_id)
        try:
            client.remove_bucket(bucket.name)
        except S3Error as exc:
            # Best effort (e.g. an incomplete upload a server keeps): the prefix is unique.
            logging.getLogger(__name__).warning("bucket %s not removed: %s", bucket.name, exc)
            continue
        removed.append(bucket.name)
    return removed
