"""The API's own table: the outcome of each idempotent request (see idempotency.py)."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from saas.extensions import db
from saas.modelbase import JSONType, UTCDateTime, UUIDPk, utcnow
from saas.tenancy.scoping import TenantScoped


class IdempotencyKey(UUIDPk, TenantScoped, db.Model):
    """One Idempotency-Key (API) or one-time form token, per commune and person.

    `status` is NULL while the first request runs (a duplicate then gets 409 or waits); then the
    first answer (status, a few headers, body) is replayed to every repetition until `expires_at`.
    """

    __tablename__ = "idempotency_keys"
    __table_args__ = (sa.UniqueConstraint("tenant_id", "actor", "key",
                                          name="uq_idempotency_keys_actor_key"),)

    actor: Mapped[str] = mapped_column(sa.String(64), nullable=False)
    key: Mapped[str] = mapped_column(sa.String(255), nullable=False)
    kind: Mapped[str] = mapped_column(sa.String(8), nullable=False)
    fingerprint: Mapped[str] = mapped_column(sa.String(64), nullable=False)
    status: Mapped[int | None] = mapped_column(sa.Integer)
    headers: Mapped[dict] = mapped_column(JSONType, nullable=False, default=dict)
    body: Mapped[bytes | None] = mapped_column(sa.LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, index=True)

    def __repr__(self) -> str:  # pragma: no cover - debugging aid
        return f"<IdempotencyKey {self.kind} {self.key[:12]} {self.status}>"
