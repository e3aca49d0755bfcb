"""Serve a stored file: ETag (its SHA-256), 304, one Range (206/416), a SHA-256 re-check.

What is checked against the SHA-256 and size recorded at upload, before or while sending:

- a file up to `ServedFile.verify_whole_below` bytes is read and hashed whole before the first
  byte goes out, for a full GET and for any range of it: a mismatch is a clean 500, never a
  body;
- a larger file asked whole (no Range, `bytes=0-`, `bytes=0-<size-1>`) is hashed on the fly
  and its last chunk held back until the hash matched: a mismatch cuts the body short;
- a partial range of a larger file cannot be hashed without reading the whole object, so only
  what the store says of the object is checked (its size, and the SHA-256 it recorded when it
  has one); the integrity scrub finds the rest.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from urllib.parse import quote

from flask import Response, request
from flask_babel import gettext as _

from saas.errors import AppError
from saas.storage import get_store
from saas.storage.base import ObjectNotFound

log = logging.getLogger("saas.files")

INLINE_TYPES = ("application/pdf", "image/png", "image/jpeg", "image/gif", "image/webp")


class IntegrityError(RuntimeError):
    """The bytes read back do not match the SHA-256 recorded at upload."""


@dataclass(frozen=True)
class ServedFile:
    """What serving needs of a stored file: where it is and what it was when stored."""

    key: str
    version_id: str | None
    size: int
    sha256: str
    content_type: str
    filename: str
    # Names the file in logs (the feature's row id).
    label: str
    # Up to this size the file is read and hashed whole before any byte is sent (0: never).
    verify_whole_below: int = 0


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


def serve(tenant, file: ServedFile, *, inline: bool = False) -> Response:
    """Serve a file's bytes from `tenant`'s bucket: ETag, 304, Range (206/416), streaming.

    Checked against the recorded SHA-256 as the module docstring says: small files whole before
    sending, any read of a whole larger file on the fly with its last chunk held back.
    """
    etag = f'"{file.sha256}"'
    inline = inline and file.content_type.split(";", 1)[0] in INLINE_TYPES
    headers = {
        "ETag": etag,
        "Accept-Ranges": "bytes",
        "Cache-Control": "private, no-cache",
        "Content-Disposition": content_disposition(file.filename, inline),
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
    size = file.size
    byte_range = request.range
    if_range = request.headers.get("If-Range")
    if byte_range is not None and if_range and if_range.strip() != etag:
        byte_range = None  # the client's copy is another version: send the whole thing
    # A Range header werkzeug could not parse (or several ranges) is ignored, as RFC 9110 allows.
    start, stop = 0, size
    ranged = False
    if byte_range is not None and len(byte_range.ranges) == 1:
        bounds = byte_range.range_for_length(size)
        if bounds is None:
            raise AppError(416, "range_not_satisfiable",
                           _("Plage d'octets invalide : le fichier fait %(n)d octets.", n=size),
                           {"size": size}, headers={"Content-Range": f"bytes */{size}"})
        start, stop = bounds
        ranged = True
        headers["Content-Range"] = f"bytes {start}-{stop - 1}/{size}"
    headers["Content-Length"] = str(stop - start)
    status = 206 if ranged else 200
    if size <= file.verify_whole_below:
        body = _read_verified(tenant, file)
        return Response(body[start:stop], status=status, headers=headers,
                        mimetype=file.content_type, direct_passthrough=True)
    whole = start == 0 and stop == size
    store = get_store()
    try:
        if whole:
            reader = store.get(tenant, file.key, version_id=file.version_id)
        else:
            reader = store.get(tenant, file.key, version_id=file.version_id,
                               offset=start, length=stop - start)
    except ObjectNotFound:
        raise _missing(file) from None
    try:
        _check_described(reader.info, file)
    except AppError:
        reader.close()
        raise
    # The body is sent after the view returned, when the session is gone: plain values only.
    chunks = (_verified(reader, file.sha256, _label(file)) if whole else _plain(reader))
    response = Response(chunks, status=status, headers=headers, mimetype=file.content_type,
                        direct_passthrough=True)
    response.call_on_close(reader.close)
    return response


def _label(file: ServedFile) -> str:
    return f"{file.label} ({file.key})"


def _integrity_error(file: ServedFile, why: str) -> AppError:
    log.error("integrity: %s %s; not served", _label(file), why)
    return AppError(500, "integrity_error",
                    _("Le fichier de cette version ne correspond plus à son empreinte SHA-256 : "
                      "il n'est pas envoyé, l'équipe technique a été prévenue."))


def _check_described(info, file: ServedFile) -> None:
    """What the store says of the object (size, recorded SHA-256) must match the file's."""
    if info.size != file.size:
        raise _integrity_error(file, f"is {info.size} bytes in the store, {file.size} recorded")
    if info.sha256 and info.sha256 != file.sha256:
        raise _integrity_error(file, "carries another SHA-256 in the store")


def _read_verified(tenant, file: ServedFile) -> bytes:
    """The whole (small) file, once its size and SHA-256 matched; AppError 500 otherwise."""
    try:
        reader = get_store().get(tenant, file.key, version_id=file.version_id)
    except ObjectNotFound:
        raise _missing(file) from None
    with reader:
        _check_described(reader.info, file)
        digest = hashlib.sha256()
        parts = []
        count = 0
        for chunk in reader:
            count += len(chunk)
            if count > file.size:
                raise _integrity_error(file, "reads back longer than recorded")
            digest.update(chunk)
            parts.append(chunk)
    if count != file.size or digest.hexdigest() != file.sha256:
        raise _integrity_error(file, "reads back with another SHA-256")
    return b"".join(parts)


def _missing(file: ServedFile) -> AppError:
    log.error("object %s of %s is missing from the store", file.key, file.label)
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
            log.error("integrity: %s reads back with another SHA-256", label)
            raise IntegrityError(f"SHA-256 mismatch on {label}")
        if held is not None:
            yield held
    finally:
        reader.close()
