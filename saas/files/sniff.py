"""Content type from the bytes, never from the name: a small signature table of what is kept.

Accepted: office documents, PDFs, images, plans, archives and text. Refused: programs (Windows,
Linux, macOS executables, Java classes, scripts) and active web content (HTML, SVG, JavaScript),
which a browser could run from the commune's own origin.

The name only refines a type the bytes already established (an OLE2 container is a Word, Excel
or PowerPoint file; text may be CSV), never the other way round.
"""

from __future__ import annotations

import re
import zipfile
from dataclasses import dataclass

from flask_babel import gettext as _

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


def zip_is_sane(fileobj, *, max_total: int, max_ratio: int, max_entries: int = 10_000) -> None:
    """Check a ZIP's central directory (declared sizes only, nothing is expanded).

    Raise Refused("zip_bomb") when the declared uncompressed size or the compression ratio is
    beyond what an office document can need, Refused("corrupt_archive") when unreadable.
    """
    try:
        with zipfile.ZipFile(fileobj) as archive:
            infos = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError) as exc:
        raise Refused("corrupt_archive",
                      _("L'archive (ou le document bureautique) est illisible : %(e)s.",
                        e=str(exc))) from exc
    if len(infos) > max_entries:
        raise Refused("zip_bomb", _("L'archive contient %(n)d fichiers (au plus %(max)d) : "
                                    "refusée par précaution.", n=len(infos), max=max_entries))
    total = 0
    compressed = 0
    for info in infos:
        total += info.file_size
        compressed += info.compress_size
        ratio = info.file_size / max(info.compress_size, 1)
        if info.file_size > 1024 * 1024 and ratio > max_ratio:
            raise Refused(
                "zip_bomb",
                _("L'archive contient « %(name)s », compressé %(ratio)d fois (au plus "
                  "%(max)d) : c'est la signature d'une bombe de décompression.",
                  name=info.filename[:80], ratio=int(ratio), max=max_ratio),
            )
    if total > max_total:
        raise Refused(
            "zip_bomb",
            _("L'archive se décompresse en %(size)d Mo (au plus %(max)d Mo) : c'est la "
              "signature d'une bombe de décompression.",
              size=total // (1024 * 1024), max=max_total // (1024 * 1024)),
        )
