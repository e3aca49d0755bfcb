"""The tenant registry: communes and the intercommunality itself."""

from __future__ import annotations

import enum
import uuid

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


class TenantDomain(db.Model):
    """A custom host name (e.g. demarches.ma-commune.fr) served as a tenant."""

    __tablename__ = "tenant_domains"

    domain: Mapped[str] = mapped_column(sa.String(253), primary_key=True)
    tenant_id: Mapped[uuid.UUID] = mapped_column(
        sa.Uuid, sa.ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False, index=True
    )
    tenant: Mapped[Tenant] = relationship(back_populates="domains")
