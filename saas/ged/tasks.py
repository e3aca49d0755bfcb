"""GED jobs: text extraction, trash purge, retention sweep (bordereaux), orphan-object sweep,
integrity scrub.

Each is a plain function (callable from tests and the CLI) declared as a job kind; the sweeps
recur per commune through the scheduler. The work itself is in services.
"""

from __future__ import annotations

import dataclasses
import hashlib
import tempfile
import uuid
from datetime import timedelta
from pathlib import Path

import sqlalchemy as sa
from flask_babel import gettext as _

from saas.config import current_settings
from saas.extensions import db
from saas.ged.models import Document, DocumentVersion, ExtractionState
from saas.ged.services import extraction, intake, integrity, retention, uploads
from saas.ged.services.search import refresh_search
from saas.jobs import PermanentError, QueueNames, TransientError, job_kind, periodic
from saas.modelbase import utcnow
from saas.storage import get_store
from saas.storage.base import ObjectNotFound, StorageError
from saas.tenancy.current import current_tenant

# Objects younger than this are never swept: their database row may be about to commit.
ORPHAN_GRACE = timedelta(hours=6)
# Seconds one attempt of a text extraction may take (download, checksum, budgeted extraction).
EXTRACT_TIMEOUT = 900


def extract_text(document_version_id: str) -> dict:
    """Extract a version's text, store it, and refresh its document's search index."""
    version = db.session.execute(
        sa.select(DocumentVersion).where(DocumentVersion.id == uuid.UUID(str(document_version_id)))
    ).scalar_one_or_none()
    if version is None:
        return {"state": "gone"}
    tenant = current_tenant()
    if not extraction.extractable(version.content_type):
        version.extraction_state = ExtractionState.SKIPPED
        return {"state": "skipped"}
    sha = hashlib.sha256()
    budget = extraction.Budget.from_settings(current_settings().ged)
    # The budget ends the extraction, never the job's timeout (which would retry it): half the
    # timeout at most, the other half is for copying the file out of the bucket.
    budget = dataclasses.replace(budget, wall_seconds=min(budget.wall_seconds,
                                                          EXTRACT_TIMEOUT / 2))
    try:
        # On disk, in a private directory: the extraction child reads it from there.
        with tempfile.TemporaryDirectory(prefix="mutualis-version-") as work:
            source = Path(work) / "source"
            with open(source, "wb") as spool, get_store().get(
                    tenant, version.object_key, version_id=version.object_version_id) as reader:
                for chunk in reader:
                    sha.update(chunk)
                    spool.write(chunk)
            if sha.hexdigest() != version.sha256:
                raise PermanentError(_("Le contenu stocké ne correspond plus à son empreinte "
                                       "SHA-256 : extraction refusée."), code="integrity")
            text = extraction.extract_file(source, version.content_type, budget)
    except extraction.ExtractionFailed as exc:
        # Recorded on the version and shown where its indexing state is; retrying would only
        # spend the same budget again.
        version.extraction_state = ExtractionState.FAILED
        version.extraction_error = exc.reason[:500]
        version.extracted_text = None
        return {"state": "failed", "code": exc.code, "reason": exc.reason}
    except ObjectNotFound as exc:
        raise PermanentError(_("L'objet de cette version est introuvable."), code="missing") from exc
    except StorageError as exc:
        raise TransientError(_("Stockage indisponible : %(e)s", e=str(exc)[:200])) from exc
    except OSError as exc:  # no room for the copy, no child process to be had: later
        raise TransientError(_("Extraction impossible pour l'instant : %(e)s",
                               e=str(exc)[:200])) from exc
    version.extracted_text = text
    version.extraction_state = ExtractionState.DONE
    version.extraction_error = None
    document = db.session.get(Document, version.document_id)
    if document is not None and document.current_version_number == version.number:
        refresh_search(document)
    return {"state": "done", "chars": len(text)}


@job_kind(extraction.EXTRACT_KIND, queue=QueueNames.DOCUMENTS, timeout=EXTRACT_TIMEOUT,
          max_attempts=4, backoff=30)
def extract_text_job(version_id: str) -> dict:
    """Job: extract one version's text (see extract_text)."""
    return extract_text(version_id)


def purge_trash() -> dict:
    """Erase the current commune's documents left in the trash for more than 30 days."""
    return {"purged": retention.purge_trash(current_tenant())}


def retention_sweep() -> dict:
    """Propose a bordereau d'élimination listing documents past their DUA; destroys nothing."""
    proposal = retention.retention_sweep()
    return {"proposal": str(proposal.id) if proposal else None,
            "documents": len(proposal.items) if proposal else 0}


def sweep_orphans(grace_seconds: float | None = None) -> dict:
    """Delete objects of the commune's bucket that no row references (older than the grace).

    Covers documents (ged/…) whose row never committed and resumable uploads (uploads/…) that
    expired or lost their row.
    """
    tenant = current_tenant()
    grace = timedelta(seconds=grace_seconds) if grace_seconds is not None else ORPHAN_GRACE
    limit = utcnow() - grace
    try:
        removed = intake.sweep_orphans(tenant, limit)
        expired = uploads.sweep_uploads(tenant, limit)
    except StorageError as exc:
        raise TransientError(_("Stockage indisponible : %(e)s", e=str(exc)[:200])) from exc
    return {"removed": len(removed), "expired_uploads": expired}


@job_kind("ged.purge_trash", queue=QueueNames.MAINTENANCE, timeout=3600, max_attempts=3,
          backoff=300)
def purge_trash_job() -> dict:
    """Job: the daily trash purge of one commune."""
    return purge_trash()


@job_kind("ged.retention_sweep", queue=QueueNames.MAINTENANCE, timeout=3600, max_attempts=3,
          backoff=300)
def retention_sweep_job() -> dict:
    """Job: the daily retention sweep of one commune."""
    return retention_sweep()


@job_kind("ged.sweep_orphans", queue=QueueNames.MAINTENANCE, timeout=3600, max_attempts=3,
          backoff=300)
def sweep_orphans_job(grace_seconds: float | None = None) -> dict:
    """Job: the daily orphan-object sweep of one commune."""
    return sweep_orphans(grace_seconds)


def integrity_scrub(run_id: str | None = None) -> dict:
    """Check the next versions of the commune's integrity scrub (a new run when none is open)."""
    try:
        run = integrity.scrub_step(current_tenant(), run_id)
    except StorageError as exc:
        raise TransientError(_("Stockage indisponible : %(e)s", e=str(exc)[:200])) from exc
    if run is None:
        return {"state": "busy"}
    return {"run": str(run.id), "finished": run.finished_at is not None, "checked": run.checked,
            "ok": run.ok, "mismatched": run.mismatched, "missing": run.missing}


@job_kind(integrity.SCRUB_KIND, queue=QueueNames.MAINTENANCE, timeout=3600, max_attempts=5,
          backoff=300)
def integrity_scrub_job(run_id: str | None = None) -> dict:
    """Job: one bounded step of a commune's integrity scrub (see services/integrity.py)."""
    return integrity_scrub(run_id)


periodic("ged.purge_trash", "ged.purge_trash", daily_at="01:30", per_tenant=True)
periodic("ged.retention_sweep", "ged.retention_sweep", daily_at="04:00", per_tenant=True)
periodic("ged.sweep_orphans", "ged.sweep_orphans", daily_at="04:30", per_tenant=True)
periodic("ged.integrity_scrub", integrity.SCRUB_KIND, daily_at="02:00", per_tenant=True)
