"""Read-only shares with another commune or the intercommunality, and the one door to them."""

from __future__ import annotations

import uuid

import sqlalchemy as sa
from flask_babel import gettext as _

from saas.audit.services import record
from saas.auth.actor import Actor
from saas.errors import AppError
from saas.extensions import db
from saas.ged.models import Classification, Confidentiality, Document, DocumentVersion, Share
from saas.ged.services.validation import clean_text
from saas.modelbase import utcnow
from saas.tenancy.context import current_tenant_id
from saas.tenancy.models import Tenant, TenantStatus


def share_targets() -> list[Tenant]:
    """The other active communes and the intercommunality, to share with."""
    return db.session.execute(
        sa.select(Tenant).where(Tenant.id != current_tenant_id(), Tenant.status == "active")
        .order_by(Tenant.kind.desc(), Tenant.name)).scalars().all()


def create_share(*, target_slug: str, actor: Actor, document: Document | None = None,
                 classification: Classification | None = None, note: str | None = None) -> Share:
    """Share one document or one folder read-only with another commune or the intercommunality."""
    actor.require_admin()
    target = db.session.execute(sa.select(Tenant).where(Tenant.slug == (target_slug or "").strip())
                                ).scalar_one_or_none()
    if target is None or target.id == current_tenant_id():
        raise AppError(422, "validation_error", _("Les données envoyées sont invalides."),
                       {"fields": {"target": _("commune inconnue (ou la vôtre)")}})
    if (document is None) == (classification is None):
        raise AppError(422, "validation_error", _("Partagez un document ou un dossier."),
                       {"fields": {"document_id": _("un document ou un dossier, pas les deux")}})
    if document is not None and document.confidentiality != Confidentiality.ALL_AGENTS:
        raise AppError(409, "confidential",
                       _("Un document à diffusion restreinte ne peut pas être partagé."))
    existing = db.session.execute(sa.select(Share).where(
        Share.target_tenant_id == target.id, Share.revoked_at.is_(None),
        Share.document_id == document.id if document else Share.classification_id == classification.id)
    ).scalar_one_or_none()
    if existing is not None:
        return existing
    share = Share(
        id=uuid.uuid4(), target_tenant_id=target.id,
        document_id=document.id if document else None,
        classification_id=classification.id if classification else None,
        classification_path=classification.path if classification else None,
        label=(document.title if document else f"{classification.code} {classification.label}")[:300],
        note=clean_text(note, 500) or None, created_at=utcnow(), created_by=actor.user_id)
    db.session.add(share)
    record("ged.share", f"share:{share.id}", {
        "target": target.slug, "document": str(document.id) if document else None,
        "classification": classification.code if classification else None})
    db.session.commit()
    return share


def revoke_share(share: Share, actor: Actor) -> None:
    """End a share now: the target loses access on its next request."""
    actor.require_admin()
    if share.revoked_at is not None:
        return
    share.revoked_at = utcnow()
    share.revoked_by = actor.user_id
    record("ged.revoke", f"share:{share.id}", {"target": share.target_tenant.slug if share.target_tenant else None})
    db.session.commit()


def outgoing_shares() -> list[Share]:
    return db.session.execute(sa.select(Share).order_by(Share.revoked_at.is_not(None),
                                                        Share.created_at.desc())).scalars().all()


def get_share(share_id) -> Share | None:
    try:
        share_id = uuid.UUID(str(share_id))
    except ValueError:
        return None
    return db.session.execute(sa.select(Share).where(Share.id == share_id)).scalar_one_or_none()


# The one door to another commune's documents: explicit, checked against a live share naming the
# current commune, from an owner that is itself active (a suspended commune's documents are
# served to nobody, its shares included), never through the ordinary scoped accessors.

def _live_share_clause(document_cls=Document):
    tid = current_tenant_id()
    owner_active = sa.exists().where(Tenant.id == document_cls.tenant_id,
                                     Tenant.status == TenantStatus.ACTIVE)
    return owner_active & sa.exists().where(
        Share.tenant_id == document_cls.tenant_id,
        Share.target_tenant_id == tid,
        Share.revoked_at.is_(None),
        sa.or_(Share.document_id == document_cls.id,
               sa.and_(Share.classification_path.is_not(None),
                       document_cls.classification_path.like(Share.classification_path + "%"))))


def shared_documents_query(actor: Actor) -> sa.Select:
    """Documents other communes share with the current one (read-only)."""
    tid = current_tenant_id()
    if actor.role not in ("admin", "agent") or tid is None:
        return sa.select(Document).where(sa.false())
    return (sa.select(Document).where(
        Document.tenant_id != tid, Document.deleted_at.is_(None),
        Document.confidentiality == Confidentiality.ALL_AGENTS, _live_share_clause())
        .order_by(Document.created_at.desc(), Document.id)
        .execution_options(all_tenants=True))


def get_shared_document(document_id, actor: Actor) -> tuple[Document, list[DocumentVersion], Tenant] | None:
    """Another commune's document shared with the current one, its versions and owner, or None."""
    try:
        document_id = uuid.UUID(str(document_id))
    except ValueError:
        return None
    document = db.session.execute(
        shared_documents_query(actor).where(Document.id == document_id)
    ).unique().scalar_one_or_none()
    if document is None:
        return None
    versions = db.session.execute(
        sa.select(DocumentVersion).where(DocumentVersion.document_id == document.id,
                                         DocumentVersion.tenant_id == document.tenant_id)
        .order_by(DocumentVersion.number).execution_options(all_tenants=True)
    ).scalars().all()
    owner = db.session.get(Tenant, document.tenant_id)
    return document, list(versions), owner


def audit_shared_read(document: Document, owner: Tenant, version: int) -> None:
    """Record, in the reading commune's chain, that a shared document was downloaded."""
    record("ged.shared.download", f"document:{document.id}",
           {"owner": owner.slug, "version": version})
    db.session.commit()
