"""Retention: what may be deleted when, the trash purge, bordereaux d'élimination, destruction."""

from __future__ import annotations

import uuid
from datetime import date, timedelta

import sqlalchemy as sa
from flask_babel import gettext as _

from saas.audit.services import record
from saas.auth.actor import Actor
from saas.errors import AppError
from saas.extensions import db
from saas.files.store import delete_quietly
from saas.ged.models import (
    DocStatus,
    Document,
    DocumentVersion,
    EliminationItem,
    EliminationProposal,
    FinalFate,
)
from saas.ged.services.quota import add_usage
from saas.modelbase import utcnow
from saas.tenancy.models import TenantSnapshot

TRASH_DAYS = 30


def retention_block(document: Document, today: date | None = None) -> str | None:
    """Why the document may not be deleted now (French), or None."""
    today = today or date.today()
    if document.legal_hold:
        return _("Ce document fait l'objet d'une conservation pour raison légale (gel juridique) : "
                 "il ne peut pas être supprimé.")
    if document.status == DocStatus.DRAFT:
        return None
    end = document.retention_end
    if end is not None and today < end:
        return _("Ce document est sous durée d'utilité administrative jusqu'au %(d)s : il ne peut "
                 "pas être supprimé avant.", d=end.strftime("%d/%m/%Y"))
    if document.final_fate == FinalFate.CONSERVER:
        return _("Ce document est à conservation définitive : il doit être versé aux archives, "
                 "pas supprimé.")
    return None


def destroy_document(tenant: TenantSnapshot, document: Document, *, action: str, data: dict | None = None) -> None:
    """Erase a document for good (rows, then objects); audited. Callers decide when it is allowed."""
    versions = db.session.execute(
        sa.select(DocumentVersion.object_key, DocumentVersion.size, DocumentVersion.sha256)
        .where(DocumentVersion.document_id == document.id)).all()
    size = sum(v.size for v in versions)
    record(action, f"document:{document.id}", {
        "title": document.title, "versions": len(versions),
        "sha256": [v.sha256 for v in versions], "size": size, **(data or {})})
    db.session.execute(sa.delete(DocumentVersion).where(DocumentVersion.document_id == document.id))
    db.session.delete(document)
    add_usage(tenant, -size, enforce=False)
    db.session.commit()
    # Rows first: an object without a row is swept later, a row without its object is a loss.
    for v in versions:
        delete_quietly(tenant, v.object_key)


def purge_trash(tenant: TenantSnapshot, *, older_than_days: int = TRASH_DAYS) -> int:
    """Erase documents that stayed in the trash longer than the delay; return how many."""
    limit = utcnow() - timedelta(days=older_than_days)
    ids = db.session.execute(
        sa.select(Document.id).where(Document.deleted_at.is_not(None), Document.deleted_at < limit)
    ).scalars().all()
    for doc_id in ids:
        document = db.session.get(Document, doc_id)
        if document is not None and retention_block(document) is None:
            destroy_document(tenant, document, action="ged.purge",
                             data={"reason": f"corbeille > {older_than_days} jours"})
    return len(ids)


def retention_sweep(today: date | None = None) -> EliminationProposal | None:
    """List documents past their DUA (fate détruire or trier) in a new bordereau; destroy nothing."""
    today = today or date.today()
    pending_ids = set(db.session.execute(
        sa.select(EliminationItem.document_id).join(EliminationProposal)
        .where(EliminationProposal.state == "proposed")).scalars())
    candidates = db.session.execute(
        sa.select(Document).where(
            Document.deleted_at.is_(None), Document.retention_years.is_not(None),
            Document.legal_hold.is_(False),
            Document.final_fate.in_([FinalFate.DETRUIRE, FinalFate.TRIER]))
    ).scalars().all()
    due = [d for d in candidates if d.retention_end and d.retention_end <= today
           and d.id not in pending_ids]
    if not due:
        return None
    proposal = EliminationProposal(id=uuid.uuid4(), state="proposed", created_at=utcnow())
    db.session.add(proposal)
    for document in due:
        size = db.session.execute(sa.select(sa.func.coalesce(sa.func.sum(DocumentVersion.size), 0))
                                  .where(DocumentVersion.document_id == document.id)).scalar_one()
        proposal.items.append(EliminationItem(
            document_id=document.id, title=document.title, doc_type=document.doc_type,
            document_date=document.document_date, retention_end=document.retention_end,
            fate=document.final_fate, size=int(size), decision="pending"))
    record("ged.elimination.propose", f"proposal:{proposal.id}", {"documents": len(due)})
    db.session.commit()
    return proposal


def decide_proposal(tenant: TenantSnapshot, proposal: EliminationProposal, decisions: dict[uuid.UUID, str],
                    actor: Actor) -> int:
    """Approve a bordereau: destroy the items marked `destroy`, keep the others; return destroyed."""
    actor.require_admin()
    if proposal.state != "proposed":
        raise AppError(409, "already_decided", _("Ce bordereau a déjà été traité."))
    destroyed = 0
    to_destroy = []
    for item in proposal.items:
        decision = decisions.get(item.id, "keep" if item.fate == FinalFate.TRIER else "destroy")
        if decision not in ("destroy", "keep"):
            raise AppError(422, "validation_error", _("Décision inconnue."))
        item.decision = decision
        if decision == "destroy":
            to_destroy.append(item.document_id)
    proposal.state = "approved"
    proposal.decided_at = utcnow()
    proposal.decided_by = actor.user_id
    record("ged.elimination.approve", f"proposal:{proposal.id}", {
        "destroy": [str(i) for i in to_destroy],
        "keep": [str(i.document_id) for i in proposal.items if i.decision == "keep"]})
    db.session.commit()
    for doc_id in to_destroy:
        document = db.session.get(Document, doc_id)
        if document is None:
            continue
        if document.legal_hold:
            continue  # a hold placed after the proposal wins
        destroy_document(tenant, document, action="ged.destroy",
                         data={"proposal": str(proposal.id)})
        destroyed += 1
    return destroyed


def reject_proposal(proposal: EliminationProposal, actor: Actor) -> None:
    actor.require_admin()
    if proposal.state != "proposed":
        raise AppError(409, "already_decided", _("Ce bordereau a déjà été traité."))
    proposal.state = "rejected"
    proposal.decided_at = utcnow()
    proposal.decided_by = actor.user_id
    for item in proposal.items:
        item.decision = "keep"
    record("ged.elimination.reject", f"proposal:{proposal.id}", {})
    db.session.commit()
