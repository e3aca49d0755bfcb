"""HTTP pieces shared by the API and the web UI: streamed uploads and byte-serving downloads."""

from __future__ import annotations

import hashlib
import logging
import uuid
from urllib.parse import quote

from flask import Response, request
from flask_babel import gettext as _

from saas.ged import services
from saas.ged.models import DocumentVersion
from saas.ged.services import AppError
from saas.ged.streams import FormError, StreamingForm
from saas.storage import get_store
from saas.storage.base import ObjectNotFound

log = logging.getLogger("saas.ged")

INLINE_TYPES = ("application/pdf", "image/png", "image/jpeg", "image/gif", "image/webp")


class IntegrityError(RuntimeError):
    """The bytes read back do not match the SHA-256 recorded at upload."""


def form_messages() -> dict[str, str]:
    return {
        "not_multipart": _("Envoyez le fichier en multipart/form-data, dans le champ « file »."),
        "malformed_multipart": _("Le corps multipart/form-data est mal formé."),
        "truncated_body": _("Le corps de la requête est incomplet (connexion interrompue ?)."),
        "too_many_parts": _("Trop de champs dans le formulaire."),
        "field_too_large": _("Un champ du formulaire est trop long."),
        "unexpected_file": _("Un seul fichier est attendu, dans le champ « file »."),
    }


def form_error(exc: FormError) -> AppError:
    return AppError(400 if exc.code != "field_too_large" else 413, exc.code, exc.message)


class FieldView:
    """A StreamingForm's fields as parse_fields() reads them (first value, or the list)."""

    def __init__(self, form: StreamingForm):
        self._form = form

    def get(self, name, default=None):
        return self._form.get(name, default)

    def getlist(self, name):
        return self._form.getlist(name)


def receive_upload(tenant, *, document=None, actor: services.Actor, csrf_check=None):
    """Stream a multipart upload to the store, then create the document or its new version.

    `csrf_check(token)` (web UI) runs before the first byte of the file is written.
    Returns the Document (new) or the DocumentVersion (new version).
    """
    services.require_writer(actor)
    declared = request.content_length
    if declared is not None:
        services.check_room(tenant, declared, slack=services.MULTIPART_SLACK)
    try:
        form = StreamingForm(request.stream, request.content_type or "", messages=form_messages())
        has_file = form.read_until_file()
    except FormError as exc:
        raise form_error(exc) from None
    if csrf_check is not None:
        csrf_check(form.get("csrf_token") or request.headers.get("X-CSRFToken"))
    if not has_file:
        raise AppError(422, "file_missing", _("Aucun fichier reçu : joignez-le dans le champ « file »."),
                       {"fields": {"file": _("champ obligatoire")}})
    # Fields sent before the file are checked before the upload starts.
    early = services.parse_fields(FieldView(form))
    services.raise_problems(early.problems)
    document_id = document.id if document is not None else uuid.uuid4()
    # The store reads the file part straight from the form: it receives and parses the next
    # parts from the client while its threads send the previous ones to S3.
    try:
        ingested = services.ingest(tenant, form, filename=form.filename, document_id=document_id)
    except FormError as exc:
        raise form_error(exc) from None
    try:
        form.finish()
        fields = services.parse_fields(FieldView(form))
        services.raise_problems(fields.problems)
    except BaseException as exc:
        services.delete_object_quietly(tenant, ingested.key)
        if isinstance(exc, FormError):
            raise form_error(exc) from None
        raise
    if document is None:
        return services.create_document(tenant, None, filename=None, fields=fields, actor=actor,
                                        document_id=document_id, ingested=ingested)
    return services.add_version(tenant, document, None, filename=None, actor=actor,
                                ingested=ingested)


def content_disposition(filename: str, inline: bool) -> str:
    """RFC 6266 / RFC 5987: an ASCII fallback and the exact UTF-8 name."""
    ascii_name = filename.encode("ascii", "replace").decode("ascii").replace("?", "_")
    ascii_name = ascii_name.replace("\\", "_").replace('"', "_")
    kind = "inline" if inline else "attachment"
    return f"{kind}; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(filename, safe='')}"


def _etag_matches(header: str | None, etag: str) -> bool:
    if not header:
        return False
    if header.strip() == "*":
        return True
    for candidate in header.split(","):
        candidate = candidate.strip()
        if candidate.startswith("W/"):
            candidate = candidate[2:]
        if candidate == etag:
            return True
    return False


def serve_version(tenant, version: DocumentVersion, *, inline: bool = False) -> Response:
    """Serve a version's bytes from `tenant`'s bucket: ETag, 304, Range (206/416), streaming.

    A full read is re-hashed on the fly; the last chunk is held back until the SHA-256 matches,
    so corrupted bytes never arrive as a complete, valid-looking response.
    """
    etag = f'"{version.sha256}"'
    inline = inline and version.content_type.split(";", 1)[0] in INLINE_TYPES
    headers = {
        "ETag": etag,
        "Accept-Ranges": "bytes",
        "Cache-Control": "private, no-cache",
        "Content-Disposition": content_disposition(version.filename, inline),
    }
    if inline:
        # The platform's own pages may frame this response (the PDF preview), nobody else.
        headers["Content-Security-Policy"] = (
            "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; "
            "object-src 'self'; frame-ancestors 'self'")
        headers["X-Frame-Options"] = "SAMEORIGIN"
    else:
        headers["Content-Security-Policy"] = "default-src 'none'; frame-ancestors 'none'; sandbox"
    if _etag_matches(request.headers.get("If-None-Match"), etag):
        return Response(status=304, headers=headers)
    size = version.size
    byte_range = request.range
    if_range = request.headers.get("If-Range")
    if byte_range is not None and if_range and if_range.strip() != etag:
        byte_range = None  # the client's copy is another version: send the whole thing
    if request.headers.get("Range") and byte_range is None and not if_range:
        # A Range header werkzeug could not parse (or several ranges): RFC 9110 lets us ignore it.
        pass
    store = get_store()
    if byte_range is not None and len(byte_range.ranges) == 1:
        bounds = byte_range.range_for_length(size)
        if bounds is None:
            raise AppError(416, "range_not_satisfiable",
                           _("Plage d'octets invalide : le fichier fait %(n)d octets.", n=size),
                           {"size": size}, headers={"Content-Range": f"bytes */{size}"})
        start, stop = bounds
        try:
            reader = store.get(tenant, version.object_key, version_id=version.object_version_id,
                               offset=start, length=stop - start)
        except ObjectNotFound:
            raise _missing(version) from None
        headers["Content-Range"] = f"bytes {start}-{stop - 1}/{size}"
        headers["Content-Length"] = str(stop - start)
        response = Response(_plain(reader), status=206, headers=headers,
                            mimetype=version.content_type, direct_passthrough=True)
        response.call_on_close(reader.close)
        return response
    try:
        reader = store.get(tenant, version.object_key, version_id=version.object_version_id)
    except ObjectNotFound:
        raise _missing(version) from None
    headers["Content-Length"] = str(size)
    # The body is sent after the view returned, when the session is gone: plain values only.
    response = Response(_verified(reader, version.sha256, f"{version.id} ({version.object_key})"),
                        status=200, headers=headers, mimetype=version.content_type,
                        direct_passthrough=True)
    response.call_on_close(reader.close)
    return response


def _missing(version: DocumentVersion) -> AppError:
    log.error("object %s of version %s is missing from the store", version.object_key, version.id)
    return AppError(500, "object_missing",
                    _("Le fichier de cette version est introuvable dans le stockage : "
                      "l'équipe technique a été prévenue."))


def _plain(reader):
    try:
        yield from reader
    finally:
        reader.close()


def _verified(reader, sha256: str, label: str):
    """Yield the reader's chunks, the last one only once the whole SHA-256 matched `sha256`.

    Each chunk is hashed just after it was handed to the server: the client receives it while
    this thread hashes, and the store's next bytes wait in the socket meanwhile. (A helper
    thread reading ahead cost more CPU per MB than it saved in waiting, measured A/B on
    tests/bench/bench_ged.py's setup: on a machine shared with the S3 server, CPU bounds.)
    """
    digest = hashlib.sha256()
    held = None
    try:
        for chunk in reader:
            if held is not None:
                yield held
                digest.update(held)
            held = chunk
        if held is not None:
            digest.update(held)
        if digest.hexdigest() != sha256:
            log.error("integrity: version %s reads back with another SHA-256", label)
            raise IntegrityError(f"SHA-256 mismatch on version {label}")
        if held is not None:
            yield held
    finally:
        reader.close()
