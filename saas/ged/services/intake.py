"""Files into the GED: stored within the size and quota, then filed as a document or a version.

Atomicity rule: bytes go to the object store first, then the database rows in one transaction;
if that transaction fails the object is deleted at once, and the orphan sweep removes whatever
a crash left between the two. Every file, streamed (a form, the API, another feature) or
resumed (tus), is filed by `file_stored()`.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime
from typing import BinaryIO

import sqlalchemy as sa
from flask import Request

from saas.audit.services import record
from saas.auth.actor import Actor
from saas.config import current_settings
from saas.extensions import db
from saas.files.receive import MULTIPART_SLACK, receive_file
from saas.files.store import StoredFile, store_stream
from saas.ged.models import Document, DocumentVersion
from saas.ged.services import documents
from saas.ged.services.access import require_writer
from saas.ged.services.fields import DocumentFields, parse_fields
from saas.ged.services.quota import check_room, quota_error, quota_status, too_large_error
from saas.ged.services.validation import raise_problems
from saas.storage import get_store
from saas.storage.base import ObjectNotFound
from saas.tenancy.models import TenantSnapshot


def new_object_key(document_id: uuid.UUID) -> str:
    return f"ged/{document_id}/{uuid.uuid4()}"


def ingest(tenant: TenantSnapshot, stream: BinaryIO, *, filename: str | None,
           document_id: uuid.UUID, declared_length: int | None = None) -> StoredFile:
    """Stream one file into the commune's bucket within the size limit and the quota.

    The declared length (Content-Length) is checked before any write; the streamed bytes are
    counted too, and the write aborts once they pass the size or quota.
    """
    status = (check_room(tenant, declared_length) if declared_length is not None
              else quota_status(tenant))
    limit = current_settings().ged.max_upload
    over_quota = False
    if status.remaining is not None and status.remaining < limit:
        limit, over_quota = status.remaining, True

    def on_limit(count: int) -> Exception:
        if over_quota:
            return quota_error(tenant, count, status.used, status.reserved)
        return too_large_error(count)

    return store_stream(tenant, new_object_key(document_id), stream, filename=filename,
                        limit=limit, on_limit=on_limit, metadata={"document": str(document_id)})


def checked_fields(form) -> DocumentFields:
    """The document fields of a form (or tus metadata); 422 naming the bad ones."""
    fields = parse_fields(form)
    raise_problems(fields.problems)
    return fields


def file_stored(tenant: TenantSnapshot, stored: StoredFile, *, document_id: uuid.UUID,
                document: Document | None, fields: DocumentFields,
                actor: Actor) -> Document | DocumentVersion:
    """File a stored file: a new document (`document` None), or `document`'s new version."""
    if document is None:
        return documents.create_document(tenant, stored, document_id=document_id, fields=fields,
                                         actor=actor)
    return documents.add_version(tenant, document, stored, actor=actor)


def receive_upload(tenant: TenantSnapshot, request: Request, *, actor: Actor,
                   document: Document | None = None,
                   csrf_check: Callable[[str | None], None] | None = None
                   ) -> Document | DocumentVersion:
    """Stream a multipart upload to the store, then file it (see file_stored).

    `csrf_check(token)` (web pages) runs before the first byte of the file is written.
    """
    require_writer(actor)
    if request.content_length is not None:
        check_room(tenant, request.content_length, slack=MULTIPART_SLACK)
    document_id = document.id if document is not None else uuid.uuid4()

    def store_file(stream: BinaryIO, filename: str | None) -> StoredFile:
        return ingest(tenant, stream, filename=filename, document_id=document_id)

    stored, fields = receive_file(tenant, request, store_file=store_file,
                                  read_fields=checked_fields, csrf_check=csrf_check,
                                  max_size=current_settings().ged.max_upload)
    return file_stored(tenant, stored, document_id=document_id, document=document,
                       fields=fields, actor=actor)


def sweep_orphans(tenant: TenantSnapshot, older_than: datetime) -> list[str]:
    """Delete document objects no version references, written before `older_than`.

    Raises StorageError when the store cannot be listed.
    """
    store = get_store()
    known = set(db.session.execute(sa.select(DocumentVersion.object_key)).scalars())
    removed = []
    for obj in store.list(tenant, "ged/"):
        if obj.key in known:
            continue
        if obj.last_modified is not None and obj.last_modified > older_than:
            continue
        # Re-check under the database: a row may have committed since the listing began.
        if db.session.execute(sa.select(DocumentVersion.id).where(
                DocumentVersion.object_key == obj.key)).first():
            continue
        try:
            store.delete(tenant, obj.key)
        except ObjectNotFound:
            continue
        removed.append(obj.key)
    if removed:
        record("ged.orphans.sweep", None, {"objects": removed[:100], "count": len(removed)})
    return removed
