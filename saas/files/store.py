"""Store a file in a commune's bucket: typed from its bytes, bounded, SHA-256 hashed, checked.

A file enters a bucket one way: its head is sniffed (programs and active content refused), the
bytes are written (streamed from the client, or composed from the pieces of a resumable
upload), then the stored object is checked (a ZIP's central directory). Nothing stays in the
bucket when any of it refuses the file.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass

from flask_babel import gettext as _

from saas.errors import AppError
from saas.files import sniff
from saas.files.streams import HeadThenStream, RangedObjectFile, read_head
from saas.storage import get_store
from saas.storage.base import ObjectNotFound, StorageError, StoredObject

log = logging.getLogger("saas.files")

# Declared sizes of a DOCX/ODT/ZIP beyond which it is refused (see sniff.zip_is_sane).
ZIP_MAX_TOTAL = 1024 ** 3
ZIP_MAX_RATIO = 200

_UNSAFE_NAME_CHARS = re.compile(r'[<>:"|?*]')


@dataclass(frozen=True)
class StoredFile:
    """A file kept in a bucket: its key, the store's record (size, SHA-256, version), its type."""

    key: str
    stored: StoredObject
    sniffed: sniff.Sniffed
    filename: str

    @property
    def size(self) -> int:
        return self.stored.size


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


def refusal(exc: sniff.Refused, status: int | None = None) -> AppError:
    """The AppError for a refused file: 422 for an empty one, 415 for a refused type."""
    if status is None:
        status = 422 if exc.code == "empty_file" else 415
    return AppError(status, exc.code, exc.reason)


def sniff_head(head: bytes, filename: str | None) -> sniff.Sniffed:
    """The type of a file from its first bytes; AppError (415, 422 when empty) if refused."""
    try:
        return sniff.sniff(head, filename)
    except sniff.Refused as exc:
        raise refusal(exc) from None


def delete_quietly(tenant, key: str) -> None:
    """Delete an object a failed write left behind; the orphan sweeps catch what this misses."""
    try:
        get_store().delete(tenant, key)
    except ObjectNotFound:
        pass
    except StorageError:
        # It has no database row: the owner's orphan sweep will find it.
        log.warning("could not delete object %s after a failed write", key, exc_info=True)


def store_stream(tenant, key: str, stream, *, filename: str | None, limit: int | None = None,
                 on_limit: Callable[[int], Exception] | None = None,
                 metadata: dict[str, str] | None = None) -> StoredFile:
    """Stream a file into `tenant`'s bucket; past `limit` bytes, raise `on_limit(count)`."""
    head = read_head(stream, sniff.HEAD_SIZE)
    body = HeadThenStream(head, stream, limit=limit, on_limit=on_limit)

    def write(sniffed: sniff.Sniffed) -> StoredObject:
        return get_store().put(tenant, key, body, content_type=sniffed.content_type,
                               metadata=metadata)

    return _store(tenant, key, head, filename, write)


def store_pieces(tenant, key: str, pieces: list[tuple[str, str | None]], *,
                 filename: str | None, metadata: dict[str, str] | None = None) -> StoredFile:
    """Compose stored pieces (key, version id) into one file under `key`, checked as one."""
    store = get_store()
    first_key, first_version = pieces[0]
    with store.get(tenant, first_key, version_id=first_version) as reader:
        head = reader.read(sniff.HEAD_SIZE)

    def write(sniffed: sniff.Sniffed) -> StoredObject:
        return store.compose(tenant, key, pieces, content_type=sniffed.content_type,
                             metadata=metadata)

    return _store(tenant, key, head, filename, write)


def _store(tenant, key: str, head: bytes, filename: str | None,
           write: Callable[[sniff.Sniffed], StoredObject]) -> StoredFile:
    """Sniff `head`, write the object, check it once stored; nothing stays on refusal."""
    safe_name = sanitize_filename(filename)
    sniffed = sniff_head(head, safe_name)
    stored = write(sniffed)
    try:
        if stored.size == 0:  # pragma: no cover - sniff refuses empty heads first
            raise AppError(422, "empty_file", _("Le fichier est vide (0 octet)."))
        if sniffed.is_zip:
            sniff.zip_is_sane(RangedObjectFile(get_store(), tenant, key, stored.size,
                                               stored.version_id),
                              max_total=ZIP_MAX_TOTAL, max_ratio=ZIP_MAX_RATIO)
    except sniff.Refused as exc:
        delete_quietly(tenant, key)
        raise refusal(exc, 422) from None
    except BaseException:
        delete_quietly(tenant, key)
        raise
    return StoredFile(key=key, stored=stored, sniffed=sniffed, filename=safe_name)
