"""Fixtures of the storage contract suite: one `store` fixture per backend, two tenants."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from saas.storage.local import LocalStore
from tests.support.s3 import new_bucket_prefix, purge_buckets, s3_store_for


@pytest.fixture(scope="session")
def storage_s3_settings(s3_settings):
    """The run's S3 endpoint (root fixture): a real server from SAAS_TEST_S3_*, else moto."""
    return s3_settings


@pytest.fixture(scope="session")
def storage_bucket_prefix() -> str:
    """A bucket prefix unique to this run, so runs sharing one MinIO never collide."""
    return new_bucket_prefix("st")


@pytest.fixture(params=["local", "s3"])
def store(request, tmp_path, storage_bucket_prefix):
    """Each backend in turn; S3 buckets made by the test are removed afterwards."""
    if request.param == "local":
        yield LocalStore(tmp_path / "objects", bucket_prefix=storage_bucket_prefix)
        return
    settings = request.getfixturevalue("storage_s3_settings")
    yield s3_store_for(settings, storage_bucket_prefix)
    purge_buckets(settings, storage_bucket_prefix)


@pytest.fixture
def local_store(tmp_path, storage_bucket_prefix) -> LocalStore:
    return LocalStore(tmp_path / "objects", bucket_prefix=storage_bucket_prefix)


@pytest.fixture
def commune_a(store):
    tenant = SimpleNamespace(slug="commune-a")
    store.ensure_bucket(tenant)
    return tenant


@pytest.fixture
def commune_b(store):
    tenant = SimpleNamespace(slug="commune-b")
    store.ensure_bucket(tenant)
    return tenant
