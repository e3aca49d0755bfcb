"""The GED's resumable (tus) uploads: one row per upload, its pieces, and filing once complete.

The protocol and the pieces are the byte pipeline's (saas/files/resumable.py); the completed
file is composed by `store_pieces` and filed by `intake.file_stored`, exactly as a streamed one.

An upload reserves its declared length in the commune's quota from its creation (see
services/quota.py) until it completes, is terminated, or expires and is swept; a person has at
most `GedSettings.max_pending_uploads` uploads in progress.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import BinaryIO

import sqlalchemy as sa
from flask_babel import gettext as _

from saas.auth.actor import Actor
from saas.config import current_settings
from saas.errors import AppError
from saas.extensions import db
from saas.files.resumable import (
    UPLOAD_LIFETIME,
    delete_pieces,
    lost_upload,
    pieces,
    receive_pieces,
    sweep_pieces,
)
from saas.files.store import sanitize_filename, store_pieces
from saas.ged.models import Document, Upload
from saas.ged.services.access import get_document
from saas.ged.services.fields import parse_fields
from saas.ged.services.intake import checked_fields, file_stored, new_object_key
from saas.ged.services.quota import reserve
from saas.modelbase import utcnow
from saas.tenancy.models import TenantSnapshot

METADATA_KEYS = ("filename", "title", "type", "classification", "tags", "metadata", "author",
                 "document_date", "confidentiality", "retention_years", "final_fate", "status",
                 "access", "document_id")


def _document_not_found() -> AppError:
    return AppError(404, "not_found", _("Document introuvable."))


def create_upload(tenant: TenantSnapshot, actor: Actor, length: int,
                  meta: dict[str, str]) -> Upload:
    """Open an upload of `length` bytes described by tus metadata (checked now, filed at the end)."""
    actor.require_writer(_("Votre rôle ne permet pas de déposer des documents."))
    checked_fields(meta)
    document_id = None
    if meta.get("document_id"):
        document = get_document(meta["document_id"], actor)
        if document is None:
            raise _document_not_found()
        document_id = document.id
    try:
        # Under the commune's usage lock until the commit below: no other creation or deposit
        # can take the same room, nor this person's last upload slot.
        reserve(tenant, length)
        _check_pending_count(actor)
    except BaseException:
        db.session.rollback()
        raise
    upload = Upload(id=uuid.uuid4(), user_id=actor.user_id, length=length, offset=0, parts=[],
                    filename=sanitize_filename(meta.get("filename")),
                    fields={k: v for k, v in meta.items() if k not in ("filename", "document_id")},
                    document_id=document_id, created_at=utcnow(),
                    expires_at=utcnow() + UPLOAD_LIFETIME)
    db.session.add(upload)
    db.session.commit()
    return upload


def pending_uploads_of(user_id: uuid.UUID | None) -> int:
    """How many uploads `user_id` has in progress in the current commune (not expired)."""
    return int(db.session.execute(
        sa.select(sa.func.count()).select_from(Upload).where(
            Upload.user_id == user_id, Upload.completed_at.is_(None),
            Upload.expires_at > utcnow())).scalar_one())


def _check_pending_count(actor: Actor) -> None:
    cap = current_settings().ged.max_pending_uploads
    if pending_uploads_of(actor.user_id) >= cap:
        raise AppError(429, "too_many_uploads",
                       _("Vous avez déjà %(n)d envois reprenables en cours : terminez-en un ou "
                         "abandonnez-le avant d'en commencer un autre.", n=cap),
                       {"max_pending_uploads": cap})


def get_upload(upload_id: uuid.UUID, actor: Actor, *, lock: bool = False) -> Upload:
    """`actor`'s live upload (404 otherwise); `lock` serialises concurrent PATCHes of it."""
    stmt = sa.select(Upload).where(Upload.id == upload_id)
    if lock:
        stmt = stmt.with_for_update().execution_options(populate_existing=True)
    upload = db.session.execute(stmt).scalar_one_or_none()
    if upload is None or upload.user_id != actor.user_id or upload.expires_at < utcnow():
        raise lost_upload()
    return upload


def receive(tenant: TenantSnapshot, upload: Upload, stream: BinaryIO, actor: Actor) -> Upload:
    """Keep the whole pieces of a PATCH body; file the document once every byte is in."""

    def save(current: Upload) -> Upload:
        db.session.commit()
        # The row lock ended with the commit: take it again before the next piece.
        return get_upload(current.id, actor, lock=True)

    try:
        upload = receive_pieces(tenant, upload, stream, save=save,
                                piece_size=current_settings().ged.upload_chunk)
    except AppError:
        terminate(tenant, upload)
        raise
    if upload.offset < upload.length:
        db.session.commit()
        return upload
    return _complete(tenant, upload, actor)


def _complete(tenant: TenantSnapshot, upload: Upload, actor: Actor) -> Upload:
    """Compose the pieces into the document's object, file it, drop the pieces."""
    document = None
    if upload.document_id is not None:
        document = get_document(upload.document_id, actor)
        if document is None:
            terminate(tenant, upload)
            raise _document_not_found()
    document_id = document.id if document is not None else uuid.uuid4()
    try:
        stored = store_pieces(tenant, new_object_key(document_id), pieces(upload),
                              filename=upload.filename, metadata={"document": str(document_id)})
    except AppError:
        terminate(tenant, upload)
        raise
    upload_id = upload.id
    # Complete in the filing's transaction: the upload's reservation gives way to the
    # document's usage at once (a failed filing rolls both back).
    upload.completed_at = utcnow()
    db.session.flush()
    filed = file_stored(tenant, stored, document_id=document_id, document=document,
                        fields=parse_fields(dict(upload.fields or {})), actor=actor)
    upload = db.session.execute(sa.select(Upload).where(Upload.id == upload_id)).scalar_one()
    upload.completed_at = utcnow()
    upload.result_document_id = document_id
    upload.result_version = 1 if isinstance(filed, Document) else filed.number
    parts, upload.parts = upload.parts, []
    db.session.commit()
    delete_pieces(tenant, parts)
    return upload


def terminate(tenant: TenantSnapshot, upload: Upload) -> None:
    """Drop an upload and its pieces."""
    delete_pieces(tenant, upload.parts)
    db.session.delete(upload)
    db.session.commit()


def sweep_uploads(tenant: TenantSnapshot, older_than: datetime) -> int:
    """Remove expired uploads and upload pieces no row references; return uploads removed."""
    expired = db.session.execute(sa.select(Upload).where(
        sa.or_(Upload.expires_at < utcnow(),
               sa.and_(Upload.completed_at.is_not(None), Upload.completed_at < older_than)))
    ).scalars().all()
    for upload in expired:
        delete_pieces(tenant, upload.parts)
        db.session.delete(upload)
    db.session.commit()
    live = {str(u) for u in db.session.execute(sa.select(Upload.id)).scalars()}
    sweep_pieces(tenant, live, older_than)
    return len(expired)
