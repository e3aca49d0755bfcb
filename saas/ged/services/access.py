"""Who sees which document of their commune, and the accessors that apply it (a 404 otherwise).

The rule, written three times below (an SQL condition for lists, a Python test for a loaded
row, a bound-parameter condition for the one-query hot path) and kept identical by
tests/ged/test_visibility.py, which runs all three against the same matrix:

- the system (jobs) and the commune's administrators see every document of the commune
  (restricted ones are shown as restricted: admins answer for the whole commune's archives,
  and no agent may hide a document from them);
- agents see the documents open to all agents, those they deposited and those they are named on;
- élus see the documents they deposited and those they are named on.
"""

from __future__ import annotations

import uuid

import sqlalchemy as sa
from flask_babel import gettext as _
from sqlalchemy.orm import selectinload

from saas.auth.actor import Actor
from saas.extensions import db
from saas.ged.models import Confidentiality, Document, DocumentAccess, DocumentVersion
from saas.tenancy.scoping import prescoped


def _sees_all(actor: Actor) -> bool:
    """The system and the commune's administrators see every document of the commune."""
    return actor.role in ("system", "admin")


def visible_clause(actor: Actor):
    """SQL condition: the documents `actor` may see in their own commune (trash excluded)."""
    if _sees_all(actor):
        return sa.true()
    listed = sa.exists().where(DocumentAccess.document_id == Document.id,
                               DocumentAccess.user_id == actor.user_id)
    if actor.role == "agent":
        return sa.or_(Document.confidentiality == Confidentiality.ALL_AGENTS,
                      Document.created_by == actor.user_id, listed)
    # Élus see the documents they are named on.
    return sa.or_(listed, sa.and_(Document.created_by == actor.user_id,
                                  Document.created_by.is_not(None)))


def can_see(document: Document, actor: Actor) -> bool:
    """Whether `actor` may see `document` of their own commune."""
    if _sees_all(actor):
        return True
    if actor.role == "agent" and document.confidentiality == Confidentiality.ALL_AGENTS:
        return True
    if document.created_by is not None and document.created_by == actor.user_id:
        return True
    return db.session.execute(
        sa.select(DocumentAccess.id).where(DocumentAccess.document_id == document.id,
                                           DocumentAccess.user_id == actor.user_id)
    ).first() is not None


def get_document(document_id, actor: Actor, *, include_trash: bool = False) -> Document | None:
    """The current commune's document if `actor` may see it (None otherwise: a 404)."""
    try:
        document_id = uuid.UUID(str(document_id))
    except ValueError:
        return None
    stmt = sa.select(Document).where(Document.id == document_id).options(
        selectinload(Document.versions))
    if not include_trash:
        stmt = stmt.where(Document.deleted_at.is_(None))
    document = db.session.execute(stmt).scalar_one_or_none()
    if document is None or not can_see(document, actor):
        return None
    return document


# Whether the actor of the bound parameters may see the document: the same rule as
# visible_clause(), with the actor as parameters so that the statement is built once.
_VISIBLE_TO_BOUND_ACTOR = sa.or_(
    sa.bindparam("sees_all", type_=sa.Boolean),
    sa.and_(sa.bindparam("agent", type_=sa.Boolean),
            Document.confidentiality == Confidentiality.ALL_AGENTS),
    sa.and_(Document.created_by.is_not(None),
            Document.created_by == sa.bindparam("user_id", type_=sa.Uuid)),
    sa.exists().where(DocumentAccess.document_id == Document.id,
                      DocumentAccess.user_id == sa.bindparam("user_id", type_=sa.Uuid)),
)

# What reading or downloading a document needs, in one query: the document if the actor may
# see it (not in the trash, classification joined) and one of its versions (the current one
# when `number` is NULL). Prescoped: these are the hot paths.
_DOCUMENT_AND_VERSION = prescoped(
    sa.select(Document, DocumentVersion)
    .outerjoin(DocumentVersion, sa.and_(
        DocumentVersion.document_id == Document.id,
        DocumentVersion.number == sa.func.coalesce(sa.bindparam("number", type_=sa.Integer),
                                                   Document.current_version_number)))
    .where(Document.id == sa.bindparam("document_id", type_=sa.Uuid),
           Document.deleted_at.is_(None), _VISIBLE_TO_BOUND_ACTOR)
)


def get_document_version(document_id, number: int | None, actor: Actor
                         ) -> tuple[Document | None, DocumentVersion | None]:
    """A document `actor` may see and its version `number` (the current one when None).

    (None, None) when the document is not visible (a 404), (document, None) when it has no
    such version. One query, without loading the other versions.
    """
    try:
        document_id = uuid.UUID(str(document_id))
    except ValueError:
        return None, None
    if number is not None and not 0 < number < 2**31:
        number = 0  # no such version (and no integer overflow in SQL)
    row = db.session.execute(_DOCUMENT_AND_VERSION, {
        "document_id": document_id, "number": number, "sees_all": _sees_all(actor),
        "agent": actor.role == "agent", "user_id": actor.user_id,
    }).first()
    if row is None:
        return None, None
    return row[0], row[1]


def require_writer(actor: Actor) -> None:
    """403 unless `actor` may change the commune's documents."""
    actor.require_writer(_("Votre rôle ne permet pas de modifier les documents."))
