"""The hourly anchor job: every chain's head goes to the logs and to object storage."""

from __future__ import annotations

import json

import pytest
from structlog.testing import capture_logs

from saas.audit.anchors import PLATFORM_BUCKET, PREFIX, anchor_all, read_anchors
from saas.audit.services import record
from saas.extensions import db
from saas.jobs import run_pending
from saas.jobs.registry import get_kind
from saas.jobs.scheduler import PERIODIC, Scheduler
from saas.storage import get_store
from saas.tenancy.context import tenant_context
from saas.tenancy.models import RESERVED_SLUGS


@pytest.fixture(autouse=True)
def _no_stale_anchors(app):
    store = get_store()
    for owner in ("commune-a", "commune-b", PLATFORM_BUCKET):
        if store.bucket_exists(owner):
            for info in list(store.list(owner, PREFIX)):
                store.delete(owner, info.key)


@pytest.fixture
def chains(tenant_a, tenant_b):
    with tenant_context(tenant_a):
        record("document.created", "doc-1", actor="test")
        record("document.created", "doc-2", actor="test")
        db.session.commit()
    record("console.login", "dsi@example.org", actor="test", platform=True)
    db.session.commit()
    return tenant_a, tenant_b


def _objects(owner) -> list[dict]:
    store = get_store()
    return [json.loads(store.get(owner, info.key).read_all()) for info in store.list(owner, PREFIX)]


def test_the_periodic_job_anchors_every_chain_in_storage(app, chains):
    tenant_a, tenant_b = chains
    task = PERIODIC["audit.anchor"]
    assert task.every == 3600 and not task.per_tenant and get_kind("audit.anchor").platform

    Scheduler(app).fire(task, "slot-1")
    assert run_pending() == 1

    [anchor_a] = _objects(tenant_a)
    with tenant_context(tenant_a):
        from saas.audit.services import chain_head

        head = chain_head(tenant_a.id)
    assert (anchor_a["chain"], anchor_a["tenant_id"], anchor_a["seq"], anchor_a["mac"]) == (
        "commune-a", str(tenant_a.id), 2, head.mac)
    assert anchor_a["keyed_from"] == 1 and anchor_a["key_id"] == app.config["SAAS_SETTINGS"].audit.key_id
    [platform] = _objects(PLATFORM_BUCKET)
    assert (platform["chain"], platform["tenant_id"], platform["seq"]) == ("[plateforme]", None, 1)
    assert _objects(tenant_b) == []  # an empty chain has no head to anchor


def test_an_unchanged_head_is_not_anchored_twice_but_is_logged_every_time(app, chains):
    tenant_a, _ = chains
    anchor_all()
    with capture_logs() as logs:
        again = anchor_all()

    assert again == {"anchored": 0, "unchanged": 2, "empty": 1, "failed": []}
    assert len(_objects(tenant_a)) == 1
    lines = {line["chain"]: line for line in logs if line["event"] == "audit.anchor"}
    assert set(lines) == {"commune-a", "commune-b", "[plateforme]"}
    assert lines["commune-a"]["seq"] == 2 and len(lines["commune-a"]["mac"]) == 64
    assert lines["commune-b"]["seq"] == 0


def test_a_moved_head_gets_a_new_anchor_and_old_ones_stay(app, chains):
    tenant_a, _ = chains
    anchor_all()
    with tenant_context(tenant_a):
        record("document.created", "doc-3", actor="test")
        db.session.commit()
    anchor_all()

    assert sorted(a.seq for a in read_anchors(tenant_a)) == [2, 3]


def test_a_failing_store_does_not_stop_the_other_chains(app, chains, monkeypatch):
    from saas.storage import BucketMissing

    tenant_a, _ = chains
    store = get_store()
    real_put = store.put

    def put(owner, key, *args, **kwargs):
        if owner == tenant_a or getattr(owner, "slug", None) == "commune-a":
            raise BucketMissing("bucket gone")
        return real_put(owner, key, *args, **kwargs)

    monkeypatch.setattr(store, "put", put)
    result = anchor_all()

    assert result["failed"] == ["commune-a"] and result["anchored"] == 1
    assert len(_objects(PLATFORM_BUCKET)) == 1


def test_the_platform_bucket_is_named_after_a_slug_no_commune_can_take():
    assert PLATFORM_BUCKET in RESERVED_SLUGS


def test_anchors_work_on_the_embedded_local_store(app, chains, tmp_path, monkeypatch):
    from saas.storage.local import LocalStore

    tenant_a, _ = chains
    store = LocalStore(tmp_path / "objects", bucket_prefix="local-")
    store.ensure_bucket(tenant_a)
    monkeypatch.setitem(app.extensions, "saas_store", store)

    assert anchor_all()["anchored"] == 2  # commune-a and the platform (commune-b has no bucket)
    assert anchor_all()["unchanged"] == 2
    assert [a.seq for a in read_anchors(tenant_a)] == [2]
    assert [a.seq for a in read_anchors(None)] == [1]
