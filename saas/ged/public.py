"""What other features (parapheur, actes, séances…) may use of the GED; the rest is private.

Every function acts in the current commune (`current_tenant()`) for an `Actor`
(`saas.auth.actor`), with the GED's own rules: a document the actor may not see is None, as
if it did not exist; writes need a writer (admin or agent) or the system, count against the
commune's quota and are audited. Refusals are `AppError`s (saas.errors).

    document = get_document(document_id, actor)
    version = get_version(document.id, actor)               # the current one
    with open_version(version) as reader: ...                # its bytes, streamed
    version = add_version_from_stream(document, signed_pdf, filename="signé.pdf", actor=actor)
    document = create_document_from_stream(stream, filename="acte.pdf", actor=actor,
                                           title="Arrêté n° 12", doc_type="arrete")
"""

from __future__ import annotations

import uuid
from typing import BinaryIO

from saas.auth.actor import Actor
from saas.ged.models import DocType, Document, DocumentVersion
from saas.ged.services import access, documents, intake, integrity
from saas.ged.services.documents import served_file
from saas.ged.services.integrity import ScrubSummary
from saas.storage import ObjectReader, get_store
from saas.tenancy.current import current_tenant

__all__ = [
    "DocType",
    "Document",
    "DocumentVersion",
    "add_version_from_stream",
    "create_document_from_stream",
    "get_document",
    "get_version",
    "last_scrub",
    "usage_summary",
    "ScrubSummary",
    "open_version",
    "served_file",
]


def last_scrub() -> ScrubSummary | None:
    """The current commune's latest finished integrity scrub (counts, affected documents)."""
    return integrity.last_scrub()


def usage_summary() -> tuple[int, int]:
    """The current commune's (bytes stored, documents outside the trash), for the console."""
    import sqlalchemy as sa

    from saas.extensions import db
    from saas.ged.services import quota
    from saas.tenancy.context import current_tenant_id

    tenant_id = current_tenant_id()
    documents = db.session.execute(
        sa.select(sa.func.count()).select_from(Document).where(Document.deleted_at.is_(None))
    ).scalar() or 0
    return quota.usage_of(tenant_id), int(documents)


def get_document(document_id: uuid.UUID | str, actor: Actor) -> Document | None:
    """The current commune's document if `actor` may see it (trash excluded), else None."""
    return access.get_document(document_id, actor)


def get_version(document_id: uuid.UUID | str, actor: Actor, number: int | None = None
                ) -> DocumentVersion | None:
    """Version `number` (the current one when None) of a document `actor` may see, else None."""
    _document, version = access.get_document_version(document_id, number, actor)
    return version


def open_version(version: DocumentVersion) -> ObjectReader:
    """Open a version's bytes for a streaming read (a context manager; close it)."""
    return get_store().get(current_tenant(), version.object_key,
                           version_id=version.object_version_id)


def add_version_from_stream(document: Document, stream: BinaryIO, *, filename: str,
                            actor: Actor) -> DocumentVersion:
    """Add the bytes of `stream` (a signed PDF…) as `document`'s new version; committed."""
    tenant = current_tenant()
    access.require_writer(actor)
    stored = intake.ingest(tenant, stream, filename=filename, document_id=document.id)
    return documents.add_version(tenant, document, stored, actor=actor)


def create_document_from_stream(stream: BinaryIO, *, filename: str, actor: Actor,
                                **described: str) -> Document:
    """Create a document from the bytes of `stream`; committed.

    `described` takes the fields of the API's multipart upload, as text: title, type,
    classification (a code of the filing plan), tags, metadata (JSON), author,
    document_date, confidentiality, retention_years, final_fate, status.
    """
    tenant = current_tenant()
    access.require_writer(actor)
    checked = intake.checked_fields(described)
    document_id = uuid.uuid4()
    stored = intake.ingest(tenant, stream, filename=filename, document_id=document_id)
    return documents.create_document(tenant, stored, document_id=document_id, fields=checked,
                                     actor=actor)
