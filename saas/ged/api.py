"""GED endpoints of the API (/api/v1/documents…, shares, trash, filing plan, usage, tus uploads)."""

from __future__ import annotations

import uuid

import sqlalchemy as sa
from flask import Response, current_app, request
from flask_babel import gettext as _

from saas.api import PREFIX
from saas.api.helpers import iso, not_found, page_args, paginate
from saas.api.registry import Operations, QueryParam
from saas.audit.services import record
from saas.auth.actor import current_actor
from saas.config import current_settings
from saas.errors import AppError
from saas.extensions import db
from saas.files import resumable
from saas.files.serve import serve
from saas.ged.models import Classification, DocType, Document, DocumentVersion, Share
from saas.ged.services import (
    access,
    documents,
    fields,
    intake,
    quota,
    search,
    shares,
    uploads,
)
from saas.ged.services import classification as filing
from saas.tenancy.current import current_tenant
from saas.tenancy.models import Tenant

operations = Operations()

VERSION = operations.schema("DocumentVersion", {
    "type": "object",
    "required": ["number", "size", "sha256", "content_type", "filename"],
    "properties": {
        "number": {"type": "integer", "minimum": 1},
        "size": {"type": "integer", "minimum": 1, "description": "Octets."},
        "sha256": {"type": "string", "description": "Empreinte SHA-256 (hexadécimal), aussi l'ETag."},
        "content_type": {"type": "string", "description": "Type détecté d'après le contenu."},
        "filename": {"type": "string", "description": "Nom de fichier nettoyé."},
        "created_at": {"type": "string", "format": "date-time"},
        "extraction": {"type": "object", "description": "État de l'extraction du texte."},
    },
})

DOCUMENT = operations.schema("Document", {
    "type": "object",
    "required": ["id", "title", "type", "classification", "tags", "created_at",
                 "current_version", "versions_count"],
    "properties": {
        "id": {"type": "string", "format": "uuid"},
        "title": {"type": "string"},
        "type": {"type": "string", "enum": list(DocType)},
        "classification": {"type": ["string", "null"], "description": "Code du plan de classement."},
        "classification_label": {"type": ["string", "null"]},
        "tags": {"type": "array", "items": {"type": "string"}},
        "metadata": {"type": "object"},
        "author": {"type": ["string", "null"]},
        "document_date": {"type": "string", "format": "date"},
        "confidentiality": {"type": "string", "enum": ["all_agents", "restricted"]},
        "retention_years": {"type": ["integer", "null"]},
        "retention_end": {"type": ["string", "null"], "format": "date"},
        "final_fate": {"type": "string", "enum": ["conserver", "detruire", "trier"]},
        "legal_hold": {"type": "boolean"},
        "status": {"type": "string", "enum": ["draft", "final", "archived"]},
        "created_at": {"type": "string", "format": "date-time"},
        "updated_at": {"type": "string", "format": "date-time"},
        "deleted_at": {"type": ["string", "null"], "format": "date-time"},
        "current_version": VERSION,
        "versions_count": {"type": "integer", "minimum": 1},
    },
})

DOCUMENT_UPDATE = operations.schema("DocumentUpdate", {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "title": {"type": "string", "minLength": 1, "maxLength": 300},
        "type": {"type": "string", "enum": list(DocType)},
        "classification": {"type": "string", "maxLength": 40},
        "tags": {"type": "array", "items": {"type": "string", "maxLength": 50}, "maxItems": 20},
        "metadata": {"type": "object", "additionalProperties": {"type": "string", "maxLength": 1000}},
        "author": {"type": "string", "maxLength": 200},
        "document_date": {"type": "string", "format": "date"},
        "confidentiality": {"type": "string", "enum": ["all_agents", "restricted"]},
        "access": {"type": "array", "items": {"type": "string"}, "maxItems": 200,
                   "description": "Personnes autorisées (adresses) si la diffusion est restreinte."},
        "retention_years": {"type": ["integer", "null"], "minimum": 0, "maximum": 200},
        "final_fate": {"type": "string", "enum": ["conserver", "detruire", "trier"]},
        "status": {"type": "string", "enum": ["draft", "final", "archived"]},
        "legal_hold": {"type": "boolean", "description": "Administrateurs seulement."},
    },
})

SHARE = operations.schema("Share", {
    "type": "object",
    "required": ["id", "target", "label", "created_at", "revoked_at"],
    "properties": {
        "id": {"type": "string", "format": "uuid"},
        "target": {"type": "string", "description": "Commune (ou EPCI) destinataire."},
        "document_id": {"type": ["string", "null"], "format": "uuid"},
        "classification": {"type": ["string", "null"]},
        "label": {"type": "string"},
        "created_at": {"type": "string", "format": "date-time"},
        "revoked_at": {"type": ["string", "null"], "format": "date-time"},
    },
})

SHARE_CREATE = operations.schema("ShareCreate", {
    "type": "object",
    "required": ["target"],
    "additionalProperties": False,
    "properties": {
        "target": {"type": "string", "minLength": 1, "maxLength": 40,
                   "description": "Identifiant (slug) de la commune ou de l'EPCI."},
        "document_id": {"type": "string", "format": "uuid"},
        "classification": {"type": "string", "maxLength": 40,
                           "description": "Code du dossier partagé (avec ses sous-dossiers)."},
        "note": {"type": "string", "maxLength": 500},
    },
})

UPLOAD_DOC = (
    "Corps multipart/form-data : `file` (obligatoire), `title`, `type`, `classification` "
    "(code du plan), `tags` (séparées par des virgules ou liste JSON), `metadata` (objet JSON), "
    "`author`, `document_date`, `confidentiality`, `retention_years`, `final_fate`, `status`. "
    "Le fichier est transmis au stockage au fil de l'eau ; son type est détecté d'après son "
    "contenu. Pour les connexions lentes, préférez l'envoi reprenable tus (`/uploads`)."
)
UPLOAD_ERRORS = {
    409: "Conflit",
    413: "Fichier trop volumineux ou quota de la commune dépassé.",
    415: "Type de fichier refusé (programme exécutable, contenu actif, inconnu).",
    422: "Fichier vide, archive suspecte (bombe de décompression) ou champ invalide.",
}




def version_json(version: DocumentVersion | None) -> dict | None:
    if version is None:
        return None
    return {
        "number": version.number, "size": version.size, "sha256": version.sha256,
        "content_type": version.content_type, "filename": version.filename,
        "created_at": iso(version.created_at),
        "extraction": {"state": version.extraction_state, "error": version.extraction_error},
    }


def document_json(document: Document, versions: list[DocumentVersion] | None = None,
                  *, shared: bool = False) -> dict:
    versions = versions if versions is not None else document.versions
    current = next((v for v in versions if v.number == document.current_version_number), None)
    end = document.retention_end
    body = {
        "id": str(document.id),
        "title": document.title,
        "type": document.doc_type,
        "classification": None if shared or document.classification is None else document.classification.code,
        "classification_label": None if shared or document.classification is None else document.classification.label,
        "tags": list(document.tags or []),
        "metadata": dict(document.metadata_ or {}),
        "author": document.author,
        "document_date": document.document_date.isoformat(),
        "confidentiality": document.confidentiality,
        "retention_years": document.retention_years,
        "retention_end": end.isoformat() if end else None,
        "final_fate": document.final_fate,
        "legal_hold": document.legal_hold,
        "status": document.status,
        "created_at": iso(document.created_at),
        "updated_at": iso(document.updated_at),
        "deleted_at": iso(document.deleted_at),
        "current_version": version_json(current),
        "versions_count": document.versions_count,
    }
    return body


def _document(document_id, *, include_trash: bool = False) -> Document:
    document = access.get_document(document_id, current_actor(), include_trash=include_trash)
    if document is None:
        raise not_found(_("Document introuvable."))
    return document


def _version_number() -> int | None:
    raw = request.args.get("version")
    if raw in (None, ""):
        return None
    # A large number is a version past the last (404); "²" or thousands of digits is no number.
    number = int(raw) if len(raw) <= 40 and raw.isascii() and raw.isdigit() else 0
    if number < 1:
        raise AppError(422, "validation_error", _("Les données envoyées sont invalides."),
                       {"fields": {"version": _("doit être un entier positif")}})
    return number


def _version_not_found(number: int) -> AppError:
    return AppError(404, "version_not_found",
                    _("Ce document n'a pas de version n°%(n)d.", n=number))


# -- documents ---------------------------------------------------------------------------------


@operations.operation("POST", "/documents", summary="Déposer un document", tags=("documents",),
               status=201, response=DOCUMENT, description=UPLOAD_DOC, errors=UPLOAD_ERRORS,
               roles=("admin", "agent"))
def create_document():
    document = intake.receive_upload(current_tenant(), request, actor=current_actor())
    return document_json(document), 201


SEARCH_PARAMS = (
    QueryParam("q", {"type": "string"}, "Recherche plein texte en français (titre, métadonnées, "
                                        "texte extrait), insensible aux accents et à la casse."),
    QueryParam("type", {"type": "string", "enum": list(DocType)}, "Type de document."),
    QueryParam("tag", {"type": "string"}, "Étiquette."),
    QueryParam("classification", {"type": "string"}, "Code du plan de classement (sous-dossiers compris)."),
    QueryParam("date_from", {"type": "string", "format": "date"}, "Date du document, à partir de."),
    QueryParam("date_to", {"type": "string", "format": "date"}, "Date du document, jusqu'à."),
)


@operations.operation("GET", "/documents", summary="Chercher des documents", tags=("documents",),
               response=DOCUMENT, paginated=True, query=SEARCH_PARAMS,
               description=(
                   "Sans `q`, les plus récents d'abord ; avec `q`, d'abord ceux dont le titre ou "
                   "les métadonnées correspondent (les plus pertinents en tête), puis les plus "
                   "récents. Le décompte s'arrête à 1 000 : au-delà (ou au-delà de la page "
                   "demandée), `total_is_lower_bound` vaut `true` et `total` est un minimum "
                   "(« plus de 1 000 ») ; sinon `total` est exact."))
def list_documents():
    params = search.parse_search(request.args)
    page, per_page = page_args()
    result = search.search_page(params, current_actor(), page=page, per_page=per_page)
    return {"items": [document_json(d) for d in result.items], "total": result.total,
            "total_is_lower_bound": result.total_is_lower_bound, "page": result.page,
            "per_page": result.per_page}


@operations.operation("GET", "/documents/<uuid:document_id>", summary="Un document", tags=("documents",),
               response=DOCUMENT)
def get_document(document_id: uuid.UUID):
    # One query: the document and its current version, not the other versions.
    document, current = access.get_document_version(document_id, None, current_actor())
    if document is None:
        raise not_found(_("Document introuvable."))
    return document_json(document, [current] if current is not None else [])


@operations.operation("PATCH", "/documents/<uuid:document_id>", summary="Modifier la description d'un document",
               tags=("documents",), request=DOCUMENT_UPDATE, response=DOCUMENT,
               roles=("admin", "agent"))
def update_document(document_id: uuid.UUID, body: dict):
    document = _document(document_id)
    if "access" in body:
        body = {**body, "access": ",".join(body["access"])}
    if "retention_years" in body and body["retention_years"] is None:
        body = {**body, "retention_years": ""}
    described = fields.parse_fields(_JsonFields(body), partial=True)
    documents.update_document(document, described, current_actor())
    return document_json(document)


class _JsonFields(dict):
    """A JSON body as parse_fields() reads it (tags and metadata stay structured)."""

    def get(self, name, default=None):
        value = super().get(name, default)
        if isinstance(value, bool | int) and name not in ("tags", "metadata"):
            return str(value).lower() if isinstance(value, bool) else str(value)
        return value


@operations.operation("GET", "/documents/<uuid:document_id>/content", summary="Le contenu d'un document",
               tags=("documents",),
               query=(QueryParam("version", {"type": "integer", "minimum": 1},
                                 "Numéro de version (la dernière par défaut)."),
                      QueryParam("disposition", {"type": "string", "enum": ["inline", "attachment"]},
                                 "inline : affichage dans le navigateur (PDF, images).")),
               description="Les octets, en flux. `Range` → 206, `ETag` = SHA-256, "
                           "`If-None-Match` → 304.",
               errors={416: "Plage d'octets hors du fichier."})
def document_content(document_id: uuid.UUID):
    number = _version_number()
    document, version = access.get_document_version(document_id, number, current_actor())
    if document is None:
        raise not_found(_("Document introuvable."))
    if version is None:
        raise _version_not_found(number or 0)
    if document.confidentiality != "all_agents":
        record("ged.download", f"document:{document.id}", {"version": version.number})
        db.session.commit()
    return serve(current_tenant(), documents.served_file(version),
                 inline=request.args.get("disposition") == "inline")


@operations.operation("GET", "/documents/<uuid:document_id>/versions", summary="Les versions d'un document",
               tags=("documents",), response={"type": "object"})
def list_versions(document_id: uuid.UUID):
    document = _document(document_id)
    return {"items": [version_json(v) for v in sorted(document.versions, key=lambda v: -v.number)]}


@operations.operation("POST", "/documents/<uuid:document_id>/versions", summary="Ajouter une version",
               tags=("documents",), status=201, response=VERSION,
               description="Corps multipart/form-data : `file`.", errors=UPLOAD_ERRORS,
               roles=("admin", "agent"))
def create_version(document_id: uuid.UUID):
    document = _document(document_id)
    version = intake.receive_upload(current_tenant(), request, document=document,
                                     actor=current_actor())
    return version_json(version), 201


@operations.operation("DELETE", "/documents/<uuid:document_id>", summary="Mettre un document à la corbeille",
               tags=("documents",), status=204, roles=("admin", "agent"),
               description="Restaurable pendant 30 jours. Refusé (409) pendant la durée "
                           "d'utilité administrative ou sous gel juridique.",
               errors={409: "Document sous durée de conservation."})
def delete_document(document_id: uuid.UUID):
    documents.delete_document(_document(document_id), current_actor())
    return "", 204


@operations.operation("POST", "/documents/<uuid:document_id>/cancel", summary="Annuler un dépôt fait par erreur",
               tags=("documents",), status=204, roles=("admin", "agent"),
               description="Efface pour de bon le document (versions, octets, espace utilisé), "
                           "quelle que soit sa durée de conservation : seulement par la personne "
                           "qui l'a déposé, dans les 24 heures (SAAS_GED_CANCEL_WINDOW_HOURS), "
                           "tant que personne d'autre ne l'a modifié ni versionné et qu'il n'a "
                           "pas été partagé. Journalisé (ged.cancel : titre, taille, SHA-256).",
               errors={403: "Ce n'est pas votre dépôt.",
                       409: "Délai dépassé, document modifié par quelqu'un d'autre ou partagé."})
def cancel_deposit(document_id: uuid.UUID):
    documents.cancel_deposit(current_tenant(), _document(document_id), current_actor())
    return "", 204


@operations.operation("POST", "/documents/<uuid:document_id>/restore", summary="Restaurer depuis la corbeille",
               tags=("documents",), response=DOCUMENT, roles=("admin", "agent"),
               errors={409: "Le document n'est pas dans la corbeille."})
def restore_document(document_id: uuid.UUID):
    document = _document(document_id, include_trash=True)
    documents.restore_document(document, current_actor())
    return document_json(document)


@operations.operation("GET", "/trash", summary="La corbeille", tags=("documents",), response=DOCUMENT,
               paginated=True)
def list_trash():
    return paginate(documents.trash_query(current_actor()), document_json)


@operations.operation("GET", "/classifications", summary="Le plan de classement", tags=("documents",),
               response={"type": "object"})
def list_classifications():
    nodes = filing.filing_plan()
    by_id = {n.id: n for n in nodes}
    return {"items": [{"id": str(n.id), "code": n.code, "label": n.label,
                       "parent": by_id[n.parent_id].code if n.parent_id in by_id else None}
                      for n in nodes]}


@operations.operation("GET", "/ged/usage", summary="Espace de stockage utilisé", tags=("documents",),
               response={"type": "object"})
def usage():
    status = quota.quota_status(current_tenant())
    return {"used_bytes": status.used, "quota_bytes": status.quota or None,
            "percent": status.percent}


# -- shares ----------------------------------------------------------------------------------


def share_json(share) -> dict:
    classification = None
    if share.classification_id is not None:
        node = db.session.get(Classification, share.classification_id)
        classification = node.code if node else None
    return {
        "id": str(share.id),
        "target": share.target_tenant.slug if share.target_tenant else None,
        "document_id": str(share.document_id) if share.document_id else None,
        "classification": classification,
        "label": share.label,
        "created_at": iso(share.created_at),
        "revoked_at": iso(share.revoked_at),
    }


@operations.operation("GET", "/shares", summary="Les partages accordés par la commune", tags=("partages",),
               response=SHARE, paginated=True, roles=("admin", "agent"),
               description="Les élus ne voient pas les partages : ils ne lisent que les documents "
                           "qui les désignent.")
def list_shares():
    stmt = sa.select(Share).order_by(Share.created_at.desc(), Share.id)
    return paginate(stmt, share_json)


@operations.operation("POST", "/shares", summary="Partager un document ou un dossier (lecture seule)",
               tags=("partages",), request=SHARE_CREATE, response=SHARE, status=201,
               roles=("admin",), errors={409: "Document à diffusion restreinte."})
def create_share(body: dict):
    document = classification = None
    if body.get("document_id"):
        document = _document(body["document_id"])
    if body.get("classification"):
        filing.ensure_filing_plan()
        classification = filing.find_classification(body["classification"])
        if classification is None:
            raise not_found(_("Dossier introuvable dans le plan de classement."))
    share = shares.create_share(target_slug=body["target"], actor=current_actor(), document=document,
                                  classification=classification, note=body.get("note"))
    return share_json(share), 201


@operations.operation("DELETE", "/shares/<uuid:share_id>", summary="Révoquer un partage", tags=("partages",),
               status=204, roles=("admin",))
def revoke_share(share_id: uuid.UUID):
    share = shares.get_share(share_id)
    if share is None:
        raise not_found(_("Partage introuvable."))
    shares.revoke_share(share, current_actor())
    return "", 204


def _shared(document_id):
    found = shares.get_shared_document(document_id, current_actor())
    if found is None:
        raise not_found(_("Document introuvable."))
    return found


def shared_json(document: Document, versions=None) -> dict:
    if versions is None:
        versions = db.session.execute(
            sa.select(DocumentVersion).where(DocumentVersion.document_id == document.id,
                                             DocumentVersion.tenant_id == document.tenant_id)
            .execution_options(all_tenants=True)).scalars().all()
    body = document_json(document, list(versions), shared=True)
    owner = db.session.get(Tenant, document.tenant_id)
    body["owner"] = {"slug": owner.slug, "name": owner.name} if owner else None
    body["read_only"] = True
    return body


@operations.operation("GET", "/shared-documents", summary="Documents partagés avec la commune",
               tags=("partages",), response=DOCUMENT, paginated=True,
               description="En lecture seule ; les octets restent chez la commune propriétaire.")
def list_shared_documents():
    return paginate(shares.shared_documents_query(current_actor()), shared_json)


@operations.operation("GET", "/shared-documents/<uuid:document_id>", summary="Un document partagé",
               tags=("partages",), response=DOCUMENT)
def get_shared_document(document_id: uuid.UUID):
    document, versions, _owner = _shared(document_id)
    return shared_json(document, versions)


@operations.operation("GET", "/shared-documents/<uuid:document_id>/content",
               summary="Le contenu d'un document partagé", tags=("partages",),
               query=(QueryParam("version", {"type": "integer", "minimum": 1}, "Numéro de version."),),
               errors={416: "Plage d'octets hors du fichier."})
def shared_document_content(document_id: uuid.UUID):
    document, versions, owner = _shared(document_id)
    number = _version_number() or document.current_version_number
    version = next((v for v in versions if v.number == number), None)
    if version is None:
        raise _version_not_found(number)
    shares.audit_shared_read(document, owner, version.number)
    return serve(owner, documents.served_file(version),
                 inline=request.args.get("disposition") == "inline")


# -- resumable uploads (tus 1.0.0, see saas/files/resumable.py) ----------------------------


UPLOADS_PATH = "/uploads"


@operations.operation("POST", UPLOADS_PATH, summary="Créer un envoi reprenable (tus 1.0.0)",
                      tags=("envois",), status=201, session=True,
                      description="En-têtes `Tus-Resumable: 1.0.0`, `Upload-Length`, `Upload-Metadata` "
                                  "(filename, title, type, classification, tags, document_id pour une "
                                  "nouvelle version…). Authentification : jeton Bearer, ou cookie de "
                                  "session et en-tête X-CSRFToken.",
                      errors={412: "Version tus non prise en charge.", 413: "Trop volumineux ou quota dépassé.",
                              429: "Trop d'envois reprenables en cours pour cette personne."})
def create_upload():
    resumable.check_version(request)
    length = resumable.declared_length(request)
    meta = resumable.parse_metadata(request.headers.get("Upload-Metadata"), uploads.METADATA_KEYS)
    upload = uploads.create_upload(current_tenant(), current_actor(), length, meta)
    return Response(status=201, headers={"Location": f"{PREFIX}{UPLOADS_PATH}/{upload.id}",
                                         **resumable.offset_headers(upload)})


@operations.operation("GET", f"{UPLOADS_PATH}/<uuid:upload_id>", summary="État d'un envoi reprenable",
                      tags=("envois",), session=True, response={"type": "object"},
                      description="`HEAD` (tus) renvoie `Upload-Offset` et `Upload-Length` ; `GET` le "
                                  "même état en JSON.")
def upload_status(upload_id: uuid.UUID):
    upload = uploads.get_upload(upload_id, current_actor())
    body = {"id": str(upload.id), "offset": upload.offset, "length": upload.length,
            "chunk_size": current_settings().ged.upload_chunk,
            "completed": upload.completed_at is not None,
            "document_id": str(upload.result_document_id) if upload.result_document_id else None,
            "version": upload.result_version}
    response = current_app.json.response(body)
    response.headers.update(resumable.offset_headers(upload))
    return response


@operations.operation("PATCH", f"{UPLOADS_PATH}/<uuid:upload_id>",
                      summary="Envoyer la suite d'un envoi reprenable", tags=("envois",), status=204,
                      session=True,
                      description="`Content-Type: application/offset+octet-stream`, `Upload-Offset` = "
                                  "décalage actuel (sinon 409). Les octets sont conservés par morceaux "
                                  "de 8 Mio ; le dernier PATCH crée le document (en-têtes "
                                  "`Document-Id`, `Document-Version`).",
                      errors={409: "Décalage différent de celui du serveur.", 412: "Version tus.",
                              413: "Quota dépassé.", 415: "Type de contenu ou de fichier refusé.",
                              422: "Fichier refusé."})
def patch_upload(upload_id: uuid.UUID):
    actor = current_actor()
    resumable.check_version(request)
    resumable.check_patch_type(request)
    upload = uploads.get_upload(upload_id, actor, lock=True)
    resumable.check_offset(request, upload)
    if upload.completed_at is None:
        upload = uploads.receive(current_tenant(), upload, resumable.piece_stream(request, upload),
                                 actor)
    headers = resumable.offset_headers(upload)
    if upload.result_document_id:
        headers["Document-Id"] = str(upload.result_document_id)
        headers["Document-Version"] = str(upload.result_version or 1)
    return Response(status=204, headers=headers)


@operations.operation("DELETE", f"{UPLOADS_PATH}/<uuid:upload_id>", summary="Abandonner un envoi reprenable",
                      tags=("envois",), status=204, session=True)
def delete_upload(upload_id: uuid.UUID):
    actor = current_actor()
    resumable.check_version(request)
    uploads.terminate(current_tenant(), uploads.get_upload(upload_id, actor))
    return Response(status=204)
