"""Resumable uploads: the tus 1.0.0 core protocol with the creation and termination extensions.

    POST   /api/v1/uploads          Upload-Length, Upload-Metadata → 201 Location
    HEAD   /api/v1/uploads/{id}     → Upload-Offset, Upload-Length
    PATCH  /api/v1/uploads/{id}     Upload-Offset + application/offset+octet-stream → 204
    DELETE /api/v1/uploads/{id}     → 204 (termination)

Each 8 MiB piece of the file is stored as its own object `uploads/<id>/<part>` in the commune's
bucket as soon as it is complete, and the offset advances piece by piece: a connection cut at
90 % resumes from the last complete piece. A PATCH may carry any number of bytes; only whole
pieces (and the final remainder) are kept, so the offset is always a multiple of the piece size
(S3 composes need parts of at least 5 MiB). The last PATCH composes the pieces into the
document's object and creates the document (or its new version).

Authentication: a bearer token, or the web session cookie plus the CSRF token in X-CSRFToken.
"""

from __future__ import annotations

import base64
import uuid
from datetime import datetime, timedelta

import sqlalchemy as sa
from flask import Response, current_app, g, request
from flask_babel import gettext as _
from flask_login import current_user

from saas.api.registry import Operations
from saas.auth.tokens import TokenRejection, authenticate
from saas.errors import AppError
from saas.extensions import db
from saas.ged import services, sniff
from saas.ged.models import Upload
from saas.ged.services import Actor, Ingested
from saas.ged.streams import RangedObjectFile, read_head
from saas.modelbase import utcnow
from saas.storage import get_store
from saas.storage.base import ObjectNotFound, StorageError
from saas.tenancy.context import set_user

operations = Operations()

TUS_VERSION = "1.0.0"
CHUNK_SIZE = 8 * 1024 * 1024
UPLOAD_LIFETIME = timedelta(hours=24)
PREFIX = "/api/v1/uploads"
METADATA_KEYS = ("filename", "title", "type", "classification", "tags", "metadata", "author",
                 "document_date", "confidentiality", "retention_years", "final_fate", "status",
                 "document_id")


def _chunk_size() -> int:
    return int(current_app.config.get("GED_UPLOAD_CHUNK") or CHUNK_SIZE)


# -- protocol headers ------------------------------------------------------------------------


def tus_headers(response: Response) -> Response:
    """The tus protocol headers on every answer under the uploads path."""
    if request.path == PREFIX or request.path.startswith(PREFIX + "/"):
        response.headers["Tus-Resumable"] = TUS_VERSION
        if request.method == "OPTIONS":
            response.headers["Tus-Version"] = TUS_VERSION
            response.headers["Tus-Extension"] = "creation,termination"
            response.headers["Tus-Max-Size"] = str(services.max_upload_bytes())
            response.status_code = 204
            response.set_data(b"")
    return response


def _check_resumable() -> None:
    version = request.headers.get("Tus-Resumable")
    if version != TUS_VERSION:
        raise AppError(412, "tus_version", _("Version du protocole tus non prise en charge : "
                                             "envoyez « Tus-Resumable: 1.0.0 »."))


def _actor() -> Actor:
    """Bearer token or session cookie + CSRF header (the web UI's upload script)."""
    header = request.headers.get("Authorization", "")
    if header:
        scheme, _sep, value = header.partition(" ")
        result = authenticate(value.strip()) if scheme.lower() == "bearer" else None
        if result is None or isinstance(result, TokenRejection):
            raise AppError(401, "unauthorized", _("Jeton d'API invalide ou révoqué."))
        request.api_user = result.user
        set_user(result.user)
        g.membership = result.membership
        g.api_token = result.token
        return Actor(result.user.id, result.membership.role, result.user)
    if not current_user.is_authenticated or g.get("membership") is None:
        raise AppError(401, "unauthorized", _("Authentification requise."))
    from flask_wtf.csrf import ValidationError, validate_csrf

    try:
        validate_csrf(request.headers.get("X-CSRFToken"))
    except ValidationError:
        raise AppError(400, "csrf_failed", _("Jeton CSRF absent ou expiré : rechargez la page.")) from None
    return Actor(current_user.id, g.membership.role, current_user)


def _as_api(exc: AppError) -> AppError:
    return AppError(exc.status, exc.code, exc.message, exc.details)


def parse_metadata(header: str | None) -> dict[str, str]:
    """Decode tus Upload-Metadata: "key base64value,key2 base64value2"."""
    result: dict[str, str] = {}
    if not header:
        return result
    for item in header.split(","):
        item = item.strip()
        if not item:
            continue
        key, _sep, value = item.partition(" ")
        if key not in METADATA_KEYS or key in result:
            raise AppError(400, "bad_metadata", _("Métadonnée tus inconnue ou répétée : %(k)s.",
                                                  k=key[:40]))
        try:
            result[key] = base64.b64decode(value.strip(), validate=True).decode("utf-8") if value else ""
        except ValueError:
            raise AppError(400, "bad_metadata", _("Métadonnée tus mal encodée (base64 UTF-8 "
                                                  "attendu) : %(k)s.", k=key)) from None
    return result


def _get_upload(upload_id: uuid.UUID, actor: Actor) -> Upload:
    upload = db.session.execute(sa.select(Upload).where(Upload.id == upload_id)).scalar_one_or_none()
    if upload is None or upload.user_id != actor.user_id or upload.expires_at < utcnow():
        raise AppError(404, "not_found", _("Envoi introuvable ou expiré : recommencez l'envoi."))
    return upload


def _upload_headers(upload: Upload) -> dict[str, str]:
    return {
        "Upload-Offset": str(upload.offset),
        "Upload-Length": str(upload.length),
        "Upload-Expires": upload.expires_at.strftime("%a, %d %b %Y %H:%M:%S GMT"),
        "Cache-Control": "no-store",
    }


# -- creation --------------------------------------------------------------------------------


@operations.operation("POST", "/uploads", summary="Créer un envoi reprenable (tus 1.0.0)",
               tags=("envois",), status=201, public=True,
               description="En-têtes `Tus-Resumable: 1.0.0`, `Upload-Length`, `Upload-Metadata` "
                           "(filename, title, type, classification, tags, document_id pour une "
                           "nouvelle version…). Authentification : jeton Bearer, ou cookie de "
                           "session et en-tête X-CSRFToken.",
               errors={412: "Version tus non prise en charge.", 413: "Trop volumineux ou quota dépassé."})
def create_upload():
    actor = _actor()
    _check_resumable()
    if not actor.can_write:
        raise AppError(403, "forbidden", _("Votre rôle ne permet pas de déposer des documents."))
    if request.headers.get("Upload-Defer-Length"):
        raise AppError(400, "defer_length", _("La taille du fichier doit être annoncée "
                                              "(Upload-Length)."))
    raw = request.headers.get("Upload-Length", "")
    if not raw.isdigit():
        raise AppError(400, "upload_length", _("En-tête Upload-Length manquant ou invalide."))
    length = int(raw)
    if length == 0:
        raise AppError(422, "empty_file", _("Le fichier est vide (0 octet) : choisissez un fichier "
                                            "qui a un contenu."))
    meta = parse_metadata(request.headers.get("Upload-Metadata"))
    tenant = g.tenant
    try:
        services.check_room(tenant, length)
        fields = services.parse_fields(meta)
        services.raise_problems(fields.problems)
    except AppError as exc:
        raise _as_api(exc) from None
    document_id = None
    if meta.get("document_id"):
        document = services.get_document(meta["document_id"], actor)
        if document is None:
            raise AppError(404, "not_found", _("Document introuvable."))
        document_id = document.id
    upload = Upload(id=uuid.uuid4(), user_id=actor.user_id, length=length, offset=0, parts=[],
                    filename=services.sanitize_filename(meta.get("filename")),
                    fields={k: v for k, v in meta.items() if k not in ("filename", "document_id")},
                    document_id=document_id, created_at=utcnow(),
                    expires_at=utcnow() + UPLOAD_LIFETIME)
    db.session.add(upload)
    db.session.commit()
    response = Response(status=201, headers={
        "Location": f"{PREFIX}/{upload.id}", **_upload_headers(upload)})
    return response


# -- offset ------------------------------------------------------------------------------------


@operations.operation("GET", "/uploads/<uuid:upload_id>", summary="État d'un envoi reprenable",
               tags=("envois",), public=True, response={"type": "object"},
               description="`HEAD` (tus) renvoie `Upload-Offset` et `Upload-Length` ; `GET` le "
                           "même état en JSON.")
def upload_status(upload_id: uuid.UUID):
    actor = _actor()
    upload = _get_upload(upload_id, actor)
    body = {"id": str(upload.id), "offset": upload.offset, "length": upload.length,
            "chunk_size": _chunk_size(),
            "completed": upload.completed_at is not None,
            "document_id": str(upload.result_document_id) if upload.result_document_id else None,
            "version": upload.result_version}
    response = current_app.json.response(body)
    response.headers.update(_upload_headers(upload))
    return response


# -- data ------------------------------------------------------------------------------------


class _Piece:
    """At most `size` bytes of the request body."""

    def __init__(self, stream, size: int, head: bytes = b""):
        self._stream = stream
        self._left = size
        self._head = head

    def read(self, size: int = -1) -> bytes:
        if self._left <= 0:
            return b""
        want = self._left if size is None or size < 0 else min(size, self._left)
        if self._head:
            data, self._head = self._head[:want], self._head[want:]
        else:
            data = self._stream.read(want)
        self._left -= len(data)
        return data


@operations.operation("PATCH", "/uploads/<uuid:upload_id>", summary="Envoyer la suite d'un envoi reprenable",
               tags=("envois",), status=204, public=True,
               description="`Content-Type: application/offset+octet-stream`, `Upload-Offset` = "
                           "décalage actuel (sinon 409). Les octets sont conservés par morceaux "
                           "de 8 Mio ; le dernier PATCH crée le document (en-têtes "
                           "`Document-Id`, `Document-Version`).",
               errors={409: "Décalage différent de celui du serveur.", 412: "Version tus.",
                       413: "Quota dépassé.", 415: "Type de contenu ou de fichier refusé.",
                       422: "Fichier refusé."})
def patch_upload(upload_id: uuid.UUID):
    actor = _actor()
    _check_resumable()
    if request.mimetype != "application/offset+octet-stream":
        raise AppError(415, "unsupported_media_type",
                       _("Envoyez les octets avec Content-Type: application/offset+octet-stream."))
    # Serialise concurrent PATCHes of one upload (a client retrying while its first try runs).
    upload = db.session.execute(
        sa.select(Upload).where(Upload.id == upload_id).with_for_update()).scalar_one_or_none()
    if upload is None or upload.user_id != actor.user_id or upload.expires_at < utcnow():
        raise AppError(404, "not_found", _("Envoi introuvable ou expiré : recommencez l'envoi."))
    raw = request.headers.get("Upload-Offset", "")
    if not raw.isdigit():
        raise AppError(400, "upload_offset", _("En-tête Upload-Offset manquant ou invalide."))
    if int(raw) != upload.offset:
        raise AppError(409, "offset_mismatch",
                       _("Décalage %(got)s différent de celui du serveur (%(have)d) : "
                         "interrogez l'envoi (HEAD) puis reprenez.", got=raw, have=upload.offset),
                       {"offset": upload.offset})
    if upload.completed_at is not None:
        return Response(status=204, headers=_done_headers(upload))
    tenant = g.tenant
    store = get_store()
    chunk = _chunk_size()
    stream = request.stream
    head = b""
    if upload.offset == 0:
        # Refuse a program or an empty file before storing anything.
        head = read_head(stream, min(sniff.HEAD_SIZE, upload.length))
        try:
            sniff.sniff(head, upload.filename)
        except sniff.Refused as exc:
            _terminate(upload)
            raise AppError(422 if exc.code == "empty_file" else 415, exc.code, exc.reason) from None
    while upload.offset < upload.length:
        size = min(chunk, upload.length - upload.offset)
        index = len(upload.parts)
        key = f"uploads/{upload.id}/{index:05d}"
        try:
            info = store.put(tenant, key, _Piece(stream, size, head), length=size,
                             content_type="application/octet-stream")
        except ValueError:
            # The body ended before a whole piece: keep what was complete, say where we are.
            break
        head = b""
        upload.parts = [*upload.parts, {"key": info.key, "version_id": info.version_id,
                                        "size": info.size}]
        upload.offset += info.size
        db.session.commit()
        # The row lock ended with the commit: take it again before the next piece.
        upload = db.session.execute(
            sa.select(Upload).where(Upload.id == upload_id).with_for_update()
            .execution_options(populate_existing=True)).scalar_one()
    if upload.offset < upload.length:
        db.session.commit()
        return Response(status=204, headers=_upload_headers(upload))
    try:
        _complete(tenant, upload, actor)
    except AppError as exc:
        raise _as_api(exc) from None
    return Response(status=204, headers=_done_headers(upload))


def _done_headers(upload: Upload) -> dict[str, str]:
    headers = _upload_headers(upload)
    if upload.result_document_id:
        headers["Document-Id"] = str(upload.result_document_id)
        headers["Document-Version"] = str(upload.result_version or 1)
    return headers


def _complete(tenant, upload: Upload, actor: Actor) -> None:
    """Compose the pieces into the document's object, check it, create the rows, drop the pieces."""
    store = get_store()
    document = None
    if upload.document_id is not None:
        document = services.get_document(upload.document_id, actor)
        if document is None:
            _terminate(upload)
            raise AppError(404, "not_found", _("Document introuvable."))
    document_id = document.id if document is not None else uuid.uuid4()
    key = services.new_object_key(document_id)
    sources = [(p["key"], p["version_id"]) for p in upload.parts]
    head = b""
    with store.get(tenant, sources[0][0], version_id=sources[0][1]) as reader:
        head = reader.read(sniff.HEAD_SIZE)
    try:
        sniffed = sniff.sniff(head, upload.filename)
    except sniff.Refused as exc:
        _terminate(upload)
        raise AppError(422 if exc.code == "empty_file" else 415, exc.code, exc.reason) from None
    stored = store.compose(tenant, key, sources, content_type=sniffed.content_type,
                           metadata={"document": str(document_id)})
    if sniffed.is_zip:
        try:
            sniff.zip_is_sane(RangedObjectFile(store, tenant, key, stored.size, stored.version_id),
                              max_total=services.ZIP_MAX_TOTAL, max_ratio=services.ZIP_MAX_RATIO)
        except sniff.Refused as exc:
            services.delete_object_quietly(tenant, key)
            _terminate(upload)
            raise AppError(422, exc.code, exc.reason) from None
    ingested = Ingested(key=key, stored=stored, sniffed=sniffed, filename=upload.filename)
    upload_id = upload.id
    fields = services.parse_fields(dict(upload.fields or {}))
    if document is None:
        created = services.create_document(tenant, None, filename=None, fields=fields, actor=actor,
                                            document_id=document_id, ingested=ingested)
        result_id, number = created.id, 1
    else:
        version = services.add_version(tenant, document, None, filename=None, actor=actor,
                                       ingested=ingested)
        result_id, number = document.id, version.number
    upload = db.session.execute(sa.select(Upload).where(Upload.id == upload_id)).scalar_one()
    upload.completed_at = utcnow()
    upload.result_document_id = result_id
    upload.result_version = number
    parts, upload.parts = upload.parts, []
    db.session.commit()
    for part in parts:
        services.delete_object_quietly(tenant, part["key"])


# -- termination -----------------------------------------------------------------------------


def _terminate(upload: Upload) -> None:
    tenant = services.current_tenant()
    for part in upload.parts or []:
        services.delete_object_quietly(tenant, part["key"])
    db.session.delete(upload)
    db.session.commit()


@operations.operation("DELETE", "/uploads/<uuid:upload_id>", summary="Abandonner un envoi reprenable",
               tags=("envois",), status=204, public=True)
def delete_upload(upload_id: uuid.UUID):
    actor = _actor()
    _check_resumable()
    upload = _get_upload(upload_id, actor)
    _terminate(upload)
    return Response(status=204)


def sweep_uploads(tenant, older_than: datetime) -> int:
    """Remove expired uploads and upload pieces no row references; return uploads removed."""
    store = get_store()
    expired = db.session.execute(sa.select(Upload).where(
        sa.or_(Upload.expires_at < utcnow(),
               sa.and_(Upload.completed_at.is_not(None), Upload.completed_at < older_than)))
    ).scalars().all()
    for upload in expired:
        for part in upload.parts or []:
            services.delete_object_quietly(tenant, part["key"])
        db.session.delete(upload)
    db.session.commit()
    live = {str(u) for u in db.session.execute(sa.select(Upload.id)).scalars()}
    try:
        for obj in store.list(tenant, "uploads/"):
            upload_id = obj.key.split("/")[1] if obj.key.count("/") >= 2 else ""
            if upload_id in live:
                continue
            if obj.last_modified is not None and obj.last_modified > older_than:
                continue
            try:
                store.delete(tenant, obj.key)
            except ObjectNotFound:
                pass
    except StorageError:
        raise
    return len(expired)
