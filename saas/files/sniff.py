"""Content type from the bytes, never from the name: a small signature table of what is kept.

Accepted: office documents, PDFs, images, plans, archives and text. Refused: programs (Windows,
Linux, macOS executables, Java classes, scripts) and active web content (HTML, SVG, JavaScript),
which a browser could run from the commune's own origin.

The name only refines a type the bytes already established (an OLE2 container is a Word, Excel
or PowerPoint file; text may be CSV), never the other way round.
"""

from __future__ import annotations

import io
import re
import struct
from dataclasses import dataclass

from flask_babel import gettext as _

from saas.units import format_size

# What the sniffer needs to see: enough for a ZIP's first local headers and a text sample.
HEAD_SIZE = 64 * 1024


class Refused(Exception):
    """The bytes are of a kind the platform does not keep; `code` is stable, `reason` is French."""

    def __init__(self, code: str, reason: str):
        super().__init__(reason)
        self.code = code
        self.reason = reason


@dataclass(frozen=True)
class Sniffed:
    content_type: str
    # A ZIP container (DOCX, ODT…): its central directory is checked once fully stored.
    is_zip: bool = False
    # PDFs and raster images can be shown in the browser.
    previewable: bool = False


_ODF = {
    b"application/vnd.oasis.opendocument.text",
    b"application/vnd.oasis.opendocument.spreadsheet",
    b"application/vnd.oasis.opendocument.presentation",
    b"application/vnd.oasis.opendocument.graphics",
}
_OOXML = (
    (b"word/", "application/vnd.openxmlformats-officedocument.wordprocessingml.document"),
    (b"xl/", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
    (b"ppt/", "application/vnd.openxmlformats-officedocument.presentationml.presentation"),
)
_OLE_BY_EXT = {
    "doc": "application/msword",
    "dot": "application/msword",
    "xls": "application/vnd.ms-excel",
    "ppt": "application/vnd.ms-powerpoint",
    "msg": "application/vnd.ms-outlook",
}
_TEXT_BY_EXT = {
    "csv": "text/csv",
    "xml": "application/xml",
    "eml": "message/rfc822",
    "dxf": "image/vnd.dxf",
    "md": "text/markdown",
}

# (signature, offset, content type, previewable)
_SIGNATURES: tuple[tuple[bytes, int, str, bool], ...] = (
    (b"%PDF-", 0, "application/pdf", True),
    (b"\x89PNG\r\n\x1a\n", 0, "image/png", True),
    (b"\xff\xd8\xff", 0, "image/jpeg", True),
    (b"GIF87a", 0, "image/gif", True),
    (b"GIF89a", 0, "image/gif", True),
    (b"II*\x00", 0, "image/tiff", False),
    (b"MM\x00*", 0, "image/tiff", False),
    (b"{\\rtf", 0, "application/rtf", False),
    (b"AC10", 0, "image/vnd.dwg", False),
    (b"\x1f\x8b", 0, "application/gzip", False),
    (b"7z\xbc\xaf\x27\x1c", 0, "application/x-7z-compressed", False),
    (b"OggS", 0, "audio/ogg", False),
    (b"ID3", 0, "audio/mpeg", False),
)

# Programs: refused whatever the name says.
_EXECUTABLES: tuple[tuple[bytes, str], ...] = (
    (b"MZ", "Windows (PE/EXE/DLL)"),
    (b"\x7fELF", "Linux (ELF)"),
    (b"\xca\xfe\xba\xbe", "Java ou macOS (Mach-O universel)"),
    (b"\xfe\xed\xfa\xce", "macOS (Mach-O)"),
    (b"\xfe\xed\xfa\xcf", "macOS (Mach-O)"),
    (b"\xce\xfa\xed\xfe", "macOS (Mach-O)"),
    (b"\xcf\xfa\xed\xfe", "macOS (Mach-O)"),
    (b"#!", "script"),
    (b"\x00asm", "WebAssembly"),
    (b"dex\n", "Android (DEX)"),
)

_ACTIVE_WEB = re.compile(
    rb"^\s*(?:<\?xml[^>]*>\s*)?(?:<!--.*?-->\s*)*"
    rb"(?:<!doctype\s+html|<html|<head|<body|<script|<svg|<iframe|<object|<embed)",
    re.IGNORECASE | re.DOTALL,
)
_BOMS = (b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff")


def _extension(filename: str | None) -> str:
    if not filename or "." not in filename:
        return ""
    return filename.rsplit(".", 1)[1].lower()


def _sniff_zip(head: bytes) -> str:
    # ODF puts an uncompressed "mimetype" entry first, right after its 30-byte local header.
    if head[30:38] == b"mimetype":
        for kind in _ODF:
            if head[38:38 + len(kind)] == kind:
                return kind.decode()
    if b"[Content_Types].xml" in head or any(marker in head for marker, _ in _OOXML):
        for marker, kind in _OOXML:
            if marker in head:
                return kind
    return "application/zip"


def _is_text(head: bytes) -> str | None:
    """Return the text encoding the head looks like, or None for binary data."""
    sample = head
    for bom in _BOMS:
        if sample.startswith(bom):
            return "utf-16" if bom != b"\xef\xbb\xbf" else "utf-8"
    if b"\x00" in sample:
        return None
    try:
        # The head may end in the middle of a multi-byte character.
        sample.decode("utf-8")
        return "utf-8"
    except UnicodeDecodeError as exc:
        if exc.start >= len(sample) - 3 and exc.reason == "unexpected end of data":
            return "utf-8"
    controls = sum(1 for b in sample if b < 0x20 and b not in (9, 10, 12, 13))
    if controls <= len(sample) // 100:
        return "latin-1"
    return None


def sniff(head: bytes, filename: str | None = None) -> Sniffed:
    """Classify the first bytes of a file (up to HEAD_SIZE); raise Refused for what is refused."""
    if not head:
        raise Refused("empty_file", _("Le fichier est vide (0 octet) : choisissez un fichier "
                                      "qui a un contenu."))
    for magic, what in _EXECUTABLES:
        if head.startswith(magic):
            raise Refused(
                "executable_refused",
                _("Ce fichier est un programme exécutable (%(what)s), quel que soit son nom : "
                  "la GED n'accepte pas les programmes.", what=what),
            )
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        kind = _sniff_zip(head)
        return Sniffed(kind, is_zip=True)
    if head.startswith(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"):
        return Sniffed(_OLE_BY_EXT.get(_extension(filename), "application/x-ole-storage"))
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return Sniffed("image/webp", previewable=True)
    if head[4:8] == b"ftyp":
        return Sniffed("video/mp4")
    for magic, offset, kind, previewable in _SIGNATURES:
        if head[offset:offset + len(magic)] == magic:
            return Sniffed(kind, previewable=previewable)
    encoding = _is_text(head)
    if encoding is None:
        raise Refused(
            "unsupported_type",
            _("Type de fichier non reconnu : la GED accepte les PDF, documents bureautiques "
              "(ODT, DOCX, XLSX…), images, plans (DWG, DXF), archives ZIP et fichiers texte."),
        )
    probe = head.decode(encoding, errors="replace").encode("utf-8", errors="replace")
    for bom in _BOMS:
        probe = probe.removeprefix(bom)
    if _ACTIVE_WEB.match(probe[:4096]):
        raise Refused(
            "active_content_refused",
            _("Les pages web, images SVG et scripts ne sont pas acceptés (contenu actif) : "
              "enregistrez le document en PDF."),
        )
    kind = _TEXT_BY_EXT.get(_extension(filename), "text/plain")
    if kind.startswith("text/"):
        kind += f"; charset={encoding}"
    return Sniffed(kind)


# The end of a ZIP: the end-of-central-directory record (22 bytes) and its comment (< 64 KiB).
_EOCD = b"PK\x05\x06"
_EOCD_SIZE = 22
_EOCD_SEARCH = _EOCD_SIZE + 0xFFFF
_ZIP64_LOCATOR = b"PK\x06\x07"
_ZIP64_LOCATOR_SIZE = 20
_ZIP64_EOCD = b"PK\x06\x06"
_ZIP64_EOCD_SIZE = 56
_CENTRAL = b"PK\x01\x02"
_CENTRAL_SIZE = 46
# Central-directory bytes allowed per declared entry: a record is 46 bytes plus its name,
# extra field and comment, a few hundred bytes in office documents.
_DIRECTORY_BYTES_PER_ENTRY = 1024


def _corrupt(reason: str) -> Refused:
    return Refused("corrupt_archive",
                   _("L'archive (ou le document bureautique) est illisible : %(e)s.", e=reason))


def _read_at(fileobj, offset: int, length: int) -> bytes:
    fileobj.seek(offset)
    data = fileobj.read(length)
    if len(data) != length:
        raise _corrupt("fin de fichier inattendue")
    return data


def _file_size(fileobj) -> int:
    return fileobj.seek(0, 2)


def _directory(fileobj) -> tuple[int, int, int]:
    """Return (declared entries, central directory start, its size) from the end records.

    Reads at most the last 64 KiB of the file (the end record and its comment) and, for ZIP64,
    the 56-byte ZIP64 end record: never the directory itself.
    """
    size = _file_size(fileobj)
    if size < _EOCD_SIZE:
        raise _corrupt("fichier trop court")
    tail_start = max(0, size - _EOCD_SEARCH)
    tail = _read_at(fileobj, tail_start, size - tail_start)
    at = tail.rfind(_EOCD)
    while at >= 0 and at + _EOCD_SIZE > len(tail):
        at = tail.rfind(_EOCD, 0, at)
    if at < 0:
        raise _corrupt("fin d'archive introuvable")
    (_sig, disk, cd_disk, _on_disk, entries, cd_size, cd_offset,
     _comment) = struct.unpack("<4s4H2LH", tail[at:at + _EOCD_SIZE])
    end_record = tail_start + at
    directory_end = end_record
    locator_at = at - _ZIP64_LOCATOR_SIZE
    if locator_at >= 0 and tail[locator_at:locator_at + 4] == _ZIP64_LOCATOR:
        # As zipfile does: the ZIP64 end record sits right before its locator, whatever
        # offset the locator records (data may have been prepended to the archive).
        z64_at = end_record - _ZIP64_LOCATOR_SIZE - _ZIP64_EOCD_SIZE
        if z64_at < 0:
            raise _corrupt("fin d'archive ZIP64 introuvable")
        record = _read_at(fileobj, z64_at, _ZIP64_EOCD_SIZE)
        if record[:4] != _ZIP64_EOCD:
            raise _corrupt("fin d'archive ZIP64 introuvable")
        (_sig, _rsize, _made, _need, disk, cd_disk, _on_disk, entries, cd_size,
         cd_offset) = struct.unpack("<4sQ2H2L4Q", record)
        directory_end = z64_at
    if disk or cd_disk:
        raise _corrupt("archive en plusieurs volumes")
    start = directory_end - cd_size
    if start < 0:
        raise _corrupt("répertoire central hors du fichier")
    return entries, start, cd_size


def _zip64_sizes(extra: bytes, file_size: int, compress_size: int) -> tuple[int, int]:
    """The real sizes of an entry whose 32-bit fields say 0xFFFFFFFF (zipfile's _decodeExtra)."""
    while len(extra) >= 4:
        tag, length = struct.unpack("<2H", extra[:4])
        body = extra[4:4 + length]
        if tag == 0x0001:
            fields = list(struct.unpack(f"<{len(body) // 8}Q", body[:len(body) // 8 * 8]))
            if file_size == 0xFFFFFFFF:
                if not fields:
                    raise _corrupt("champ ZIP64 incomplet")
                file_size = fields.pop(0)
            if compress_size == 0xFFFFFFFF:
                if not fields:
                    raise _corrupt("champ ZIP64 incomplet")
                compress_size = fields.pop(0)
            break
        extra = extra[4 + length:]
    return file_size, compress_size


def _entries(fileobj, start: int, size: int, max_entries: int):
    """Walk the central directory record by record, in bounded reads; yield (name, size, packed).

    Stops after `max_entries` + 1 records whatever the end record declared, so a directory that
    lies about its count costs no more than an honest one.
    """
    fileobj.seek(start)
    reader = io.BufferedReader(_Window(fileobj, size), 64 * 1024)
    for _count in range(max_entries + 1):
        fixed = reader.read(_CENTRAL_SIZE)
        if not fixed:
            return
        if len(fixed) != _CENTRAL_SIZE or fixed[:4] != _CENTRAL:
            raise _corrupt("répertoire central invalide")
        (_sig, _made, _need, _flags, _method, _time, _date, _crc, compress_size, file_size,
         name_len, extra_len, comment_len, _disk, _internal, _external,
         _offset) = struct.unpack("<4s6H3L5H2L", fixed)
        name = reader.read(name_len)
        extra = reader.read(extra_len)
        if len(name) != name_len or len(extra) != extra_len:
            raise _corrupt("répertoire central tronqué")
        if len(reader.read(comment_len)) != comment_len:
            raise _corrupt("répertoire central tronqué")
        file_size, compress_size = _zip64_sizes(extra, file_size, compress_size)
        yield name.decode("utf-8", errors="replace"), file_size, compress_size


class _Window(io.RawIOBase):
    """At most `size` bytes of `source` from its current position."""

    def __init__(self, source, size: int):
        self._source = source
        self._left = size

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        want = min(len(buffer), self._left)
        if want <= 0:
            return 0
        data = self._source.read(want)
        buffer[: len(data)] = data
        self._left -= len(data)
        return len(data)


def _too_many(count: int, max_entries: int) -> Refused:
    return Refused("zip_bomb", _("L'archive contient %(n)d fichiers (au plus %(max)d) : "
                                 "refusée par précaution.", n=count, max=max_entries))


def zip_is_sane(fileobj, *, max_total: int, max_ratio: int, max_entries: int = 10_000) -> None:
    """Check a ZIP's declared sizes (nothing is expanded), in memory bounded by `max_entries`.

    The entry count and the central directory's size come from the end records (the last
    64 KiB, plus the ZIP64 end record): too many entries, or a directory too big for its count,
    is refused before a byte of the directory is read. The directory is then walked record by
    record in bounded reads (never handed whole to zipfile, which would build an object per
    entry first). Raise Refused("zip_bomb") when there are too many entries, or the declared
    uncompressed size or a compression ratio is beyond what an office document can need;
    Refused("corrupt_archive") when unreadable.
    """
    try:
        declared, start, size = _directory(fileobj)
        if declared > max_entries:
            raise _too_many(declared, max_entries)
        if size > max(declared, 1) * _DIRECTORY_BYTES_PER_ENTRY + 64 * 1024:
            raise Refused("zip_bomb",
                          _("Le répertoire de l'archive (%(size)d Ko pour %(n)d fichier(s) "
                            "déclaré(s)) est anormalement grand : refusée par précaution.",
                            size=size // 1024, n=declared))
        total = 0
        count = 0
        for name, file_size, compress_size in _entries(fileobj, start, size, max_entries):
            count += 1
            if count > max_entries:
                raise _too_many(count, max_entries)
            total += file_size
            ratio = file_size / max(compress_size, 1)
            if file_size > 1024 * 1024 and ratio > max_ratio:
                raise Refused(
                    "zip_bomb",
                    _("L'archive contient « %(name)s », compressé %(ratio)d fois (au plus "
                      "%(max)d) : c'est la signature d'une bombe de décompression.",
                      name=name[:80], ratio=int(ratio), max=max_ratio),
                )
    except (OSError, ValueError, EOFError, struct.error) as exc:
        raise _corrupt(str(exc)) from exc
    if total > max_total:
        raise Refused(
            "zip_bomb",
            _("L'archive se décompresse en %(size)s (au plus %(max)s) : c'est la "
              "signature d'une bombe de décompression.",
              size=format_size(total), max=format_size(max_total)),
        )
