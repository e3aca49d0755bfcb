"""Documents and versions: creation from a stored file, new versions, description, trash."""

from __future__ import annotations

import uuid
from datetime import date, timedelta

import sqlalchemy as sa
from flask_babel import gettext as _
from sqlalchemy.orm import selectinload

from saas.audit.services import record
from saas.auth.actor import Actor
from saas.config import current_settings
from saas.errors import AppError
from saas.extensions import db
from saas.files.serve import ServedFile
from saas.files.store import StoredFile, delete_quietly
from saas.ged.models import (
    Confidentiality,
    DocStatus,
    DocType,
    Document,
    DocumentAccess,
    DocumentVersion,
    ExtractionState,
    FinalFate,
    Share,
)
from saas.ged.services import extraction
from saas.ged.services.access import require_writer, visible_clause
from saas.ged.services.fields import DocumentFields
from saas.ged.services.quota import add_usage
from saas.ged.services.retention import (
    check_retention_change,
    destroy_document,
    hold_strength,
    note_status,
    retention_block,
)
from saas.ged.services.search import refresh_search
from saas.ged.services.validation import raise_problems
from saas.modelbase import utcnow
from saas.tenancy.models import TenantSnapshot

# Sensible defaults per type (durée d'utilité administrative in years, final fate), after the
# 2014 instruction on the sorting of communal archives; every document may override them.
TYPE_DEFAULTS: dict[str, tuple[int | None, str]] = {
    DocType.DELIBERATION: (None, FinalFate.CONSERVER),
    DocType.ARRETE: (None, FinalFate.CONSERVER),
    DocType.CONTRAT: (10, FinalFate.TRIER),
    DocType.COURRIER: (5, FinalFate.TRIER),
    DocType.FACTURE: (10, FinalFate.DETRUIRE),
    DocType.BULLETIN_PAIE: (5, FinalFate.DETRUIRE),
    DocType.PLAN: (None, FinalFate.CONSERVER),
    DocType.AUTRE: (None, FinalFate.TRIER),
}


def _apply_fields(document: Document, f: DocumentFields, *, creating: bool) -> None:
    if f.title is not None:
        document.title = f.title
    if f.doc_type is not None:
        type_changed = document.doc_type != f.doc_type
        document.doc_type = f.doc_type
        if creating or type_changed:
            years, fate = TYPE_DEFAULTS[DocType(f.doc_type)]
            if not f.retention_given and creating:
                document.retention_years = years
            if f.final_fate is None and creating:
                document.final_fate = fate
    if f.classification_given:
        document.classification = f.classification
        document.classification_id = f.classification.id if f.classification else None
        document.classification_path = f.classification.path if f.classification else None
    if f.tags is not None:
        document.tags = f.tags
    if f.metadata is not None:
        document.metadata_ = f.metadata
    if f.author is not None:
        document.author = f.author
    if f.document_date is not None:
        document.document_date = f.document_date
    if f.confidentiality is not None:
        document.confidentiality = f.confidentiality
    if f.retention_given:
        document.retention_years = f.retention_years
    if f.final_fate is not None:
        document.final_fate = f.final_fate
    if f.status is not None:
        document.status = f.status
    note_status(document)
    if f.legal_hold is not None:
        document.legal_hold = f.legal_hold


def _set_access(document: Document, user_ids: list[uuid.UUID] | None) -> None:
    if user_ids is None:
        return
    db.session.execute(sa.delete(DocumentAccess).where(DocumentAccess.document_id == document.id))
    for user_id in user_ids:
        db.session.add(DocumentAccess(document_id=document.id, user_id=user_id))


def _new_version(document: Document, ingested: StoredFile, actor: Actor, number: int) -> DocumentVersion:
    state = (ExtractionState.PENDING if extraction.extractable(ingested.sniffed.content_type)
             else ExtractionState.SKIPPED)
    return DocumentVersion(
        id=uuid.uuid4(), document_id=document.id, number=number, object_key=ingested.key,
        object_version_id=ingested.stored.version_id, size=ingested.stored.size,
        sha256=ingested.stored.sha256, content_type=ingested.sniffed.content_type,
        filename=ingested.filename, created_by=actor.user_id, created_at=utcnow(),
        extraction_state=state,
    )


def served_file(version: DocumentVersion) -> ServedFile:
    """A version as `saas.files.serve.serve` sends it (Range, ETag, SHA-256 re-check)."""
    return ServedFile(key=version.object_key, version_id=version.object_version_id,
                      size=version.size, sha256=version.sha256,
                      content_type=version.content_type, filename=version.filename,
                      label=f"version {version.id}",
                      verify_whole_below=current_settings().ged.verify_whole_below)


def _commit_or_delete_object(tenant: TenantSnapshot, key: str) -> None:
    try:
        db.session.commit()
    except BaseException:
        db.session.rollback()
        delete_quietly(tenant, key)
        raise


def create_document(tenant: TenantSnapshot, ingested: StoredFile, *, document_id: uuid.UUID,
                    fields: DocumentFields, actor: Actor) -> Document:
    """Create a document from its stored file (bytes first): rows, usage, audit, extraction job.

    `document_id` is the one the file's key was made for; the file is deleted when the
    document cannot be created.
    """
    try:
        require_writer(actor)
        raise_problems(fields.problems)
        return _create_rows(tenant, document_id, ingested, fields, actor)
    except BaseException:
        db.session.rollback()
        delete_quietly(tenant, ingested.key)
        raise


def _create_rows(tenant: TenantSnapshot, document_id: uuid.UUID, ingested: StoredFile,
                 fields: DocumentFields, actor: Actor) -> Document:
    if fields.title is None:
        stem = ingested.filename.rsplit(".", 1)[0] if "." in ingested.filename else ingested.filename
        fields.title = stem[:300] or ingested.filename[:300]
    if fields.doc_type is None:
        fields.doc_type = DocType.AUTRE
    document = Document(id=document_id, title="", document_date=date.today(),
                        created_by=actor.user_id, tags=[], metadata_={},
                        confidentiality=Confidentiality.ALL_AGENTS, status=DocStatus.FINAL,
                        legal_hold=False, final_fate=FinalFate.TRIER)
    if fields.author is None and actor.user is not None:
        fields.author = getattr(actor.user, "name", None)
    _apply_fields(document, fields, creating=True)
    version = _new_version(document, ingested, actor, 1)
    document.current_version_number = 1
    document.versions_count = 1
    document.versions = [version]
    db.session.add(document)
    db.session.flush()
    _set_access(document, fields.access_user_ids)
    add_usage(tenant, ingested.size, enforce=True)
    refresh_search(document)
    record("ged.upload", f"document:{document.id}", {
        "title": document.title, "version": 1, "sha256": version.sha256, "size": version.size,
        "content_type": version.content_type, "filename": version.filename})
    extraction.enqueue_extraction(version)
    _commit_or_delete_object(tenant, ingested.key)
    return document


def add_version(tenant: TenantSnapshot, document: Document, ingested: StoredFile, *,
                actor: Actor) -> DocumentVersion:
    """Add a stored file as a document's new version: every earlier version stays readable."""
    try:
        require_writer(actor)
        # Lock the document row: two concurrent new versions must get two numbers.
        locked = db.session.execute(
            sa.select(Document).where(Document.id == document.id).with_for_update(of=Document)
            .execution_options(populate_existing=True)).scalar_one()
        number = locked.versions_count + 1
        version = _new_version(locked, ingested, actor, number)
        db.session.add(version)
        locked.versions_count = number
        locked.current_version_number = number
        db.session.flush()
        db.session.refresh(locked, ["versions"])
        add_usage(tenant, ingested.size, enforce=True)
        refresh_search(locked)
        record("ged.version", f"document:{locked.id}", {
            "version": number, "sha256": version.sha256, "size": version.size,
            "content_type": version.content_type, "filename": version.filename})
        extraction.enqueue_extraction(version)
        _commit_or_delete_object(tenant, ingested.key)
        return version
    except BaseException:
        db.session.rollback()
        delete_quietly(tenant, ingested.key)
        raise


def _audited_description(document: Document) -> dict:
    """What a description change records of the document, before and after."""
    return {"title": document.title, "type": document.doc_type,
            "confidentiality": document.confidentiality, "legal_hold": document.legal_hold,
            "retention_years": document.retention_years, "final_fate": document.final_fate,
            "document_date": document.document_date.isoformat()}


def update_document(document: Document, fields: DocumentFields, actor: Actor) -> Document:
    """Change a document's description (title, type, classification, retention…)."""
    require_writer(actor)
    raise_problems(fields.problems)
    if fields.legal_hold is not None and fields.legal_hold != document.legal_hold:
        actor.require_admin()
    before = _audited_description(document)
    hold_before = hold_strength(document)
    _apply_fields(document, fields, creating=False)
    check_retention_change(document, hold_before, actor)
    _set_access(document, fields.access_user_ids)
    refresh_search(document)
    record("ged.update", f"document:{document.id}",
           {"before": before, "after": _audited_description(document)})
    db.session.commit()
    return document


def delete_document(document: Document, actor: Actor) -> None:
    """Move to the trash (restorable for 30 days); 409 with the reason when retention forbids it."""
    require_writer(actor)
    reason = retention_block(document)
    if reason:
        raise AppError(409, "under_retention", reason)
    document.deleted_at = utcnow()
    document.deleted_by = actor.user_id
    record("ged.delete", f"document:{document.id}", {"title": document.title})
    db.session.commit()


def restore_document(document: Document, actor: Actor) -> None:
    require_writer(actor)
    if document.deleted_at is None:
        raise AppError(409, "not_in_trash", _("Ce document n'est pas dans la corbeille."))
    document.deleted_at = None
    document.deleted_by = None
    record("ged.restore", f"document:{document.id}", {"title": document.title})
    db.session.commit()


def trash_query(actor: Actor) -> sa.Select:
    return (sa.select(Document).where(Document.deleted_at.is_not(None), visible_clause(actor))
            .options(selectinload(Document.versions))
            .order_by(Document.deleted_at.desc(), Document.id))


# -- cancelling a deposit made by mistake ----------------------------------------------------


def cancel_block(document: Document, actor: Actor) -> str | None:
    """Why `actor` may not cancel this deposit (None: they may).

    Only its author, within `GedSettings.cancel_window_hours` of the deposit, and only while
    the document is still exactly what they deposited: one version, theirs; never described,
    versioned or moved by someone else; never shared with another commune. Its retention does
    not matter: retention protects records, and a deposit made by mistake is not one yet.
    """
    if actor.user_id is None or document.created_by != actor.user_id:
        return _("Seule la personne qui a déposé ce document peut annuler son dépôt.")
    hours = current_settings().ged.cancel_window_hours
    if utcnow() - document.created_at > timedelta(hours=hours):
        return _("Le dépôt date de plus de %(n)d heures : il ne peut plus être annulé.", n=hours)
    if document.legal_hold:
        return _("Ce document est sous gel juridique : son dépôt ne peut plus être annulé.")
    if any(v.created_by != actor.user_id for v in document.versions):
        return _("Quelqu'un d'autre a ajouté une version : le dépôt ne peut plus être annulé.")
    shared = db.session.execute(sa.select(Share.id).where(
        sa.or_(Share.document_id == document.id,
               sa.and_(Share.classification_path.is_not(None),
                       sa.literal(document.classification_path or "").startswith(
                           Share.classification_path))))).first()
    if shared is not None:
        return _("Ce document a été partagé avec une autre commune : son dépôt ne peut plus "
                 "être annulé.")
    from saas.audit.models import AuditEvent

    touched = db.session.execute(sa.select(AuditEvent.id).where(
        AuditEvent.target == f"document:{document.id}",
        AuditEvent.action.in_(("ged.update", "ged.version", "ged.delete", "ged.restore")),
        sa.or_(AuditEvent.actor_id.is_(None), AuditEvent.actor_id != actor.user_id))).first()
    if touched is not None:
        return _("Quelqu'un d'autre a modifié ce document : son dépôt ne peut plus être annulé.")
    return None


def cancel_deposit(tenant: TenantSnapshot, document: Document, actor: Actor) -> None:
    """Remove a deposit made by mistake, for good (rows, bytes, usage); audited `ged.cancel`.

    Erased rather than put in the trash: the trash would keep it 30 days, and then, as it
    carries a retention rule, for a bordereau d'élimination, while a wrong file (someone
    else's payslip, the wrong draft) must simply go. The audit entry keeps its title, size and
    SHA-256. 403 for anyone but its author, 409 once the window is over or someone else
    touched it (cancel_block).
    """
    require_writer(actor)
    # Lock the row: a concurrent share or edit waits, then sees the document gone.
    db.session.execute(sa.select(Document.id).where(Document.id == document.id)
                       .with_for_update())
    reason = cancel_block(document, actor)
    if reason is not None:
        db.session.rollback()
        status = 403 if document.created_by != actor.user_id else 409
        raise AppError(status, "cancel_refused", reason)
    # destroy_document deletes the versions in bulk: let the database cascade, not the ORM.
    db.session.expire(document, ["versions"])
    destroy_document(tenant, document, action="ged.cancel",
                     data={"reason": "dépôt annulé par son auteur",
                           "deposited_at": document.created_at.isoformat()})
