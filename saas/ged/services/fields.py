"""Document fields as people and programs send them (form, JSON, tus metadata), parsed and checked."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date

import sqlalchemy as sa
from flask_babel import gettext as _

from saas.extensions import db
from saas.ged.models import Classification, Confidentiality, DocStatus, DocType, FinalFate
from saas.ged.services.classification import ensure_filing_plan, find_classification
from saas.ged.services.validation import clean_text

MAX_TAGS = 20


MAX_TAG_LENGTH = 50


MAX_METADATA_ENTRIES = 50

# A document's date: from the oldest papers a commune may file to a sensible future. Beyond,
# it is a typing error (and a retention period added to it would leave the calendar).
DOCUMENT_DATE_MIN = date(1800, 1, 1)
DOCUMENT_DATE_MAX = date(2200, 12, 31)


@dataclass
class DocumentFields:
    title: str | None = None
    doc_type: str | None = None
    classification: Classification | None = None
    classification_given: bool = False
    tags: list[str] | None = None
    metadata: dict[str, str] | None = None
    author: str | None = None
    document_date: date | None = None
    confidentiality: str | None = None
    retention_years: int | None = None
    retention_given: bool = False
    final_fate: str | None = None
    status: str | None = None
    legal_hold: bool | None = None
    access_user_ids: list[uuid.UUID] | None = None
    problems: dict[str, str] = field(default_factory=dict)


def _parse_tags(raw) -> list[str]:
    if raw is None:
        return []
    if isinstance(raw, str):
        text = raw.strip()
        if text.startswith("["):
            try:
                raw = json.loads(text)
            except ValueError:
                raise ValueError(_("liste JSON illisible")) from None
        else:
            raw = text.split(",")
    if not isinstance(raw, list) or not all(isinstance(t, str) for t in raw):
        raise ValueError(_("doit être une liste d'étiquettes"))
    tags: list[str] = []
    for tag in raw:
        tag = clean_text(tag, 1000)
        if not tag:
            continue
        if len(tag) > MAX_TAG_LENGTH:
            raise ValueError(_("une étiquette compte %(n)d caractères au plus", n=MAX_TAG_LENGTH))
        if tag not in tags:
            tags.append(tag)
    if len(tags) > MAX_TAGS:
        raise ValueError(_("%(n)d étiquettes au plus", n=MAX_TAGS))
    return tags


def _parse_metadata(raw) -> dict[str, str]:
    if raw in (None, ""):
        return {}
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError:
            raise ValueError(_("objet JSON illisible")) from None
    if not isinstance(raw, dict):
        raise ValueError(_("doit être un objet JSON {\"clé\": \"valeur\"}"))
    if len(raw) > MAX_METADATA_ENTRIES:
        raise ValueError(_("%(n)d entrées au plus", n=MAX_METADATA_ENTRIES))
    result = {}
    for key, value in raw.items():
        if not isinstance(key, str) or not isinstance(value, str | int | float | bool):
            raise ValueError(_("les clés et valeurs doivent être du texte"))
        key = clean_text(key, 64)
        if not key:
            raise ValueError(_("une clé est vide"))
        result[key] = clean_text(str(value), 1000)
    return result


def parse_fields(form, *, partial: bool = False) -> DocumentFields:
    """Read and check document fields from a form or a JSON object (problems: field → message)."""
    f = DocumentFields()

    def get(name):
        if hasattr(form, "getlist") and not isinstance(form, dict):
            return form.get(name)
        return form.get(name)

    title = get("title")
    if title is not None:
        f.title = clean_text(title, 1000)
        if len(f.title) > 300:
            f.problems["title"] = _("300 caractères au plus")
        elif not f.title and not partial:
            f.title = None
        elif not f.title:
            f.problems["title"] = _("ne doit pas être vide")
    doc_type = get("type")
    if doc_type not in (None, ""):
        if doc_type not in set(DocType):
            f.problems["type"] = _("doit valoir l'une des valeurs : %(v)s", v=", ".join(DocType))
        else:
            f.doc_type = doc_type
    classification = get("classification")
    if classification is not None:
        f.classification_given = True
        if classification.strip():
            ensure_filing_plan()
            f.classification = find_classification(classification)
            if f.classification is None:
                f.problems["classification"] = _("classement inconnu dans le plan de cette commune")
    try:
        tags = get("tags")
        if tags is not None:
            f.tags = _parse_tags(tags)
    except ValueError as exc:
        f.problems["tags"] = str(exc)
    try:
        metadata = get("metadata")
        if metadata is not None:
            f.metadata = _parse_metadata(metadata)
    except ValueError as exc:
        f.problems["metadata"] = str(exc)
    author = get("author")
    if author is not None:
        f.author = clean_text(author, 200) or None
    doc_date = get("document_date")
    if doc_date not in (None, ""):
        try:
            f.document_date = date.fromisoformat(str(doc_date))
        except ValueError:
            f.problems["document_date"] = _("doit être une date AAAA-MM-JJ")
        else:
            if not DOCUMENT_DATE_MIN <= f.document_date <= DOCUMENT_DATE_MAX:
                f.document_date = None
                f.problems["document_date"] = _(
                    "doit être comprise entre le %(a)s et le %(b)s",
                    a=DOCUMENT_DATE_MIN.strftime("%d/%m/%Y"), b=DOCUMENT_DATE_MAX.strftime("%d/%m/%Y"))
    confidentiality = get("confidentiality")
    if confidentiality not in (None, ""):
        if confidentiality not in set(Confidentiality):
            f.problems["confidentiality"] = _("doit valoir all_agents ou restricted")
        else:
            f.confidentiality = confidentiality
    retention = get("retention_years")
    if retention is not None:
        f.retention_given = True
        if str(retention).strip() == "":
            f.retention_years = None
        else:
            try:
                f.retention_years = int(str(retention))
                if not 0 <= f.retention_years <= 200:
                    raise ValueError
            except ValueError:
                f.problems["retention_years"] = _("doit être un nombre d'années entre 0 et 200")
    fate = get("final_fate")
    if fate not in (None, ""):
        if fate not in set(FinalFate):
            f.problems["final_fate"] = _("doit valoir conserver, detruire ou trier")
        else:
            f.final_fate = fate
    status = get("status")
    if status not in (None, ""):
        if status not in set(DocStatus):
            f.problems["status"] = _("doit valoir draft, final ou archived")
        else:
            f.status = status
    hold = get("legal_hold")
    if hold not in (None, ""):
        f.legal_hold = str(hold).lower() in ("1", "true", "on", "oui", "yes")
    # A form field absent → unchanged (None); present, even empty → that list ("nobody").
    access = (form.getlist("access") or None) if hasattr(form, "getlist") else form.get("access")
    if access is not None:
        # Given (even empty: "nobody"): every entry may hold several addresses separated by
        # commas or spaces; blank entries (an untouched form field) name nobody.
        entries = [access] if isinstance(access, str) else list(access)
        if not all(isinstance(a, str) for a in entries):
            f.problems["access"] = _("doit être une liste d'adresses électroniques")
        else:
            names = [a for entry in entries for a in re.split(r"[,;\s]+", entry) if a]
            f.access_user_ids = _resolve_people(names, f.problems)
    return f


def designated_people(document_id: uuid.UUID) -> list:
    """The people named on a document (rows with id, email, name), by e-mail."""
    from saas.auth.models import User
    from saas.ged.models import DocumentAccess

    return list(db.session.execute(
        sa.select(User.id, User.email, User.name)
        .join(DocumentAccess, DocumentAccess.user_id == User.id)
        .where(DocumentAccess.document_id == document_id).order_by(User.email)))


def _resolve_people(values: Iterable[str], problems: dict[str, str]) -> list[uuid.UUID]:
    """Members of the current commune named by e-mail or id."""
    from saas.auth.models import Membership, User

    ids = []
    for value in values:
        value = value.strip()
        cond = User.email == value.lower()
        try:
            cond = sa.or_(cond, User.id == uuid.UUID(value))
        except ValueError:
            pass
        user_id = db.session.execute(
            sa.select(User.id).join(Membership, Membership.user_id == User.id).where(cond)
        ).scalar_one_or_none()
        if user_id is None:
            problems["access"] = _("« %(v)s » n'est pas membre de cette commune", v=value[:80])
        elif user_id not in ids:
            ids.append(user_id)
    return ids
