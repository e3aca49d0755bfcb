"""Full-text search: the index entry of a document, parsed queries, pages of results."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from datetime import date

import sqlalchemy as sa
from flask_babel import gettext as _
from sqlalchemy.orm import selectinload

from saas.auth.actor import Actor
from saas.extensions import db
from saas.ged.models import DOC_TYPE_LABELS, Classification, DocType, Document, DocumentVersion
from saas.ged.services.access import visible_clause
from saas.ged.services.classification import ensure_filing_plan, find_classification
from saas.ged.services.fields import MAX_TAG_LENGTH
from saas.ged.services.validation import clean_text, raise_problems


def normalise_for_search(text: str) -> str:
    """Lower-case, accents removed: the SQLite fallback's search form."""
    decomposed = unicodedata.normalize("NFKD", text or "")
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch)).lower()


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
