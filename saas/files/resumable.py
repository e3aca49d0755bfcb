"""Resumable uploads: the tus 1.0.0 core protocol with the creation and termination extensions.

    POST   <prefix>          Upload-Length, Upload-Metadata → 201 Location
    HEAD   <prefix>/{id}     → Upload-Offset, Upload-Length
    PATCH  <prefix>/{id}     Upload-Offset + application/offset+octet-stream → 204
    DELETE <prefix>/{id}     → 204 (termination)

Each piece of the file (8 MiB by default) is stored as its own object `uploads/<id>/<part>` in
the commune's bucket as soon as it is complete, and the offset advances piece by piece: a
connection cut at 90 % resumes from the last complete piece. A PATCH may carry any number of
bytes; only whole pieces (and the final remainder) are kept, so the offset is always a multiple
of the piece size (S3 composes need parts of at least 5 MiB). Once every byte is in, the
feature composes the pieces with `store.store_pieces` (the same checks as a streamed upload)
and files the result.

The feature keeps the upload's row (any object with the `ResumableUpload` attributes) and its
HTTP operations; this module reads the protocol's headers and moves the pieces.
"""

from __future__ import annotations

import base64
import re
import uuid
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import BinaryIO, Protocol

from flask import Request, Response, request
from flask_babel import gettext as _

from saas.bodies import allow_large_body
from saas.config import current_settings
from saas.errors import AppError
from saas.files import sniff
from saas.files.store import delete_quietly, sniff_head
from saas.files.streams import Piece, read_head
from saas.storage import get_store
from saas.storage.base import ObjectNotFound

TUS_VERSION = "1.0.0"
UPLOAD_LIFETIME = timedelta(hours=24)
PIECES_PREFIX = "uploads/"
# A byte count in a header: ASCII digits only (str.isdigit() also takes "²" or "٣", which int()
# then refuses or reads as another number), and no more than a BIGINT column holds.
_BYTE_COUNT = re.compile(r"[0-9]{1,19}")
MAX_BYTE_COUNT = 2 ** 63 - 1


class ResumableUpload(Protocol):
    """The row a feature keeps per upload: `parts` lists {"key", "version_id", "size"}."""

    id: uuid.UUID
    length: int
    offset: int
    parts: list
    filename: str
    expires_at: datetime


# -- protocol headers ------------------------------------------------------------------------


def protocol_headers(prefix: str, max_size: Callable[[], int]) -> Callable[[Response], Response]:
    """An after_request hook: the tus headers on every answer under `prefix` (OPTIONS: 204)."""

    def add_headers(response: Response) -> Response:
        if request.path == prefix or request.path.startswith(prefix + "/"):
            response.headers["Tus-Resumable"] = TUS_VERSION
            if request.method == "OPTIONS":
                response.headers["Tus-Version"] = TUS_VERSION
                response.headers["Tus-Extension"] = "creation,termination"
                response.headers["Tus-Max-Size"] = str(max_size())
                response.status_code = 204
                response.set_data(b"")
        return response

    return add_headers


def check_version(req: Request) -> None:
    """412 unless the client speaks tus 1.0.0."""
    if req.headers.get("Tus-Resumable") != TUS_VERSION:
        raise AppError(412, "tus_version", _("Version du protocole tus non prise en charge : "
                                             "envoyez « Tus-Resumable: 1.0.0 »."))


def declared_length(req: Request) -> int:
    """The Upload-Length of a creation request (400 when missing, 422 for an empty file)."""
    if req.headers.get("Upload-Defer-Length"):
        raise AppError(400, "defer_length", _("La taille du fichier doit être annoncée "
                                              "(Upload-Length)."))
    length = byte_count(req.headers.get("Upload-Length"))
    if length is None:
        raise AppError(400, "upload_length", _("En-tête Upload-Length manquant ou invalide : "
                                               "un nombre d'octets en chiffres (0-9) est attendu."))
    if length == 0:
        raise AppError(422, "empty_file", _("Le fichier est vide (0 octet) : choisissez un fichier "
                                            "qui a un contenu."))
    return length


def byte_count(raw: str | None) -> int | None:
    """A header's non-negative byte count, or None when it is missing or not one.

    Only ASCII digits, at most 19 of them and below 2**63: "-1", "²", "1e3", " 12" or a
    thousand digits are not byte counts.
    """
    if raw is None or not _BYTE_COUNT.fullmatch(raw):
        return None
    value = int(raw)
    return value if value <= MAX_BYTE_COUNT else None


def parse_metadata(header: str | None, keys: Iterable[str]) -> dict[str, str]:
    """Decode tus Upload-Metadata ("key base64value,key2 base64value2"), known `keys` only."""
    allowed = frozenset(keys)
    result: dict[str, str] = {}
    if not header:
        return result
    for item in header.split(","):
        item = item.strip()
        if not item:
            continue
        key, _sep, value = item.partition(" ")
        if key not in allowed or key in result:
            raise AppError(400, "bad_metadata", _("Métadonnée tus inconnue ou répétée : %(k)s.",
                                                  k=key[:40]))
        try:
            result[key] = base64.b64decode(value.strip(), validate=True).decode("utf-8") if value else ""
        except ValueError:
            raise AppError(400, "bad_metadata", _("Métadonnée tus mal encodée (base64 UTF-8 "
                                                  "attendu) : %(k)s.", k=key)) from None
    return result


def check_patch_type(req: Request) -> None:
    """415 unless a PATCH sends raw bytes."""
    if req.mimetype != "application/offset+octet-stream":
        raise AppError(415, "unsupported_media_type",
                       _("Envoyez les octets avec Content-Type: application/offset+octet-stream."))


def check_offset(req: Request, upload: ResumableUpload) -> None:
    """A PATCH continues from the server's offset (400 when missing, 409 with the offset)."""
    offset = byte_count(req.headers.get("Upload-Offset"))
    if offset is None:
        raise AppError(400, "upload_offset", _("En-tête Upload-Offset manquant ou invalide : "
                                               "un nombre d'octets en chiffres (0-9) est attendu."))
    if offset != upload.offset:
        raise AppError(409, "offset_mismatch",
                       _("Décalage %(got)d différent de celui du serveur (%(have)d) : "
                         "interrogez l'envoi (HEAD) puis reprenez.", got=offset,
                         have=upload.offset),
                       {"offset": upload.offset})


def piece_stream(req: Request, upload: ResumableUpload) -> BinaryIO:
    """The body of an authorised PATCH: at most the bytes the upload still lacks."""
    allow_large_body(req, max(upload.length - upload.offset, 0),
                     min_rate=current_settings().http.upload_min_rate)
    return req.stream


def offset_headers(upload: ResumableUpload) -> dict[str, str]:
    """Upload-Offset, Upload-Length and Upload-Expires of an upload."""
    return {
        "Upload-Offset": str(upload.offset),
        "Upload-Length": str(upload.length),
        "Upload-Expires": upload.expires_at.strftime("%a, %d %b %Y %H:%M:%S GMT"),
        "Cache-Control": "no-store",
    }


def lost_upload() -> AppError:
    """The 404 of an upload that is not the caller's, expired or was terminated."""
    return AppError(404, "not_found", _("Envoi introuvable ou expiré : recommencez l'envoi."))


# -- pieces ----------------------------------------------------------------------------------


def receive_pieces(tenant, upload: ResumableUpload, stream: BinaryIO, *, piece_size: int,
                   save: Callable[[ResumableUpload], ResumableUpload]) -> ResumableUpload:
    """Store the body's whole pieces (and the final remainder); `save` records each one.

    `save(upload)` commits the new offset and returns the row to go on with. The first bytes
    of a file are sniffed before anything is stored: a refused type raises AppError.
    """
    store = get_store()
    head = b""
    if upload.offset == 0:
        head = read_head(stream, min(sniff.HEAD_SIZE, upload.length))
        sniff_head(head, upload.filename)
    while upload.offset < upload.length:
        size = min(piece_size, upload.length - upload.offset)
        key = f"{PIECES_PREFIX}{upload.id}/{len(upload.parts):05d}"
        piece = Piece(stream, size, head)
        try:
            info = store.put(tenant, key, piece, length=size,
                             content_type="application/octet-stream")
        except ValueError:
            # The body ended before a whole piece: keep what was complete, say where we are.
            break
        # A piece smaller than the sniffed head leaves the rest of the head to the next one.
        head = piece.unread_head
        upload.parts = [*upload.parts, {"key": info.key, "version_id": info.version_id,
                                        "size": info.size}]
        upload.offset += info.size
        upload = save(upload)
    return upload


def pieces(upload: ResumableUpload) -> list[tuple[str, str | None]]:
    """The (key, version id) of every stored piece, in order (for store.store_pieces)."""
    return [(part["key"], part["version_id"]) for part in upload.parts or []]


def delete_pieces(tenant, parts: list[dict]) -> None:
    for part in parts or []:
        delete_quietly(tenant, part["key"])


def sweep_pieces(tenant, live: set[str], older_than: datetime) -> None:
    """Delete the pieces of uploads not in `live` (ids) last written before `older_than`."""
    store = get_store()
    for obj in store.list(tenant, PIECES_PREFIX):
        upload_id = obj.key.split("/")[1] if obj.key.count("/") >= 2 else ""
        if upload_id in live:
            continue
        if obj.last_modified is not None and obj.last_modified > older_than:
            continue
        try:
            store.delete(tenant, obj.key)
        except ObjectNotFound:
            pass
