"""Reading the text out of a file: PDF (pypdf), ODF and OOXML (their XML), plain text.

What is kept is bounded: ZIP members are read through a counting reader (a zip bomb stops at
the limit, it never expands in memory), XML goes through defusedxml (no entities, no DTD),
PDFs are read page by page up to a page and character budget. A file that cannot be read
yields an ExtractionFailed with a French reason the version records.

This module runs in the extraction child process (saas.ged.services.extractor): it imports
neither the database nor the job system, so the child starts small and fast.
"""

from __future__ import annotations

import io
import logging
import zipfile
from typing import BinaryIO

from defusedxml import ElementTree as SafeET
from flask_babel import gettext as _

from saas.files import sniff
from saas.units import format_size

# Defaults of the text kept per version (the settings' extract_max_chars/_pages override them;
# a tsvector caps at 1 MB anyway).
MAX_TEXT_CHARS = 400_000
MAX_PDF_PAGES = 2000
# One XML member of an office document may expand to this much, and the whole archive to
# MAX_ZIP_TOTAL: beyond, it is a zip bomb, not a letter from the prefecture.
MAX_MEMBER_BYTES = 64 * 1024 * 1024
MAX_ZIP_TOTAL = 512 * 1024 * 1024
MAX_ZIP_RATIO = 200


class ExtractionFailed(Exception):
    """The text could not be extracted; `code` is stable, `reason` French."""

    def __init__(self, code: str, reason: str):
        super().__init__(reason)
        self.code = code
        self.reason = reason


class _Bounded(io.RawIOBase):
    """A read-only stream that raises once more than `limit` bytes came out of `source`."""

    def __init__(self, source: BinaryIO, limit: int, label: str):
        self._source = source
        self._limit = limit
        self._label = label
        self.count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        data = self._source.read(min(len(buffer), 64 * 1024))
        self.count += len(data)
        if self.count > self._limit:
            raise ExtractionFailed(
                "zip_bomb",
                _("« %(name)s » se décompresse au-delà de %(max)s : lecture arrêtée "
                  "(bombe de décompression probable).", name=self._label,
                  max=format_size(self._limit)),
            )
        buffer[: len(data)] = data
        return len(data)


class _TextBudget:
    def __init__(self, limit: int):
        self.parts: list[str] = []
        self.size = 0
        self.limit = limit

    def add(self, text: str) -> bool:
        """Append text; return False once the budget is spent."""
        if not text:
            return self.size < self.limit
        room = self.limit - self.size
        if room <= 0:
            return False
        text = text[:room]
        self.parts.append(text)
        self.size += len(text)
        return self.size < self.limit

    def text(self) -> str:
        return "".join(self.parts)


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _xml_text(stream: BinaryIO, budget: _TextBudget, *, ooxml: bool) -> None:
    """Collect the text of an office XML part into the budget, paragraph by paragraph."""
    try:
        for _event, elem in SafeET.iterparse(stream, events=("end",)):
            name = _local(elem.tag)
            if ooxml:
                # OOXML keeps text in <w:t>/<a:t> runs inside <w:p>/<a:p> paragraphs.
                if name == "t":
                    more = budget.add(elem.text or "")
                elif name == "p":
                    more = budget.add("\n")
                    elem.clear()
                else:
                    continue
            elif name in ("p", "h"):
                # ODF: paragraphs and headings hold the text, with spans nested inside.
                more = budget.add("".join(elem.itertext()) + "\n")
                elem.clear()
            else:
                continue
            if not more:
                return
    except ExtractionFailed:
        raise
    except Exception as exc:  # defusedxml's refusals and plain parse errors alike
        raise ExtractionFailed("malformed_xml",
                               _("Le contenu XML du document est invalide : %(e)s.",
                                 e=str(exc)[:200])) from exc


def _office_text(fileobj: BinaryIO, content_type: str, max_chars: int) -> str:
    try:
        sniff.zip_is_sane(fileobj, max_total=MAX_ZIP_TOTAL, max_ratio=MAX_ZIP_RATIO)
    except sniff.Refused as exc:
        raise ExtractionFailed(exc.code, exc.reason) from exc
    fileobj.seek(0)
    budget = _TextBudget(max_chars)
    try:
        archive = zipfile.ZipFile(fileobj)
    except zipfile.BadZipFile as exc:
        raise ExtractionFailed("corrupt_archive",
                               _("Le document bureautique est illisible : %(e)s.", e=str(exc))) from exc
    with archive:
        names = archive.namelist()
        if "opendocument" in content_type:
            members, ooxml = [n for n in ("content.xml", "meta.xml") if n in names], False
        elif "wordprocessingml" in content_type:
            members = [n for n in names if n == "word/document.xml"
                       or n.startswith(("word/header", "word/footer", "word/footnotes"))]
            ooxml = True
        elif "spreadsheetml" in content_type:
            members, ooxml = [n for n in names if n == "xl/sharedStrings.xml"], True
        elif "presentationml" in content_type:
            members = sorted(n for n in names if n.startswith("ppt/slides/slide") and n.endswith(".xml"))
            ooxml = True
        else:
            return ""
        for name in members:
            with archive.open(name) as member:
                bounded = io.BufferedReader(_Bounded(member, MAX_MEMBER_BYTES, name))
                try:
                    _xml_text(bounded, budget, ooxml=ooxml)
                except (zipfile.BadZipFile, EOFError, OSError) as exc:
                    raise ExtractionFailed("corrupt_archive",
                                           _("Le document bureautique est illisible : %(e)s.",
                                             e=str(exc))) from exc
            if budget.size >= budget.limit:
                break
    return budget.text()


def _pdf_text(fileobj: BinaryIO, max_chars: int, max_pages: int) -> str:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError, PyPdfError

    logging.getLogger("pypdf").setLevel(logging.ERROR)
    budget = _TextBudget(max_chars)
    try:
        reader = PdfReader(fileobj, strict=False)
        if reader.is_encrypted:
            try:
                reader.decrypt("")
            except Exception as exc:
                raise ExtractionFailed("encrypted_pdf",
                                       _("Le PDF est chiffré : son texte ne peut pas être indexé.")) from exc
        for index, page in enumerate(reader.pages):
            if index >= max_pages:
                break
            if not budget.add((page.extract_text() or "") + "\n"):
                break
    except ExtractionFailed:
        raise
    except (PdfReadError, PyPdfError, ValueError, KeyError, TypeError, AttributeError,
            IndexError, RecursionError, OSError, AssertionError, ZeroDivisionError) as exc:
        raise ExtractionFailed("malformed_pdf",
                               _("Le PDF est endommagé ou mal formé : %(e)s.",
                                 e=str(exc)[:200] or type(exc).__name__)) from exc
    return budget.text()


def _plain_text(fileobj: BinaryIO, content_type: str, max_chars: int) -> str:
    encoding = "utf-8"
    if "charset=" in content_type:
        encoding = content_type.split("charset=", 1)[1].strip() or "utf-8"
    reader = io.TextIOWrapper(fileobj, encoding=encoding, errors="replace")
    return reader.read(max_chars)


def extract_text(fileobj: BinaryIO, content_type: str, *, max_chars: int = MAX_TEXT_CHARS,
                 max_pages: int = MAX_PDF_PAGES) -> str:
    """Return the text of a seekable file of the given (sniffed) content type.

    Bounded in what it keeps (characters, pages, bytes expanded from archives), not in the time
    or memory a hostile document may cost: the GED runs it in a child process with those
    budgets (saas.ged.services.extraction).
    """
    base = content_type.split(";", 1)[0]
    if base == "application/pdf":
        text = _pdf_text(fileobj, max_chars, max_pages)
    elif "opendocument" in base or "openxmlformats" in base:
        text = _office_text(fileobj, base, max_chars)
    elif base.startswith("text/") or base in ("application/xml", "message/rfc822"):
        text = _plain_text(fileobj, content_type, max_chars)
    else:
        return ""
    # NUL bytes cannot be stored in PostgreSQL text columns.
    return text.replace("\x00", " ")
