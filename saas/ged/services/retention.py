"""Retention: what may be deleted when, the trash purge, bordereaux d'élimination, destruction.

The hold. A document that is still a draft since its deposit carries no retention: its author
may put it in the trash and the purge erases it. The first time it becomes final (or
archived), `held_since` is set and never cleared: from then on its retention (the durée
d'utilité administrative, or permanent keeping) holds whatever its status becomes, so moving a
final délibération back to draft changes nothing. While held:

- its retention can only be made longer by the people who file documents; shortening it (an
  earlier date, fewer years, a weaker final fate) is for the commune's administrators, audited
  (see check_retention_change);
- it can be put in the trash only once its DUA is over and unless it is kept permanently
  (retention_block), and the trash purge never erases a document that carries a retention rule:
  only an approved bordereau d'élimination destroys it (decide_proposal). The retention sweep
  proposes such documents from the trash too.

A later "cancel my deposit within 24 h" would be its own explicit, audited path (the author,
the first day), not a way around this rule: nothing here depends on who deposited.
"""

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


# How strongly each final fate keeps a document: a change to a lower one shortens the hold.
_FATE_STRENGTH = {FinalFate.DETRUIRE: 0, FinalFate.TRIER: 1, FinalFate.CONSERVER: 2}


def is_held(document: Document) -> bool:
    """Whether the document's retention holds (it has been final or archived at least once)."""
    return document.held_since is not None


def note_status(document: Document) -> None:
    """Start the hold when the document is (or becomes) final or archived; nothing lifts it."""
    if document.held_since is None and document.status != DocStatus.DRAFT:
        document.held_since = utcnow()


def carries_retention_rule(document: Document) -> bool:
    """Whether erasing the document needs an approved bordereau d'élimination."""
    return is_held(document) and (document.retention_years is not None
                                  or document.final_fate == FinalFate.CONSERVER)


def hold_strength(document: Document) -> tuple[date, int]:
    return (document.retention_end or date.min, _FATE_STRENGTH.get(document.final_fate, 0))


def check_retention_change(document: Document, before: tuple[date, int], actor: Actor) -> None:
    """403 when a non-administrator shortened the hold of a held document (call after the change)."""
    if not is_held(document) or actor.is_admin or actor.is_system:
        return
    after = hold_strength(document)
    if after[0] < before[0] or after[1] < before[1]:
        raise AppError(403, "retention_locked", _(
            "Ce document est définitif : seul un administrateur de la commune peut réduire sa "
            "durée de conservation (date, durée ou sort final)."))


def retention_block(document: Document, today: date | None = None) -> str | None:
    """Why the document may not be deleted now (French), or None."""
    today = today or date.today()
    if document.legal_hold:
        return _("Ce document fait l'objet d'une conservation pour raison légale (gel juridique) : "
                 "il ne peut pas être supprimé.")
    if not is_held(document):
        return None  # a draft since its deposit
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
    """Erase documents that stayed in the trash longer than the delay; return how many.

    Never one that carries a retention rule since it became final: those wait in the trash
    for a bordereau d'élimination (the retention sweep proposes them).
    """
    limit = utcnow() - timedelta(days=older_than_days)
    ids = db.session.execute(
        sa.select(Document.id).where(Document.deleted_at.is_not(None), Document.deleted_at < limit)
    ).scalars().all()
    purged = 0
    for doc_id in ids:
        document = db.session.get(Document, doc_id)
        if document is None or carries_retention_rule(document):
            continue  # only an approved bordereau destroys it
        if retention_block(document) is None:
            destroy_document(tenant, document, action="ged.purge",
                             data={"reason": f"corbeille > {older_than_days} jours"})
            purged += 1
    return purged


def retention_sweep(today: date | None = None) -> EliminationProposal | None:
    """List documents past their DUA (fate détruire or trier) in a new bordereau; destroy nothing."""
    today = today or date.today()
    pending_ids = set(db.session.execute(
        sa.select(EliminationItem.document_id).join(EliminationProposal)
        .where(EliminationProposal.state == "proposed")).scalars())
    # Trashed documents too: the purge leaves the held ones to a bordereau.
    candidates = db.session.execute(
        sa.select(Document).where(
            sa.or_(Document.deleted_at.is_(None), Document.held_since.is_not(None)),
            Document.retention_years.is_not(None),
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
