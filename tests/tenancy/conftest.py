from __future__ import annotations

import pytest
import sqlalchemy as sa

from saas.audit.models import AuditEvent, PlatformAuditEvent
from saas.extensions import db
from saas.tenancy.context import tenant_context
from saas.tenancy.models import Tenant
from tests.tenancy.manifest_files import write_manifest


@pytest.fixture
def manifest_dir(tmp_path):
    """A directory with two valid communes: alpha (500 inhabitants) and beta (1,000)."""
    directory = tmp_path / "tenants"
    directory.mkdir()
    write_manifest(directory, "alpha", 1)
    write_manifest(directory, "beta", 2)
    return directory


@pytest.fixture
def db_state(app):
    """A callable returning everything apply may change, to prove a refused apply changed nothing."""

    def snapshot() -> dict:
        db.session.expire_all()
        tenants = db.session.execute(db.select(Tenant).order_by(Tenant.slug)).scalars().all()
        state = {
            "tenants": [(t.slug, t.siren, t.population, t.status, t.manifest_digest,
                         sorted(d.domain for d in t.domains)) for t in tenants],
            "platform_audit": db.session.execute(sa.select(sa.func.count(PlatformAuditEvent.id))).scalar(),
        }
        for t in tenants:
            with tenant_context(t):
                state[f"audit:{t.slug}"] = db.session.execute(sa.select(sa.func.count(AuditEvent.id))).scalar()
        return state

    return snapshot
