"""GED business rules and every write: ingest, documents, versions, trash, shares, retention.

Atomicity rule: bytes go to the object store first, then the database rows in one transaction;
if that transaction fails the object is deleted at once, and the orphan sweep (tasks.py) removes
whatever a crash left between the two.
"""

from __future__ import annotations

import json
import logging
import os
import re
import unicodedata
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

import sqlalchemy as sa
from flask import current_app, g, has_app_context
from flask_babel import gettext as _
from sqlalchemy.orm import selectinload

from saas.audit.services import record
from saas.auth.actor import Actor
from saas.errors import AppError
from saas.extensions import db
from saas.ged import sniff
from saas.ged.models import (
    DOC_TYPE_LABELS,
    Classification,
    Confidentiality,
    DocStatus,
    DocType,
    Document,
    DocumentAccess,
    DocumentVersion,
    EliminationItem,
    EliminationProposal,
    ExtractionState,
    FinalFate,
    Share,
    Usage,
)
from saas.ged.streams import HeadThenStream, RangedObjectFile, read_head
from saas.modelbase import utcnow
from saas.storage import get_store
from saas.storage.base import ObjectNotFound, StorageError, StoredObject
from saas.tenancy.context import current_tenant_id
from saas.tenancy.models import Tenant
from saas.tenancy.scoping import prescoped

log = logging.getLogger("saas.ged")

DEFAULT_MAX_UPLOAD = 2 * 1024 ** 3
TRASH_DAYS = 30
# Declared sizes of a DOCX/ODT/ZIP beyond which it is refused at upload (see sniff.zip_is_sane).
ZIP_MAX_TOTAL = 1024 ** 3
ZIP_MAX_RATIO = 200
# Multipart framing around the file: a request this much larger than the room left may still fit.
MULTIPART_SLACK = 64 * 1024
MAX_TAGS = 20
MAX_TAG_LENGTH = 50
MAX_METADATA_ENTRIES = 50

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

# The filing plan a commune starts with: short, in the order a secrétaire de mairie files.
DEFAULT_FILING_PLAN: tuple[tuple[str, str, tuple[tuple[str, str], ...]], ...] = (
    ("1", "Administration générale", (("1.1", "Courrier"), ("1.2", "Assurances et contentieux"))),
    ("2", "Finances", (("2.1", "Budget et comptes"), ("2.2", "Factures"), ("2.3", "Fiscalité"))),
    ("3", "Urbanisme", (("3.1", "Autorisations d'urbanisme"), ("3.2", "Documents d'urbanisme"))),
    ("4", "Personnel", (("4.1", "Dossiers des agents"), ("4.2", "Paie"))),
    ("5", "Conseil municipal", (("5.1", "Délibérations"), ("5.2", "Arrêtés"),
                                ("5.3", "Procès-verbaux"))),
    ("6", "Marchés publics", (("6.1", "Consultations"), ("6.2", "Contrats"))),
    ("7", "État civil et élections", ()),
    ("8", "Voirie et patrimoine", (("8.1", "Voirie"), ("8.2", "Bâtiments"))),
)


# -- settings --------------------------------------------------------------------------------


def _setting(name: str, default):
    if has_app_context():
        value = current_app.config.get(f"GED_{name}")
        if value not in (None, ""):
            return value
    value = os.environ.get(f"SAAS_GED_{name}")
    return value if value not in (None, "") else default


def max_upload_bytes() -> int:
    """Largest file accepted (SAAS_GED_MAX_UPLOAD, default 2 GiB)."""
    return int(_setting("MAX_UPLOAD", DEFAULT_MAX_UPLOAD))


def human_size(n: int | None) -> str:
    """French rendering of a byte count (« 1,5 Go »)."""
    if n is None:
        return "—"
    value = float(n)
    for unit in ("octets", "Ko", "Mo", "Go", "To"):
        if value < 1024 or unit == "To":
            if unit == "octets":
                return f"{int(value)} {unit}"
            return f"{value:.1f} {unit}".replace(".", ",")
        value /= 1024
    return f"{n} octets"


# -- small helpers ---------------------------------------------------------------------------


def now() -> datetime:
    return utcnow()


def current_tenant() -> Tenant:
    tid = current_tenant_id()
    tenant = g.get("tenant") if has_app_context() else None
    if tenant is not None and tenant.id == tid:
        return tenant
    found = db.session.get(Tenant, tid) if tid else None
    if found is None:
        raise RuntimeError("GED call outside a commune's context")
    return found


_UNSAFE_NAME_CHARS = re.compile(r'[<>:"|?*]')


def sanitize_filename(name: str | None, fallback: str = "document") -> str:
    """Keep a display-safe file name: no path, no control or bidi characters, 200 chars at most."""
    name = unicodedata.normalize("NFC", name or "")
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    # Category C covers controls (Cc) and format characters (Cf): RTL overrides, zero-width…
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C")
    name = _UNSAFE_NAME_CHARS.sub("_", name)
    name = " ".join(name.split()).strip(" .")
    if not name:
        name = fallback
    if len(name) > 200:
        stem, dot, ext = name.rpartition(".")
        if dot and 0 < len(ext) <= 16:
            name = stem[: 200 - len(ext) - 1].rstrip(" .") + "." + ext
        else:
            name = name[:200]
    return name


def clean_text(value: str | None, limit: int) -> str:
    """Strip control and bidi-override characters and outer spaces; cut at `limit`."""
    value = unicodedata.normalize("NFC", value or "")
    value = "".join(ch for ch in value
                    if ch in "\n\t" or unicodedata.category(ch)[0] != "C")
    return value.strip()[:limit]


def normalise_for_search(text: str) -> str:
    """Lower-case, accents removed: the SQLite fallback's search form."""
    decomposed = unicodedata.normalize("NFKD", text or "")
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch)).lower()


# -- quota -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class QuotaStatus:
    used: int
    quota: int  # 0: no quota

    @property
    def remaining(self) -> int | None:
        return None if not self.quota else max(0, self.quota - self.used)

    @property
    def percent(self) -> int | None:
        return None if not self.quota else min(100, round(100 * self.used / self.quota))


def usage_of(tenant_id: uuid.UUID) -> int:
    row = db.session.get(Usage, tenant_id)
    return row.used_bytes if row else 0


def quota_status(tenant: Tenant) -> QuotaStatus:
    return QuotaStatus(usage_of(tenant.id), int(tenant.quota_bytes or 0))


def _quota_error(tenant: Tenant, incoming: int, used: int | None = None) -> AppError:
    used = usage_of(tenant.id) if used is None else used
    return AppError(
        413, "quota_exceeded",
        _("Quota de stockage dépassé : la commune dispose de %(quota)s, dont %(used)s déjà "
          "utilisés ; ce fichier (%(size)s) ne tient pas dans les %(left)s restants. Videz la "
          "corbeille ou demandez une extension au service informatique de l'intercommunalité.",
          quota=human_size(tenant.quota_bytes), used=human_size(used), size=human_size(incoming),
          left=human_size(max(0, tenant.quota_bytes - used))),
        {"quota_bytes": tenant.quota_bytes, "used_bytes": used, "incoming_bytes": incoming},
    )


def _too_large_error(size: int | None = None) -> AppError:
    limit = max_upload_bytes()
    return AppError(
        413, "file_too_large",
        _("Fichier trop volumineux : %(limit)s au plus par fichier.", limit=human_size(limit)),
        {"max_bytes": limit, **({"size": size} if size is not None else {})},
    )


def check_room(tenant: Tenant, incoming: int, *, slack: int = 0) -> None:
    """Refuse (413) before any byte is written when `incoming` cannot fit the size or quota."""
    if incoming - slack > max_upload_bytes():
        raise _too_large_error(incoming)
    status = quota_status(tenant)
    if status.quota and status.used + incoming - slack > status.quota:
        raise _quota_error(tenant, incoming, status.used)


def _add_usage(tenant: Tenant, delta: int, *, enforce: bool) -> None:
    """Add `delta` bytes to the counter in the open transaction; 413 if the quota would break."""
    ts = now()
    dialect = db.session.get_bind().dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    db.session.execute(insert(Usage).values(tenant_id=tenant.id, used_bytes=0, updated_at=ts)
                       .on_conflict_do_nothing(index_elements=["tenant_id"]))
    stmt = (sa.update(Usage).where(Usage.tenant_id == tenant.id)
            .values(used_bytes=sa.func.greatest(Usage.used_bytes + delta, 0)
                    if dialect == "postgresql" else sa.func.max(Usage.used_bytes + delta, 0),
                    updated_at=ts))
    if enforce and tenant.quota_bytes and delta > 0:
        stmt = stmt.where(Usage.used_bytes + delta <= tenant.quota_bytes)
    result = db.session.execute(stmt.execution_options(synchronize_session=False))
    if result.rowcount != 1:
        raise _quota_error(tenant, delta)


# -- ingest: bytes into the store ----------------------------------------------------------


@dataclass
class Ingested:
    key: str
    stored: StoredObject
    sniffed: sniff.Sniffed
    filename: str

    @property
    def size(self) -> int:
        return self.stored.size


def new_object_key(document_id: uuid.UUID) -> str:
    return f"ged/{document_id}/{uuid.uuid4()}"


def delete_object_quietly(tenant, key: str) -> None:
    try:
        get_store().delete(tenant, key)
    except ObjectNotFound:
        pass
    except StorageError:
        # The orphan sweep will find it: it has no database row.
        log.warning("could not delete object %s after a failed write", key, exc_info=True)


def ingest(tenant: Tenant, stream, *, filename: str | None, document_id: uuid.UUID,
           declared_length: int | None = None) -> Ingested:
    """Sniff, check and stream one file into the commune's bucket; nothing stays on refusal.

    The declared length (Content-Length, tus Upload-Length) is checked before any write; the
    streamed bytes are counted too, and the write aborts once they pass the size or quota.
    """
    if declared_length is not None:
        check_room(tenant, declared_length)
    head = read_head(stream, sniff.HEAD_SIZE)
    safe_name = sanitize_filename(filename)
    try:
        sniffed = sniff.sniff(head, safe_name)
    except sniff.Refused as exc:
        status = 422 if exc.code == "empty_file" else 415
        raise AppError(status, exc.code, exc.reason) from None
    status = quota_status(tenant)
    limit = max_upload_bytes()
    over_quota = False
    if status.remaining is not None and status.remaining < limit:
        limit, over_quota = status.remaining, True

    def on_limit(count: int) -> Exception:
        return _quota_error(tenant, count, status.used) if over_quota else _too_large_error(count)

    body = HeadThenStream(head, stream, limit=limit, on_limit=on_limit)
    del head
    key = new_object_key(document_id)
    store = get_store()
    stored = store.put(tenant, key, body, content_type=sniffed.content_type,
                       metadata={"document": str(document_id)})
    if stored.size == 0:  # pragma: no cover - sniff refuses empty heads first
        delete_object_quietly(tenant, key)
        raise AppError(422, "empty_file", _("Le fichier est vide (0 octet)."))
    if sniffed.is_zip:
        try:
            sniff.zip_is_sane(RangedObjectFile(store, tenant, key, stored.size, stored.version_id),
                              max_total=ZIP_MAX_TOTAL, max_ratio=ZIP_MAX_RATIO)
        except sniff.Refused as exc:
            delete_object_quietly(tenant, key)
            raise AppError(422, exc.code, exc.reason) from None
        except BaseException:
            delete_object_quietly(tenant, key)
            raise
    return Ingested(key=key, stored=stored, sniffed=sniffed, filename=safe_name)


# -- fields ----------------------------------------------------------------------------------


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


def find_classification(value: str) -> Classification | None:
    """A classification of the current commune by code ("5.1") or id."""
    value = (value or "").strip()
    if not value:
        return None
    try:
        as_id = uuid.UUID(value)
    except ValueError:
        as_id = None
    stmt = sa.select(Classification)
    stmt = stmt.where(Classification.id == as_id) if as_id else stmt.where(Classification.code == value)
    return db.session.execute(stmt).scalar_one_or_none()


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
    access = form.getlist("access") if hasattr(form, "getlist") else form.get("access")
    if access:
        if isinstance(access, str):
            access = [a for a in re.split(r"[,\s]+", access) if a]
        f.access_user_ids = _resolve_people(access, f.problems)
    return f


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


def raise_problems(problems: dict[str, str]) -> None:
    if problems:
        raise AppError(422, "validation_error", _("Les données envoyées sont invalides."),
                       {"fields": problems})


# -- permissions -----------------------------------------------------------------------------


def visible_clause(actor: Actor):
    """SQL condition: the documents `actor` may see in their own commune (trash excluded)."""
    if actor.role == "system":
        return sa.true()
    listed = sa.exists().where(DocumentAccess.document_id == Document.id,
                               DocumentAccess.user_id == actor.user_id)
    if actor.role in ("admin", "agent"):
        return sa.or_(Document.confidentiality == Confidentiality.ALL_AGENTS,
                      Document.created_by == actor.user_id, listed)
    # Élus see the documents they are named on.
    return sa.or_(listed, sa.and_(Document.created_by == actor.user_id,
                                  Document.created_by.is_not(None)))


def can_see(document: Document, actor: Actor) -> bool:
    if actor.role == "system":
        return True
    if actor.role in ("admin", "agent") and document.confidentiality == Confidentiality.ALL_AGENTS:
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


def require_writer(actor: Actor) -> None:
    if not actor.can_write:
        raise AppError(403, "forbidden", _("Votre rôle ne permet pas de modifier les documents."))


def require_admin(actor: Actor) -> None:
    if not actor.is_admin:
        raise AppError(403, "forbidden",
                       _("Cette action est réservée aux administrateurs de la commune."))


# -- filing plan -------------------------------------------------------------------------------


def ensure_filing_plan() -> bool:
    """Seed the current commune's filing plan with the default one if it has none; True if seeded."""
    exists = db.session.execute(sa.select(Classification.id).limit(1)).first()
    if exists:
        return False
    for code, label, children in DEFAULT_FILING_PLAN:
        root = Classification(id=uuid.uuid4(), code=code, label=label, parent_id=None)
        root.path = f"/{root.id}/"
        db.session.add(root)
        for child_code, child_label in children:
            child = Classification(id=uuid.uuid4(), code=child_code, label=child_label,
                                   parent_id=root.id, path=f"{root.path}")
            child.path = f"{root.path}{child.id}/"
            db.session.add(child)
    db.session.flush()
    return True


def filing_plan() -> list[Classification]:
    """The commune's classification nodes, in code order (seeded on first use)."""
    if ensure_filing_plan():
        db.session.commit()
    nodes = db.session.execute(sa.select(Classification)).scalars().all()
    return sorted(nodes, key=lambda n: [int(p) if p.isdigit() else p for p in n.code.split(".")])


def add_classification(code: str, label: str, parent: Classification | None) -> Classification:
    """Add a node to the filing plan (commune admins)."""
    code, label = clean_text(code, 20), clean_text(label, 200)
    problems = {}
    if not re.fullmatch(r"[0-9A-Za-z]+(\.[0-9A-Za-z]+)*", code or ""):
        problems["code"] = _("code de la forme 5.1.2")
    if not label:
        problems["label"] = _("ne doit pas être vide")
    if not problems and find_classification(code) is not None:
        problems["code"] = _("ce code existe déjà")
    raise_problems(problems)
    node = Classification(id=uuid.uuid4(), code=code, label=label,
                          parent_id=parent.id if parent else None)
    node.path = f"{parent.path if parent else '/'}{node.id}/"
    db.session.add(node)
    record("ged.classification.create", f"classification:{node.id}", {"code": code, "label": label})
    db.session.commit()
    return node


# -- search index ----------------------------------------------------------------------------


def _index_parts(document: Document) -> tuple[str, str]:
    meta_bits = [*(document.tags or []), *(str(v) for v in (document.metadata_ or {}).values()),
                 *(str(k) for k in (document.metadata_ or {})), document.author or "",
                 str(DOC_TYPE_LABELS.get(document.doc_type, document.doc_type))]
    if document.classification is not None:
        meta_bits += [document.classification.code, document.classification.label]
    current = document.current_version
    if current is not None:
        meta_bits.append(current.filename)
    return document.title or "", " ".join(meta_bits)


INDEXED_TEXT_CHARS = 200_000


def refresh_search(document: Document) -> None:
    """Recompute the document's index entry (PostgreSQL) or normalised text (SQLite)."""
    title, meta = _index_parts(document)
    db.session.flush()
    if _postgres():
        # ged_search is under RLS for this role: its WITH CHECK keeps the row in this commune.
        db.session.execute(sa.text("""
            INSERT INTO ged_search (document_id, tenant_id, document_date, head_vector, search_vector)
            SELECT d.id, d.tenant_id, d.document_date, h.v,
                   h.v || setweight(to_tsvector('fr_unaccent', left(coalesce((
                        SELECT v.extracted_text FROM ged_versions v
                         WHERE v.document_id = d.id AND v.number = d.current_version_number), ''),
                        :limit)), 'D')
              FROM ged_documents d,
                   LATERAL (SELECT setweight(to_tsvector('fr_unaccent', :title), 'A')
                                || setweight(to_tsvector('fr_unaccent', :meta), 'B') AS v) h
             WHERE d.id = :id
            ON CONFLICT (document_id) DO UPDATE SET document_date = EXCLUDED.document_date,
                head_vector = EXCLUDED.head_vector, search_vector = EXCLUDED.search_vector
        """), {"title": title, "meta": meta, "id": document.id, "limit": INDEXED_TEXT_CHARS})
        return
    body = db.session.execute(
        sa.select(DocumentVersion.extracted_text).where(
            DocumentVersion.document_id == document.id,
            DocumentVersion.number == document.current_version_number)
    ).scalar_one_or_none() or ""
    document.search_text = normalise_for_search(f"{title}\n{meta}\n{body[:INDEXED_TEXT_CHARS]}")


@dataclass
class SearchParams:
    q: str = ""
    doc_type: str | None = None
    tag: str | None = None
    classification: Classification | None = None
    date_from: date | None = None
    date_to: date | None = None


def parse_search(args) -> SearchParams:
    """Read ?q=&type=&tag=&classification=&date_from=&date_to= (422 naming the bad one)."""
    params = SearchParams(q=clean_text(args.get("q"), 500))
    problems: dict[str, str] = {}
    doc_type = args.get("type") or None
    if doc_type and doc_type not in set(DocType):
        problems["type"] = _("doit valoir l'une des valeurs : %(v)s", v=", ".join(DocType))
    params.doc_type = doc_type
    params.tag = clean_text(args.get("tag"), MAX_TAG_LENGTH) or None
    code = args.get("classification")
    if code:
        ensure_filing_plan()
        params.classification = find_classification(code)
        if params.classification is None:
            problems["classification"] = _("classement inconnu dans le plan de cette commune")
    for name in ("date_from", "date_to"):
        raw = args.get(name)
        if raw:
            try:
                setattr(params, name, date.fromisoformat(raw))
            except ValueError:
                problems[name] = _("doit être une date AAAA-MM-JJ")
    raise_problems(problems)
    return params


# Counting stops here: beyond, `total` is a lower bound (SearchPage.total_is_lower_bound) and
# the page says "plus de 200 documents". Every counted match is a row joined under RLS: on
# the bench's 60,000-document commune a cap of 1,000 cost 15 ms more per common-word search
# (p50 48 -> 34 ms) for a figure nobody pages through; asking for a page past the cap still
# counts up to that page.
SEARCH_COUNT_CAP = 200


# Candidates ged_search_top() keeps for a page: what the page and the count need, plus room
# for the ones the caller does not see (trash, restricted documents).
def _candidates(needed: int) -> int:
    return needed + needed // 4 + 50


_ALL_CANDIDATES = 2**31 - 1


def _postgres() -> bool:
    return db.session.get_bind().dialect.name == "postgresql"


def _search_select(params: SearchParams, actor: Actor, *columns,
                   candidates: int = _ALL_CANDIDATES) -> sa.Select:
    """Select `columns` of the visible documents matching `params`, in result order.

    With a full-text query on PostgreSQL, only the best `candidates` matches are considered,
    and the select has one more column: how many ged_search_top() returned.
    """
    stmt = sa.select(*columns).select_from(Document).where(
        Document.deleted_at.is_(None), visible_clause(actor))
    if params.doc_type:
        stmt = stmt.where(Document.doc_type == params.doc_type)
    if params.classification is not None:
        stmt = stmt.where(Document.classification_path.like(params.classification.path + "%"))
    if params.date_from:
        stmt = stmt.where(Document.document_date >= params.date_from)
    if params.date_to:
        stmt = stmt.where(Document.document_date <= params.date_to)
    postgres = _postgres()
    if params.tag:
        if postgres:
            stmt = stmt.where(Document.tags.op("@>")(sa.func.jsonb_build_array(params.tag)))
        else:
            stmt = stmt.where(sa.exists(
                sa.select(1).select_from(sa.func.json_each(Document.tags).table_valued("value"))
                .where(sa.column("value") == params.tag)))
    if params.q:
        if postgres:
            # The matches come from ged_search_top() (GIN index, this commune only, see
            # migrations 0003 and 0004), ranked there: title and metadata first (ts_rank of
            # every match's full text costs too much on common words), then the newest; it
            # keeps the best `candidates` (a top-N sort). The join to ged_documents (RLS,
            # trash, visibility, filters) then reads that many rows at most.
            query = sa.func.websearch_to_tsquery(sa.literal_column("'fr_unaccent'::regconfig"),
                                                 params.q)
            limit = sa.bindparam("search_candidates", candidates, type_=sa.Integer)
            hits = sa.func.ged_search_top(query, limit).table_valued(
                sa.column("document_id", sa.Uuid), sa.column("head_rank", sa.Float),
                sa.column("document_date", sa.Date), name="matches")
            ranked = sa.select(hits.c.document_id, hits.c.head_rank, hits.c.document_date) \
                .cte("ranked").prefix_with("MATERIALIZED", dialect="postgresql")
            returned = sa.select(sa.func.count()).select_from(ranked).scalar_subquery()
            return stmt.add_columns(returned.label("candidates")) \
                .join(ranked, ranked.c.document_id == Document.id) \
                .order_by(ranked.c.head_rank.desc(), ranked.c.document_date.desc(),
                          ranked.c.document_id)
        for term in normalise_for_search(params.q).split():
            term = term.strip("\"'+-")
            if term:
                escaped = term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
                stmt = stmt.where(Document.search_text.like(f"%{escaped}%", escape="\\"))
    return stmt.order_by(Document.document_date.desc(), Document.created_at.desc(), Document.id)


@dataclass
class SearchPage:
    """One page of results. `total` is exact unless `total_is_lower_bound` (more match)."""

    items: list[Document]
    total: int
    total_is_lower_bound: bool
    page: int
    per_page: int


def search_page(params: SearchParams, actor: Actor, *, page: int = 1, per_page: int = 20) -> SearchPage:
    """Run a search one page at a time, counting matches up to SEARCH_COUNT_CAP only.

    An exact count would visit every match (most of the commune for a common word); past the
    cap, or past the requested page, the count stops and `total` says "at least".
    """
    page, per_page = max(1, page), max(1, per_page)
    offset = (page - 1) * per_page
    limit = max(SEARCH_COUNT_CAP, offset + per_page) + 1
    candidates = _candidates(limit)
    select = _search_select(params, actor, Document.id, candidates=candidates).limit(limit)
    rows = db.session.execute(select).all()
    if params.q and _postgres() and len(rows) < limit and (not rows or rows[0][1] >= candidates):
        # Fewer visible than needed among the best `candidates` matches, and there were more
        # matches (or none was visible, which hides how many there were): look at them all.
        rows = db.session.execute(_search_select(params, actor, Document.id).limit(limit)).all()
    ids = [row[0] for row in rows]
    more = len(ids) == limit
    wanted = ids[offset: offset + per_page]
    items: list[Document] = []
    if wanted:
        found = {d.id: d for d in db.session.execute(
            sa.select(Document).where(Document.id.in_(wanted))
            .options(selectinload(Document.versions))).scalars()}
        items = [found[i] for i in wanted if i in found]
    return SearchPage(items, limit - 1 if more else len(ids), more, page, per_page)


# -- documents and versions ------------------------------------------------------------------


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
    if f.legal_hold is not None:
        document.legal_hold = f.legal_hold


def _set_access(document: Document, user_ids: list[uuid.UUID] | None) -> None:
    if user_ids is None:
        return
    db.session.execute(sa.delete(DocumentAccess).where(DocumentAccess.document_id == document.id))
    for user_id in user_ids:
        db.session.add(DocumentAccess(document_id=document.id, user_id=user_id))


def _new_version(document: Document, ingested: Ingested, actor: Actor, number: int) -> DocumentVersion:
    from saas.ged import extract

    state = (ExtractionState.PENDING if extract.extractable(ingested.sniffed.content_type)
             else ExtractionState.SKIPPED)
    return DocumentVersion(
        id=uuid.uuid4(), document_id=document.id, number=number, object_key=ingested.key,
        object_version_id=ingested.stored.version_id, size=ingested.stored.size,
        sha256=ingested.stored.sha256, content_type=ingested.sniffed.content_type,
        filename=ingested.filename, created_by=actor.user_id, created_at=now(),
        extraction_state=state,
    )


def _enqueue_extraction(version: DocumentVersion) -> None:
    if version.extraction_state != ExtractionState.PENDING:
        return
    from saas.ged.tasks import enqueue_extraction

    enqueue_extraction(version)


def _commit_or_delete_object(tenant: Tenant, key: str) -> None:
    try:
        db.session.commit()
    except BaseException:
        db.session.rollback()
        delete_object_quietly(tenant, key)
        raise


def create_document(tenant: Tenant, stream, *, filename: str | None, fields: DocumentFields,
                    actor: Actor, declared_length: int | None = None,
                    document_id: uuid.UUID | None = None,
                    ingested: Ingested | None = None) -> Document:
    """Upload a new document: bytes first, then the rows, usage, audit and extraction job."""
    require_writer(actor)
    raise_problems(fields.problems)
    document_id = document_id or uuid.uuid4()
    if ingested is None:
        ingested = ingest(tenant, stream, filename=filename, document_id=document_id,
                          declared_length=declared_length)
    try:
        return _create_rows(tenant, document_id, ingested, fields, actor)
    except BaseException:
        db.session.rollback()
        delete_object_quietly(tenant, ingested.key)
        raise


def _create_rows(tenant: Tenant, document_id: uuid.UUID, ingested: Ingested,
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
    _add_usage(tenant, ingested.size, enforce=True)
    refresh_search(document)
    record("ged.upload", f"document:{document.id}", {
        "title": document.title, "version": 1, "sha256": version.sha256, "size": version.size,
        "content_type": version.content_type, "filename": version.filename})
    _enqueue_extraction(version)
    _commit_or_delete_object(tenant, ingested.key)
    return document


def add_version(tenant: Tenant, document: Document, stream, *, filename: str | None,
                actor: Actor, declared_length: int | None = None,
                ingested: Ingested | None = None) -> DocumentVersion:
    """Add a version to a document: every earlier version stays readable."""
    require_writer(actor)
    if ingested is None:
        ingested = ingest(tenant, stream, filename=filename, document_id=document.id,
                          declared_length=declared_length)
    try:
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
        _add_usage(tenant, ingested.size, enforce=True)
        refresh_search(locked)
        record("ged.version", f"document:{locked.id}", {
            "version": number, "sha256": version.sha256, "size": version.size,
            "content_type": version.content_type, "filename": version.filename})
        _enqueue_extraction(version)
        _commit_or_delete_object(tenant, ingested.key)
        return version
    except BaseException:
        db.session.rollback()
        delete_object_quietly(tenant, ingested.key)
        raise


def update_document(document: Document, fields: DocumentFields, actor: Actor) -> Document:
    """Change a document's description (title, type, classification, retention…)."""
    require_writer(actor)
    raise_problems(fields.problems)
    if fields.legal_hold is not None and fields.legal_hold != document.legal_hold:
        require_admin(actor)
    before = {"title": document.title, "type": document.doc_type,
              "confidentiality": document.confidentiality, "legal_hold": document.legal_hold}
    _apply_fields(document, fields, creating=False)
    _set_access(document, fields.access_user_ids)
    refresh_search(document)
    record("ged.update", f"document:{document.id}", {"before": before, "after": {
        "title": document.title, "type": document.doc_type,
        "confidentiality": document.confidentiality, "legal_hold": document.legal_hold}})
    db.session.commit()
    return document


# What a download needs, in one query: the document (visible, not in the trash) and one of its
# versions (the current one when `number` is NULL). Prescoped: downloads are a hot path.
_DOCUMENT_AND_VERSION = prescoped(
    sa.select(Document, DocumentVersion)
    .outerjoin(DocumentVersion, sa.and_(
        DocumentVersion.document_id == Document.id,
        DocumentVersion.number == sa.func.coalesce(sa.bindparam("number", type_=sa.Integer),
                                                   Document.current_version_number)))
    .where(Document.id == sa.bindparam("document_id", type_=sa.Uuid),
           Document.deleted_at.is_(None))
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
    row = db.session.execute(_DOCUMENT_AND_VERSION,
                             {"document_id": document_id, "number": number}).first()
    if row is None or not can_see(row[0], actor):
        return None, None
    return row[0], row[1]


# -- retention, trash ------------------------------------------------------------------------


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


def delete_document(document: Document, actor: Actor) -> None:
    """Move to the trash (restorable for 30 days); 409 with the reason when retention forbids it."""
    require_writer(actor)
    reason = retention_block(document)
    if reason:
        raise AppError(409, "under_retention", reason)
    document.deleted_at = now()
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


def destroy_document(tenant: Tenant, document: Document, *, action: str, data: dict | None = None) -> None:
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
    _add_usage(tenant, -size, enforce=False)
    db.session.commit()
    # Rows first: an object without a row is swept later, a row without its object is a loss.
    for v in versions:
        delete_object_quietly(tenant, v.object_key)


def purge_trash(tenant: Tenant, *, older_than_days: int = TRASH_DAYS) -> int:
    """Erase documents that stayed in the trash longer than the delay; return how many."""
    limit = now() - timedelta(days=older_than_days)
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
    proposal = EliminationProposal(id=uuid.uuid4(), state="proposed", created_at=now())
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


def decide_proposal(tenant: Tenant, proposal: EliminationProposal, decisions: dict[uuid.UUID, str],
                    actor: Actor) -> int:
    """Approve a bordereau: destroy the items marked `destroy`, keep the others; return destroyed."""
    require_admin(actor)
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
    proposal.decided_at = now()
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
    require_admin(actor)
    if proposal.state != "proposed":
        raise AppError(409, "already_decided", _("Ce bordereau a déjà été traité."))
    proposal.state = "rejected"
    proposal.decided_at = now()
    proposal.decided_by = actor.user_id
    for item in proposal.items:
        item.decision = "keep"
    record("ged.elimination.reject", f"proposal:{proposal.id}", {})
    db.session.commit()


# -- shares ----------------------------------------------------------------------------------


def share_targets() -> list[Tenant]:
    """The other active communes and the intercommunality, to share with."""
    return db.session.execute(
        sa.select(Tenant).where(Tenant.id != current_tenant_id(), Tenant.status == "active")
        .order_by(Tenant.kind.desc(), Tenant.name)).scalars().all()


def create_share(*, target_slug: str, actor: Actor, document: Document | None = None,
                 classification: Classification | None = None, note: str | None = None) -> Share:
    """Share one document or one folder read-only with another commune or the intercommunality."""
    require_admin(actor)
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
        note=clean_text(note, 500) or None, created_at=now(), created_by=actor.user_id)
    db.session.add(share)
    record("ged.share", f"share:{share.id}", {
        "target": target.slug, "document": str(document.id) if document else None,
        "classification": classification.code if classification else None})
    db.session.commit()
    return share


def revoke_share(share: Share, actor: Actor) -> None:
    """End a share now: the target loses access on its next request."""
    require_admin(actor)
    if share.revoked_at is not None:
        return
    share.revoked_at = now()
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
# current commune, never through the ordinary scoped accessors above.

def _live_share_clause(document_cls=Document):
    tid = current_tenant_id()
    return sa.exists().where(
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


# -- usage reports ---------------------------------------------------------------------------


def usage_report() -> list[tuple[Tenant, int]]:
    """Every commune with its GED usage (for the intercommunality)."""
    rows = db.session.execute(
        sa.select(Tenant, sa.func.coalesce(Usage.used_bytes, 0))
        .outerjoin(Usage, Usage.tenant_id == Tenant.id).order_by(Tenant.name)).all()
    return [(tenant, int(used)) for tenant, used in rows]

