"""Text extraction for the full-text index, in a child process with a budget.

The readers (saas.ged.services.readers) run in a child process (saas.ged.services.extractor)
that limits its own CPU time and address space; this parent kills it at a wall-clock deadline,
and passes the bytes through a private temporary file and the text back through another, read
up to a bound. A document beyond a budget (the PDF of 2,000 pages sharing one 4.8 MB content
stream) is left unindexed with "texte non extrait : document trop complexe" recorded on its
version; the job ends there, without retry. A file that cannot be read yields an
ExtractionFailed with a French reason the version records; the document itself stays.

A child process, not a thread: it works the same under an RQ worker process and under the
embedded runner's threads (`make run`), the web process's memory and CPU are never at stake,
and the kernel enforces the limits whatever the readers do.

New versions enqueue the job kind EXTRACT_KIND, declared in ged/tasks.py.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from flask_babel import gettext as _

from saas.ged.models import DocumentVersion, ExtractionState
from saas.ged.services import extractor
from saas.ged.services.readers import ExtractionFailed
from saas.jobs import enqueue
from saas.units import format_size

log = logging.getLogger("saas.ged.extract")

EXTRACT_KIND = "ged.extract_text"
# Where `python -m saas.ged.services.extractor` finds the saas package.
_PACKAGE_ROOT = str(Path(__file__).resolve().parents[3])

__all__ = ["EXTRACT_KIND", "Budget", "ExtractionFailed", "enqueue_extraction", "extract_file",
           "extractable"]


@dataclass(frozen=True)
class Budget:
    """What one extraction may spend (GedSettings.extract_*)."""

    cpu_seconds: int
    memory_bytes: int
    wall_seconds: float
    max_pages: int
    max_chars: int

    @classmethod
    def from_settings(cls, ged) -> Budget:
        return cls(cpu_seconds=ged.extract_cpu_seconds, memory_bytes=ged.extract_memory_bytes,
                   wall_seconds=ged.extract_wall_seconds, max_pages=ged.extract_max_pages,
                   max_chars=ged.extract_max_chars)

    @property
    def output_bytes(self) -> int:
        # The text as JSON: at most 6 bytes a character (\uXXXX escapes), plus the envelope.
        return self.max_chars * 6 + 64 * 1024


def _too_complex(why: str) -> ExtractionFailed:
    return ExtractionFailed("too_complex",
                            _("Texte non extrait : document trop complexe (%(why)s).", why=why))


def extractable(content_type: str) -> bool:
    """True when the GED knows how to extract text from this content type."""
    base = content_type.split(";", 1)[0]
    return (base == "application/pdf" or base.startswith("text/")
            or base in ("application/xml", "message/rfc822")
            or "opendocument" in base or "openxmlformats" in base)


def _child_environment() -> dict[str, str]:
    # Built from scratch: the child inherits none of the platform's secrets (database URLs,
    # keys) from the worker's environment.
    return {"PATH": os.defpath, "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8",
            "PYTHONPATH": _PACKAGE_ROOT, "PYTHONDONTWRITEBYTECODE": "1"}


def extract_file(path: str | os.PathLike, content_type: str, budget: Budget) -> str:
    """Return the text of the file at `path`, read by a child process within `budget`.

    Raise ExtractionFailed (code "too_complex" past a budget; the readers' codes otherwise);
    OSError when no child could be started (the caller may retry later).
    """
    with tempfile.TemporaryDirectory(prefix="mutualis-extract-") as work:
        output = Path(work) / "result.json"
        errors = Path(work) / "stderr"
        request = {"input": str(Path(path).resolve()), "content_type": content_type,
                   "output": str(output), "cpu_seconds": budget.cpu_seconds,
                   "memory_bytes": budget.memory_bytes, "output_bytes": budget.output_bytes,
                   "max_chars": budget.max_chars, "max_pages": budget.max_pages}
        with open(errors, "wb") as stderr:
            child = subprocess.Popen(
                [sys.executable, "-m", extractor.__name__, json.dumps(request)],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr,
                env=_child_environment(), cwd=work, close_fds=True)
            try:
                status = child.wait(timeout=budget.wall_seconds)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
                log.warning("text extraction killed after %ss", budget.wall_seconds)
                raise _too_complex(_("plus de %(n)d s", n=budget.wall_seconds)) from None
            except BaseException:
                # The job itself is stopping (its own timeout, shutdown): never leave the child.
                child.kill()
                child.wait()
                raise
        if status in (-signal.SIGXCPU, -signal.SIGKILL):
            raise _too_complex(_("plus de %(n)d s de calcul", n=budget.cpu_seconds))
        if status == extractor.TOO_COMPLEX_EXIT:
            raise _too_complex(_("plus de %(n)s de mémoire", n=format_size(budget.memory_bytes)))
        if status == -signal.SIGXFSZ:
            raise _too_complex(_("texte trop long"))
        if status != 0:
            with open(errors, "rb") as stderr:
                stderr.seek(max(0, errors.stat().st_size - 2000))
                tail = stderr.read().decode("utf-8", errors="replace")
            log.error("text extraction child ended with status %s: %s", status, tail)
            raise ExtractionFailed("extractor_failed",
                                   _("Texte non extrait : l'extraction s'est arrêtée "
                                     "(code %(status)d).", status=status))
        try:
            with open(output, "rb") as result_file:
                raw = result_file.read(budget.output_bytes + 1)
            if len(raw) > budget.output_bytes:  # pragma: no cover - RLIMIT_FSIZE stops it first
                raise _too_complex(_("texte trop long"))
            result = json.loads(raw)
        except (OSError, ValueError) as exc:
            log.error("text extraction child left no readable result: %s", exc)
            raise ExtractionFailed("extractor_failed",
                                   _("Texte non extrait : l'extraction n'a rendu aucun "
                                     "résultat.")) from None
    if "text" in result:
        return str(result["text"])[: budget.max_chars]
    raise ExtractionFailed(str(result.get("code") or "unreadable")[:40],
                           str(result.get("reason") or "")[:500])


def enqueue_extraction(version: DocumentVersion) -> None:
    """Enqueue a pending version's text extraction in the open transaction (idempotent)."""
    if version.extraction_state == ExtractionState.PENDING:
        enqueue(EXTRACT_KIND, key=f"extract:{version.id}", version_id=str(version.id))

