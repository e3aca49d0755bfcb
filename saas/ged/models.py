"""The GED's tables: filing plan, documents, versions, access lists, shares, bordereaux, uploads.

Every table is tenant-scoped (RLS in migration 0003) except `ged_usage`, a per-commune byte
counter the intercommunality reads for every commune (no document data in it).
"""

from __future__ import annotations

import enum
import uuid
from datetime import date, datetime

import sqlalchemy as sa
from flask_babel import lazy_gettext as _l
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Mapped, mapped_column, relationship

from saas.extensions import db
from saas.modelbase import JSONType, Timestamps, UTCDateTime, UUIDPk, utcnow
from saas.tenancy.scoping import TenantScoped

# A stored tsvector on PostgreSQL; on SQLite the table stays empty (see Document.search_text).
TSVector = sa.Text().with_variant(postgresql.TSVECTOR(), "postgresql")


class DocType(enum.StrEnum):
    DELIBERATION = "deliberation"
    ARRETE = "arrete"
    CONTRAT = "contrat"
    COURRIER = "courrier"
    FACTURE = "facture"
    BULLETIN_PAIE = "bulletin_paie"
    PLAN = "plan"
    AUTRE = "autre"


DOC_TYPE_LABELS = {
    DocType.DELIBERATION: _l("Délibération"),
    DocType.ARRETE: _l("Arrêté"),
    DocType.CONTRAT: _l("Contrat"),
    DocType.COURRIER: _l("Courrier"),
    DocType.FACTURE: _l("Facture"),
    DocType.BULLETIN_PAIE: _l("Bulletin de paie"),
    DocType.PLAN: _l("Plan"),
    DocType.AUTRE: _l("Autre"),
}


class Confidentiality(enum.StrEnum):
    ALL_AGENTS = "all_agents"
    RESTRICTED = "restricted"


CONFIDENTIALITY_LABELS = {
    Confidentiality.ALL_AGENTS: _l("Tous les agents de la commune"),
    Confidentiality.RESTRICTED: _l("Personnes désignées uniquement"),
}


class FinalFate(enum.StrEnum):
    CONSERVER = "conserver"
    DETRUIRE = "detruire"
    TRIER = "trier"


FATE_LABELS = {
    FinalFate.CONSERVER: _l("Conservation définitive"),
    FinalFate.DETRUIRE: _l("Destruction"),
    FinalFate.TRIER: _l("Tri"),
}


class DocStatus(enum.StrEnum):
    DRAFT = "draft"
    FINAL = "final"
    ARCHIVED = "archived"


STATUS_LABELS = {
    DocStatus.DRAFT: _l("En cours"),
    DocStatus.FINAL: _l("Définitif"),
    DocStatus.ARCHIVED: _l("Archivé"),
}


class ExtractionState(enum.StrEnum):
    PENDING = "pending"
    DONE = "done"
    FAILED = "failed"
    SKIPPED = "skipped"


class Classification(UUIDPk, TenantScoped, db.Model):
    """A node of the commune's filing plan (plan de classement)."""

    __tablename__ = "ged_classifications"
    __table_args__ = (sa.UniqueConstraint("tenant_id", "code", name="uq_ged_classifications_code"),)

    parent_id: Mapped[uuid.UUID | None] = mapped_column(
        sa.Uuid, sa.ForeignKey("ged_classifications.id", ondelete="RESTRICT"), index=True)
    code: Mapped[str] = mapped_column(sa.String(20), nullable=False)
    label: Mapped[str] = mapped_column(sa.String(200), nullable=False)
    # Materialised path of ids, "/<root id>/<child id>/": descendants are `path LIKE p || '%'`.
    path: Mapped[str] = mapped_column(sa.String(1000), nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)

    @property
    def depth(self) -> int:
        return self.path.count("/") - 2


class Document(UUIDPk, Timestamps, TenantScoped, db.Model):
    __tablename__ = "ged_documents"
    __table_args__ = (
        sa.Index("ix_ged_documents_tenant_date", "tenant_id", "document_date"),
    )

    title: Mapped[str] = mapped_column(sa.String(300), nullable=False)
    doc_type: Mapped[str] = mapped_column(sa.String(20), nullable=False, default=DocType.AUTRE)
    classification_id: Mapped[uuid.UUID | None] = mapped_column(
        sa.Uuid, sa.ForeignKey("ged_classifications.id", ondelete="RESTRICT"), index=True)
    # Copy of the classification's path: the share policy (RLS) cannot read the owner's plan.
    classification_path: Mapped[str | None] = mapped_column(sa.String(1000), index=True)
    tags: Mapped[list] = mapped_column(JSONType, nullable=False, default=list)
    metadata_: Mapped[dict] = mapped_column("metadata", JSONType, nullable=False, default=dict)
    author: Mapped[str | None] = mapped_column(sa.String(200))
    created_by: Mapped[uuid.UUID | None] = mapped_column(sa.Uuid, index=True)
    document_date: Mapped[date] = mapped_column(sa.Date, nullable=False)
    confidentiality: Mapped[str] = mapped_column(sa.String(16), nullable=False,
                                                 default=Confidentiality.ALL_AGENTS)
    retention_years: Mapped[int | None] = mapped_column(sa.Integer)
    final_fate: Mapped[str] = mapped_column(sa.String(16), nullable=False, default=FinalFate.CONSERVER)
    legal_hold: Mapped[bool] = mapped_column(sa.Boolean, nullable=False, default=False)
    status: Mapped[str] = mapped_column(sa.String(16), nullable=False, default=DocStatus.FINAL)
    # When the document first became final (or archived): from then on its retention holds,
    # whatever its status becomes (see services/retention.py). Never cleared by the application.
    held_since: Mapped[datetime | None] = mapped_column(UTCDateTime)
    current_version_number: Mapped[int] = mapped_column(sa.Integer, nullable=False, default=0)
    versions_count: Mapped[int] = mapped_column(sa.Integer, nullable=False, default=0)
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    deleted_by: Mapped[uuid.UUID | None] = mapped_column(sa.Uuid)
    # Unaccented lower-case text for the SQLite fallback search (NULL on PostgreSQL).
    search_text: Mapped[str | None] = mapped_column(sa.Text)

    classification: Mapped[Classification | None] = relationship(lazy="joined")
    versions: Mapped[list[DocumentVersion]] = relationship(
        back_populates="document", order_by="DocumentVersion.number",
        cascade="all, delete-orphan", passive_deletes=True)

    @property
    def current_version(self) -> DocumentVersion | None:
        for version in self.versions:
            if version.number == self.current_version_number:
                return version
        return None

    @property
    def retention_end(self) -> date | None:
        """The day the durée d'utilité administrative ends (None: no DUA set).

        Never fails, whatever the row holds: an end past the calendar (year 9999) is the last
        day of the calendar, so the document stays held rather than becoming deletable.
        """
        if self.retention_years is None:
            return None
        year = self.document_date.year + self.retention_years
        if year > date.max.year:
            return date.max
        if year < date.min.year:  # a negative period written outside the application
            return date.min
        try:
            return self.document_date.replace(year=year)
        except ValueError:  # 29 February
            return self.document_date.replace(year=year, day=28)


class DocumentVersion(UUIDPk, TenantScoped, db.Model):
    __tablename__ = "ged_versions"
    __table_args__ = (sa.UniqueConstraint("document_id", "number", name="uq_ged_versions_number"),)

    document_id: Mapped[uuid.UUID] = mapped_column(
        sa.Uuid, sa.ForeignKey("ged_documents.id", ondelete="CASCADE"), nullable=False, index=True)
    number: Mapped[int] = mapped_column(sa.Integer, nullable=False)
    object_key: Mapped[str] = mapped_column(sa.String(200), nullable=False, unique=True)
    object_version_id: Mapped[str | None] = mapped_column(sa.String(200))
    size: Mapped[int] = mapped_column(sa.BigInteger, nullable=False)
    sha256: Mapped[str] = mapped_column(sa.String(64), nullable=False)
    content_type: Mapped[str] = mapped_column(sa.String(255), nullable=False)
    filename: Mapped[str] = mapped_column(sa.String(255), nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    created_by: Mapped[uuid.UUID | None] = mapped_column(sa.Uuid)
    extraction_state: Mapped[str] = mapped_column(sa.String(16), nullable=False,
                                                  default=ExtractionState.PENDING)
    extraction_error: Mapped[str | None] = mapped_column(sa.String(500))
    extracted_text: Mapped[str | None] = mapped_column(sa.Text, deferred=True)

    document: Mapped[Document] = relationship(back_populates="versions")


class DocumentAccess(UUIDPk, TenantScoped, db.Model):
    """A person named on a restricted document (or an élu named on any document)."""

    __tablename__ = "ged_document_access"
    __table_args__ = (sa.UniqueConstraint("document_id", "user_id", name="uq_ged_document_access_user"),)

    document_id: Mapped[uuid.UUID] = mapped_column(
        sa.Uuid, sa.ForeignKey("ged_documents.id", ondelete="CASCADE"), nullable=False, index=True)
    user_id: Mapped[uuid.UUID] = mapped_column(
        sa.Uuid, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True)


class Share(UUIDPk, TenantScoped, db.Model):
    """A read-only share of one document or one folder with another commune (or the EPCI)."""

    __tablename__ = "ged_shares"
    __table_args__ = (
        sa.CheckConstraint("(document_id IS NULL) <> (classification_id IS NULL)",
                           name="one_target"),
        sa.CheckConstraint("target_tenant_id <> tenant_id", name="not_self"),
    )

    target_tenant_id: Mapped[uuid.UUID] = mapped_column(
        sa.Uuid, sa.ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False, index=True)
    document_id: Mapped[uuid.UUID | None] = mapped_column(
        sa.Uuid, sa.ForeignKey("ged_documents.id", ondelete="CASCADE"), index=True)
    classification_id: Mapped[uuid.UUID | None] = mapped_column(
        sa.Uuid, sa.ForeignKey("ged_classifications.id", ondelete="CASCADE"), index=True)
    classification_path: Mapped[str | None] = mapped_column(sa.String(1000))
    # What the target sees in its list (the owner's title or folder label at share time).
    label: Mapped[str] = mapped_column(sa.String(300), nullable=False)
    note: Mapped[str | None] = mapped_column(sa.String(500))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    created_by: Mapped[uuid.UUID | None] = mapped_column(sa.Uuid)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_by: Mapped[uuid.UUID | None] = mapped_column(sa.Uuid)

    target_tenant = relationship("Tenant", foreign_keys=[target_tenant_id], lazy="joined")


class EliminationProposal(UUIDPk, TenantScoped, db.Model):
    """A bordereau d'élimination proposed by the retention sweep, for a human to decide."""

    __tablename__ = "ged_elimination_proposals"

    state: Mapped[str] = mapped_column(sa.String(16), nullable=False, default="proposed")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    decided_by: Mapped[uuid.UUID | None] = mapped_column(sa.Uuid)

    items: Mapped[list[EliminationItem]] = relationship(
        back_populates="proposal", cascade="all, delete-orphan", order_by="EliminationItem.title")


class EliminationItem(UUIDPk, TenantScoped, db.Model):
    __tablename__ = "ged_elimination_items"
    __table_args__ = (sa.UniqueConstraint("proposal_id", "document_id", name="uq_ged_elimination_items_doc"),)

    proposal_id: Mapped[uuid.UUID] = mapped_column(
        sa.Uuid, sa.ForeignKey("ged_elimination_proposals.id", ondelete="CASCADE"),
        nullable=False, index=True)
    # Not a foreign key: the bordereau outlives the documents it destroyed.
    document_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, nullable=False, index=True)
    title: Mapped[str] = mapped_column(sa.String(300), nullable=False)
    doc_type: Mapped[str] = mapped_column(sa.String(20), nullable=False)
    document_date: Mapped[date] = mapped_column(sa.Date, nullable=False)
    retention_end: Mapped[date] = mapped_column(sa.Date, nullable=False)
    fate: Mapped[str] = mapped_column(sa.String(16), nullable=False)
    size: Mapped[int] = mapped_column(sa.BigInteger, nullable=False, default=0)
    # pending, destroy (approved), keep (a human decided to keep it)
    decision: Mapped[str] = mapped_column(sa.String(16), nullable=False, default="pending")

    proposal: Mapped[EliminationProposal] = relationship(back_populates="items")


class Upload(UUIDPk, TenantScoped, db.Model):
    """A resumable (tus) upload in progress: each chunk is an object uploads/<id>/<part>."""

    __tablename__ = "ged_uploads"

    user_id: Mapped[uuid.UUID | None] = mapped_column(sa.Uuid)
    length: Mapped[int] = mapped_column(sa.BigInteger, nullable=False)
    offset: Mapped[int] = mapped_column(sa.BigInteger, nullable=False, default=0)
    parts: Mapped[list] = mapped_column(JSONType, nullable=False, default=list)
    filename: Mapped[str] = mapped_column(sa.String(255), nullable=False)
    # title, type, classification, tags… as given at creation (tus Upload-Metadata).
    fields: Mapped[dict] = mapped_column(JSONType, nullable=False, default=dict)
    document_id: Mapped[uuid.UUID | None] = mapped_column(sa.Uuid)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, index=True)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    result_document_id: Mapped[uuid.UUID | None] = mapped_column(sa.Uuid)
    result_version: Mapped[int | None] = mapped_column(sa.Integer)


class Usage(db.Model):
    """Bytes a commune's GED holds (every version, trash included): quota and reports."""

    __tablename__ = "ged_usage"

    tenant_id: Mapped[uuid.UUID] = mapped_column(
        sa.Uuid, sa.ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True)
    used_bytes: Mapped[int] = mapped_column(sa.BigInteger, nullable=False, default=0)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)


class SearchEntry(db.Model):
    """A document's full-text index entry (PostgreSQL only; written by services.refresh_search).

    Apart from ged_documents on purpose: `@@` is not leakproof, so under forced RLS PostgreSQL
    may not use a GIN index for it and scans every row of the commune. This table has RLS
    enabled (the app role sees its commune's rows only) but not forced, so the SECURITY
    DEFINER function ged_search_top(), owned by the migration role, can use the GIN index;
    that function filters on app.current_tenant itself and returns ids, which the search
    then joins to ged_documents under RLS (see migrations 0003 and 0004).
    """

    __tablename__ = "ged_search"
    __table_args__ = (
        sa.Index("ix_ged_search_match", "tenant_id", "search_vector", postgresql_using="gin"),
    )

    document_id: Mapped[uuid.UUID] = mapped_column(
        sa.Uuid, sa.ForeignKey("ged_documents.id", ondelete="CASCADE"), primary_key=True)
    tenant_id: Mapped[uuid.UUID] = mapped_column(
        sa.Uuid, sa.ForeignKey("tenants.id", ondelete="RESTRICT"), nullable=False)
    document_date: Mapped[date] = mapped_column(sa.Date, nullable=False)
    # Title (weight A) and metadata (B): small, kept in the row, ranked for every match.
    head_vector = mapped_column(TSVector, nullable=False)
    # Head plus extracted text (D): what the GIN index matches on.
    search_vector = mapped_column(TSVector, nullable=False)


class ScrubRun(UUIDPk, TenantScoped, db.Model):
    """One integrity scrub of a commune: every version's bytes against its SHA-256 and size.

    A run goes over the versions in id order, a bounded number of bytes per job, `cursor`
    being the last version checked; `problems` lists the mismatched and missing ones
    ({"document_id", "version", "version_id", "kind"}), the first MAX_PROBLEMS of them.
    """

    __tablename__ = "ged_scrub_runs"

    started_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow,
                                                 index=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    cursor: Mapped[uuid.UUID | None] = mapped_column(sa.Uuid)
    steps: Mapped[int] = mapped_column(sa.Integer, nullable=False, default=0)
    checked: Mapped[int] = mapped_column(sa.Integer, nullable=False, default=0)
    ok: Mapped[int] = mapped_column(sa.Integer, nullable=False, default=0)
    mismatched: Mapped[int] = mapped_column(sa.Integer, nullable=False, default=0)
    missing: Mapped[int] = mapped_column(sa.Integer, nullable=False, default=0)
    bytes_read: Mapped[int] = mapped_column(sa.BigInteger, nullable=False, default=0)
    problems: Mapped[list] = mapped_column(JSONType, nullable=False, default=list)
