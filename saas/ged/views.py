"""The GED's web pages on a commune's host (/ged): browse, search, upload, versions, trash, shares."""

from __future__ import annotations

import math
import uuid

import sqlalchemy as sa
from flask import (
    Blueprint,
    abort,
    flash,
    g,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import gettext as _
from flask_wtf.csrf import ValidationError, validate_csrf

from saas.api.helpers import MAX_PAGE, positive_int
from saas.audit.services import record
from saas.auth.actor import current_actor
from saas.config import current_settings
from saas.errors import AppError
from saas.extensions import csrf, db
from saas.files.serve import serve
from saas.ged.models import (
    CONFIDENTIALITY_LABELS,
    DOC_TYPE_LABELS,
    FATE_LABELS,
    STATUS_LABELS,
    DocType,
    EliminationProposal,
)
from saas.ged.services import (
    access,
    documents,
    extraction,
    fields,
    intake,
    quota,
    retention,
    search,
)
from saas.ged.services import classification as filing
from saas.ged.services import shares as sharing
from saas.hostguards import member_required
from saas.jobs import find_job
from saas.tenancy.current import current_tenant
from saas.tenancy.models import Tenant

bp = Blueprint("ged", __name__, url_prefix="/ged")

PER_PAGE = 25


@bp.app_template_global("ged_size")
def ged_size(n):
    return quota.human_size(n)


@bp.context_processor
def _labels():
    return {"DOC_TYPE_LABELS": DOC_TYPE_LABELS, "FATE_LABELS": FATE_LABELS,
            "STATUS_LABELS": STATUS_LABELS, "CONFIDENTIALITY_LABELS": CONFIDENTIALITY_LABELS,
            "DOC_TYPES": list(DocType), "ged_actor": current_actor() if g.get("membership") else None}


def _document_or_404(document_id, *, include_trash: bool = False):
    document = access.get_document(document_id, current_actor(), include_trash=include_trash)
    if document is None:
        abort(404)
    return document


def _page() -> int:
    """?page= (1 when absent or unreadable, the last possible page when too far)."""
    raw = request.args.get("page", "1")
    if raw.isascii() and raw.isdigit() and len(raw) > len(str(MAX_PAGE)):
        return MAX_PAGE
    return min(positive_int(raw) or 1, MAX_PAGE)


def _version() -> int | None:
    """?version= (None, i.e. the current version, when absent or unreadable)."""
    return positive_int(request.args.get("version"))


def _paged(stmt):
    page = _page()
    total = db.session.execute(
        stmt.order_by(None).with_only_columns(sa.func.count(), maintain_column_froms=True)
    ).scalar_one()
    items = db.session.execute(stmt.limit(PER_PAGE).offset((page - 1) * PER_PAGE)).scalars().all()
    return items, total, page, max(1, math.ceil(total / PER_PAGE))


# -- browse and search -------------------------------------------------------------------------


@bp.get("/")
@member_required
def index():
    nodes = filing.filing_plan()
    error = None
    try:
        params = search.parse_search(request.args)
    except AppError as exc:
        params, error = search.SearchParams(), exc
    result = search.search_page(params, current_actor(), page=_page(), per_page=PER_PAGE)
    total, page = result.total, result.page
    # Past the count cap there is at least one more page than counted.
    pages = max(1, math.ceil(total / PER_PAGE)) + (1 if result.total_is_lower_bound else 0)
    usage = quota.quota_status(current_tenant())
    report = quota.usage_report() if current_tenant().kind == "epci" else None
    status = 422 if error else 200
    return render_template("ged/index.html", nodes=nodes, params=params, documents=result.items,
                           total=total, total_is_lower_bound=result.total_is_lower_bound,
                           page=page, pages=pages, usage=usage, error=error,
                           report=report, args=request.args), status


# -- upload ------------------------------------------------------------------------------------


def _csrf_check(token):
    try:
        validate_csrf(token)
    except ValidationError:
        raise AppError(400, "csrf_failed", _("Le formulaire a expiré ou n'est pas valide : "
                                             "rechargez la page et recommencez.")) from None


@bp.get("/deposer")
@member_required
def upload_form():
    if not current_actor().can_write:
        abort(403)
    return render_template("ged/upload.html", nodes=filing.filing_plan(), error=None,
                           usage=quota.quota_status(current_tenant()),
                           max_upload=current_settings().ged.max_upload,
                           selected=request.args.get("classification", ""))


@bp.post("/deposer")
@csrf.exempt  # checked by hand before the file is stored: Flask-WTF would spool the whole body
@member_required
def upload():
    try:
        document = intake.receive_upload(current_tenant(), request, actor=current_actor(),
                                         csrf_check=_csrf_check)
    except AppError as exc:
        return render_template("ged/upload.html", nodes=filing.filing_plan(), error=exc,
                               usage=quota.quota_status(current_tenant()),
                               max_upload=current_settings().ged.max_upload, selected=""), exc.status
    flash(_("Document « %(t)s » déposé.", t=document.title), "success")
    return redirect(url_for("ged.document", document_id=document.id), 303)


# -- one document ----------------------------------------------------------------------------


@bp.get("/documents/<uuid:document_id>")
@member_required
def document(document_id: uuid.UUID, error: AppError | None = None, status: int = 200):
    doc = _document_or_404(document_id)
    outgoing = []
    targets = []
    if current_actor().is_admin:
        outgoing = [s for s in sharing.outgoing_shares() if s.document_id == doc.id]
        targets = sharing.share_targets()
    current = doc.current_version
    indexing = None
    if current is not None and current.extraction_state == "pending":
        indexing = find_job(extraction.EXTRACT_KIND, f"extract:{current.id}")
    return render_template("ged/document.html", doc=doc, nodes=filing.filing_plan(),
                           versions=sorted(doc.versions, key=lambda v: -v.number),
                           current=current, shares=outgoing, targets=targets, indexing=indexing,
                           retention_block=retention.retention_block(doc), error=error,
                           people=fields.designated_people(doc.id),
                           cancel_block=documents.cancel_block(doc, current_actor()),
                           cancel_hours=current_settings().ged.cancel_window_hours), status


@bp.get("/documents/<uuid:document_id>/contenu")
@member_required
def content(document_id: uuid.UUID):
    number = _version()
    doc, version = access.get_document_version(document_id, number, current_actor())
    if version is None:
        abort(404)
    if doc.confidentiality != "all_agents":
        record("ged.download", f"document:{doc.id}", {"version": version.number})
        db.session.commit()
    try:
        return serve(current_tenant(), documents.served_file(version),
                     inline=request.args.get("inline") == "1")
    except AppError as exc:
        abort(exc.status, description=exc.message)


@bp.post("/documents/<uuid:document_id>/versions")
@csrf.exempt  # checked by hand before the file is stored
@member_required
def new_version(document_id: uuid.UUID):
    doc = _document_or_404(document_id)
    try:
        version = intake.receive_upload(current_tenant(), request, document=doc,
                                        actor=current_actor(), csrf_check=_csrf_check)
    except AppError as exc:
        db.session.rollback()
        return document(document_id, error=exc, status=exc.status)
    flash(_("Version %(n)d ajoutée.", n=version.number), "success")
    return redirect(url_for("ged.document", document_id=document_id), 303)


@bp.post("/documents/<uuid:document_id>/modifier")
@member_required
def edit(document_id: uuid.UUID):
    doc = _document_or_404(document_id)
    form = request.form
    described = fields.parse_fields(form, partial=True)
    if "legal_hold" not in form and current_actor().is_admin:
        described.legal_hold = False
    try:
        documents.update_document(doc, described, current_actor())
    except AppError as exc:
        db.session.rollback()
        return document(document_id, error=exc, status=exc.status)
    flash(_("Description enregistrée."), "success")
    return redirect(url_for("ged.document", document_id=document_id), 303)


@bp.post("/documents/<uuid:document_id>/supprimer")
@member_required
def delete(document_id: uuid.UUID):
    doc = _document_or_404(document_id)
    try:
        documents.delete_document(doc, current_actor())
    except AppError as exc:
        return document(document_id, error=exc, status=exc.status)
    flash(_("Document placé dans la corbeille (restaurable pendant 30 jours)."), "success")
    return redirect(url_for("ged.index"), 303)


@bp.post("/documents/<uuid:document_id>/annuler-depot")
@member_required
def cancel_deposit(document_id: uuid.UUID):
    doc = _document_or_404(document_id)
    title = doc.title
    try:
        documents.cancel_deposit(current_tenant(), doc, current_actor())
    except AppError as exc:
        db.session.rollback()
        return document(document_id, error=exc, status=exc.status)
    flash(_("Dépôt de « %(t)s » annulé : le document est effacé.", t=title), "success")
    return redirect(url_for("ged.index"), 303)


# -- trash -------------------------------------------------------------------------------------


@bp.get("/corbeille")
@member_required
def trash():
    items, total, page, pages = _paged(documents.trash_query(current_actor()))
    return render_template("ged/trash.html", documents=items, total=total, page=page,
                           pages=pages, days=retention.TRASH_DAYS)


@bp.post("/corbeille/<uuid:document_id>/restaurer")
@member_required
def restore(document_id: uuid.UUID):
    doc = _document_or_404(document_id, include_trash=True)
    try:
        documents.restore_document(doc, current_actor())
    except AppError as exc:
        flash(exc.message, "error")
        return redirect(url_for("ged.trash"), 303)
    flash(_("Document restauré."), "success")
    return redirect(url_for("ged.document", document_id=document_id), 303)


# -- shares ----------------------------------------------------------------------------------


@bp.get("/partages")
@member_required
def shares():
    incoming = db.session.execute(sharing.shared_documents_query(current_actor()).limit(200)).scalars().all()
    owners = {t.id: t for t in db.session.execute(sa.select(Tenant)).scalars()}
    outgoing = sharing.outgoing_shares() if current_actor().is_admin else []
    return render_template("ged/shares.html", incoming=incoming, owners=owners, outgoing=outgoing,
                           nodes=filing.filing_plan() if current_actor().is_admin else [],
                           targets=sharing.share_targets() if current_actor().is_admin else [])


@bp.post("/partages")
@member_required
def share_create():
    form = request.form
    document = classification = None
    if form.get("document_id"):
        document = _document_or_404(form["document_id"])
    elif form.get("classification"):
        classification = filing.find_classification(form["classification"])
        if classification is None:
            abort(404)
    try:
        sharing.create_share(target_slug=form.get("target", ""), actor=current_actor(),
                              document=document, classification=classification,
                              note=form.get("note"))
    except AppError as exc:
        db.session.rollback()
        flash(exc.message if not exc.details else
              exc.message + " " + " ".join(exc.details.get("fields", {}).values()), "error")
        return redirect(request.referrer or url_for("ged.shares"), 303)
    flash(_("Partage accordé (lecture seule)."), "success")
    if document is not None:
        return redirect(url_for("ged.document", document_id=document.id), 303)
    return redirect(url_for("ged.shares"), 303)


@bp.post("/partages/<uuid:share_id>/revoquer")
@member_required
def share_revoke(share_id: uuid.UUID):
    share = sharing.get_share(share_id)
    if share is None:
        abort(404)
    try:
        sharing.revoke_share(share, current_actor())
    except AppError as exc:
        abort(exc.status)
    flash(_("Partage révoqué."), "success")
    return redirect(request.referrer or url_for("ged.shares"), 303)


@bp.get("/partages/documents/<uuid:document_id>")
@member_required
def shared_document(document_id: uuid.UUID):
    found = sharing.get_shared_document(document_id, current_actor())
    if found is None:
        abort(404)
    doc, versions, owner = found
    current = next((v for v in versions if v.number == doc.current_version_number), None)
    return render_template("ged/shared_document.html", doc=doc, owner=owner,
                           versions=sorted(versions, key=lambda v: -v.number), current=current)


@bp.get("/partages/documents/<uuid:document_id>/contenu")
@member_required
def shared_content(document_id: uuid.UUID):
    found = sharing.get_shared_document(document_id, current_actor())
    if found is None:
        abort(404)
    doc, versions, owner = found
    number = _version() or doc.current_version_number
    version = next((v for v in versions if v.number == number), None)
    if version is None:
        abort(404)
    sharing.audit_shared_read(doc, owner, version.number)
    try:
        return serve(owner, documents.served_file(version),
                     inline=request.args.get("inline") == "1")
    except AppError as exc:
        abort(exc.status, description=exc.message)


# -- filing plan -------------------------------------------------------------------------------


@bp.post("/plan")
@member_required
def plan_add():
    if not current_actor().is_admin:
        abort(403)
    parent_ref = request.form.get("parent", "")
    parent = filing.find_classification(parent_ref) if parent_ref else None
    if parent_ref and parent is None:
        # Never file a folder at the top level when the one asked for does not exist here.
        flash(_("Le dossier parent choisi n'existe pas dans le plan de classement."), "error")
        return redirect(url_for("ged.index"), 303)
    try:
        filing.add_classification(request.form.get("code", ""), request.form.get("label", ""),
                                    parent)
    except AppError as exc:
        db.session.rollback()
        flash(exc.message + " " + " ".join((exc.details or {}).get("fields", {}).values()), "error")
    else:
        flash(_("Dossier ajouté au plan de classement."), "success")
    return redirect(url_for("ged.index"), 303)


# -- bordereaux d'élimination ----------------------------------------------------------------


@bp.get("/bordereaux")
@member_required
def proposals():
    if not current_actor().is_admin:
        abort(403)
    items = db.session.execute(sa.select(EliminationProposal)
                               .order_by(EliminationProposal.created_at.desc())).scalars().all()
    return render_template("ged/proposals.html", proposals=items)


def _proposal_or_404(proposal_id):
    proposal = db.session.execute(sa.select(EliminationProposal).where(
        EliminationProposal.id == proposal_id)).scalar_one_or_none()
    if proposal is None:
        abort(404)
    return proposal


@bp.get("/bordereaux/<uuid:proposal_id>")
@member_required
def proposal(proposal_id: uuid.UUID):
    if not current_actor().is_admin:
        abort(403)
    return render_template("ged/proposal.html", proposal=_proposal_or_404(proposal_id))


@bp.post("/bordereaux/<uuid:proposal_id>")
@member_required
def proposal_decide(proposal_id: uuid.UUID):
    if not current_actor().is_admin:
        abort(403)
    item = _proposal_or_404(proposal_id)
    if request.form.get("action") == "reject":
        retention.reject_proposal(item, current_actor())
        flash(_("Bordereau rejeté : aucun document n'a été détruit."), "success")
        return redirect(url_for("ged.proposals"), 303)
    if request.form.get("confirm") != "1":
        flash(_("Cochez la case de confirmation pour approuver le bordereau."), "error")
        return redirect(url_for("ged.proposal", proposal_id=proposal_id), 303)
    decisions = {}
    for entry in item.items:
        value = request.form.get(f"decision-{entry.id}")
        if value in ("destroy", "keep"):
            decisions[entry.id] = value
    try:
        destroyed = retention.decide_proposal(current_tenant(), item, decisions, current_actor())
    except AppError as exc:
        flash(exc.message, "error")
        return redirect(url_for("ged.proposal", proposal_id=proposal_id), 303)
    flash(_("Bordereau approuvé : %(n)d document(s) détruit(s).", n=destroyed), "success")
    return redirect(url_for("ged.proposals"), 303)
