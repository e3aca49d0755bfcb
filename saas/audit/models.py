"""Audit entries: each one's MAC covers its predecessor's, so any edit or removal breaks the chain.

`hash` is HMAC-SHA256 under the audit key named by `key_id` (a key the database does not hold);
entries written before keyed chains existed have no `key_id` and a plain SHA-256 `hash`.
"""

from __future__ import annotations

import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, declared_attr, mapped_column

from saas.extensions import db
from saas.modelbase import JSONType, UTCDateTime, UUIDPk
from saas.tenancy.scoping import TenantScoped


class _AuditColumns(UUIDPk):
    seq: Mapped[int] = mapped_column(sa.BigInteger, nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    actor_id: Mapped[uuid.UUID | None] = mapped_column(sa.Uuid)
    actor: Mapped[str] = mapped_column(sa.String(254), nullable=False)
    action: Mapped[str] = mapped_column(sa.String(64), nullable=False)
    target: Mapped[str | None] = mapped_column(sa.String(254))
    ip: Mapped[str | None] = mapped_column(sa.String(45))
    data: Mapped[dict] = mapped_column(JSONType, nullable=False, default=dict)
    prev_hash: Mapped[str] = mapped_column(sa.String(64), nullable=False)
    hash: Mapped[str] = mapped_column(sa.String(64), nullable=False)
    # The audit key that signed the entry (Settings.audit); None: a legacy, unkeyed SHA-256.
    key_id: Mapped[str | None] = mapped_column(sa.String(32))


class AuditEvent(_AuditColumns, TenantScoped, db.Model):
    __tablename__ = "audit_events"

    @declared_attr.directive
    def __table_args__(cls):  # noqa: N805
        return (sa.UniqueConstraint("tenant_id", "seq", name="uq_audit_events_tenant_seq"),)


class PlatformAuditEvent(_AuditColumns, db.Model):
    """The intercommunal IT staff's own chain (console logins, tenant provisioning)."""

    __tablename__ = "platform_audit_events"
    __table_args__ = (sa.UniqueConstraint("seq", name="uq_platform_audit_events_seq"),)
