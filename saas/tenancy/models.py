"""The tenant registry: communes and the intercommunality itself."""

from __future__ import annotations

import enum
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import datetime
from types import MappingProxyType

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from saas.extensions import db
from saas.modelbase import JSONType, Timestamps, UUIDPk


class TenantStatus(enum.StrEnum):
    ACTIVE = "active"
    SUSPENDED = "suspended"
    ARCHIVED = "archived"


class TenantKind(enum.StrEnum):
    COMMUNE = "commune"
    EPCI = "epci"


# Modules a tenant may enable; later features add theirs here.
KNOWN_MODULES = ("ged", "parapheur", "actes", "helios", "seances", "citoyens", "paie")

# Host labels that can never be a tenant slug.
RESERVED_SLUGS = frozenset({"admin", "www", "api", "static", "public", "mail", "smtp", "s3"})


class Tenant(UUIDPk, Timestamps, db.Model):
    __tablename__ = "tenants"

    slug: Mapped[str] = mapped_column(sa.String(40), unique=True, nullable=False)
    name: Mapped[str] = mapped_column(sa.String(200), nullable=False)
    kind: Mapped[str] = mapped_column(sa.String(16), nullable=False, default=TenantKind.COMMUNE)
    insee: Mapped[str | None] = mapped_column(sa.String(5))
    siren: Mapped[str] = mapped_column(sa.String(9), unique=True, nullable=False)
    population: Mapped[int] = mapped_column(sa.Integer, nullable=False, default=0)
    departement: Mapped[str] = mapped_column(sa.String(3), nullable=False)
    arrondissement: Mapped[int | None] = mapped_column(sa.Integer)
    origins: Mapped[list] = mapped_column(JSONType, nullable=False, default=list)
    status: Mapped[str] = mapped_column(sa.String(16), nullable=False, default=TenantStatus.ACTIVE)
    modules: Mapped[list] = mapped_column(JSONType, nullable=False, default=list)
    quota_bytes: Mapped[int] = mapped_column(sa.BigInteger, nullable=False, default=0)
    branding: Mapped[dict] = mapped_column(JSONType, nullable=False, default=dict)
    manifest_digest: Mapped[str | None] = mapped_column(sa.String(64))

    domains: Mapped[list[TenantDomain]] = relationship(
        back_populates="tenant", cascade="all, delete-orphan", order_by="TenantDomain.domain"
    )

    @property
    def is_active(self) -> bool:
        return self.status == TenantStatus.ACTIVE

    @property
    def primary_color(self) -> str:
        return self.branding.get("primary_color", "#000091")

    def __repr__(self) -> str:
        return f"<Tenant {self.slug}>"

    def snapshot(self) -> TenantSnapshot:
        return TenantSnapshot.of(self)


@dataclass(frozen=True, slots=True, eq=False)
class TenantSnapshot:
    """A request's read-only view of its tenant: the row's columns, outside any session.

    Host resolution hands one to each request (`g.tenant`) and a process shares it between
    requests for a few seconds, so a request pays neither a query nor the building of an ORM
    instance to learn its commune. It is deeply immutable (JSON lists become tuples, the
    branding a read-only mapping); a change to a tenant goes through its `Tenant` row (load it
    with `db.session.get(Tenant, snapshot.id)`), which also empties the host cache.
    """

    id: uuid.UUID
    slug: str
    name: str
    kind: str
    insee: str | None
    siren: str
    population: int
    departement: str
    arrondissement: int | None
    origins: tuple[str, ...]
    status: str
    modules: tuple[str, ...]
    quota_bytes: int
    branding: Mapping[str, object]
    manifest_digest: str | None
    created_at: datetime | None
    updated_at: datetime | None

    @classmethod
    def of(cls, tenant: Tenant) -> TenantSnapshot:
        values = {f.name: getattr(tenant, f.name) for f in fields(cls)}
        values["origins"] = tuple(values["origins"] or ())
        values["modules"] = tuple(values["modules"] or ())
        values["branding"] = MappingProxyType(dict(values["branding"] or {}))
        return cls(**values)

    is_active = Tenant.is_active
    primary_color = Tenant.primary_color

    def __eq__(self, other: object) -> bool:
        if isinstance(other, TenantSnapshot | Tenant):
            return self.id == other.id
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self.id)

    def __repr__(self) -> str:
        return f"<TenantSnapshot {self.slug}>"


class TenantDomain(db.Model):
    """A custom host name (e.g. demarches.ma-commune.fr) served as a tenant."""

    __tablename__ = "tenant_domains"

    domain: Mapped[str] = mapped_column(sa.String(253), primary_key=True)
    tenant_id: Mapped[uuid.UUID] = mapped_column(
        sa.Uuid, sa.ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False, index=True
    )
    tenant: Mapped[Tenant] = relationship(back_populates="domains")
