"""The integrity scrub: every version's bytes read back and compared with what was recorded.

Downloads check the SHA-256 too (saas/files/serve.py), but only of the file asked for, and a
partial range of a large file not at all; the scrub finds tampered and missing objects before
anyone downloads them. A run covers the commune's versions (current and older ones, trash
included) in id order; one step reads at most `GedSettings.scrub_batch_bytes`, then enqueues
the next step of the same run: a large commune never holds a worker for hours, and a step
retried after a storage failure starts again from the last committed cursor.

Each mismatched or missing version is logged at ERROR, audited in the commune's chain
(`ged.integrity.mismatch` / `ged.integrity.missing`) and listed in the run for the console.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from saas.audit.services import record
from saas.config import current_settings
from saas.extensions import db
from saas.ged.models import DocumentVersion, ScrubRun
from saas.jobs import enqueue
from saas.modelbase import utcnow
from saas.storage import get_store
from saas.storage.base import ObjectNotFound
from saas.tenancy.models import TenantSnapshot

log = logging.getLogger("saas.ged")

SCRUB_KIND = "ged.integrity_scrub"
# Problems listed in a run (the counts go on past it).
MAX_PROBLEMS = 200
# Versions read from the database at a time.
_PAGE = 500


@dataclass(frozen=True)
class ScrubSummary:
    """A run as the console shows it."""

    started_at: datetime
    finished_at: datetime | None
    checked: int
    ok: int
    mismatched: int
    missing: int
    bytes_read: int
    document_ids: tuple[str, ...]


def _open_run(run_id: str | None) -> ScrubRun | None:
    """The run to go on with, locked (None: another step of it is running right now)."""
    stmt = sa.select(ScrubRun).with_for_update(skip_locked=True)
    if run_id is not None:
        stmt = stmt.where(ScrubRun.id == uuid.UUID(str(run_id)))
    else:
        # The daily start resumes an unfinished run (its next step was lost) before a new one.
        stmt = stmt.where(ScrubRun.finished_at.is_(None)).order_by(ScrubRun.started_at.desc())
    run = db.session.execute(stmt.limit(1)).scalar_one_or_none()
    if run is None and run_id is None:
        if db.session.execute(sa.select(ScrubRun.id).where(ScrubRun.finished_at.is_(None))
                              .limit(1)).first():
            return None  # an unfinished run exists and is locked: its step is running
        run = ScrubRun(id=uuid.uuid4(), started_at=utcnow(), steps=0, checked=0, ok=0,
                       mismatched=0, missing=0, bytes_read=0, problems=[])
        db.session.add(run)
        db.session.flush()
    return run


def _check(tenant: TenantSnapshot, version) -> tuple[str, int]:
    """("ok" | "mismatch" | "missing", bytes read) for one version's object.

    A StorageError other than a missing object propagates: the step is retried later.
    """
    digest = hashlib.sha256()
    size = 0
    try:
        with get_store().get(tenant, version.object_key,
                             version_id=version.object_version_id) as reader:
            for chunk in reader:
                digest.update(chunk)
                size += len(chunk)
    except ObjectNotFound:
        return "missing", size
    if size != version.size or digest.hexdigest() != version.sha256:
        return "mismatch", size
    return "ok", size


def scrub_step(tenant: TenantSnapshot, run_id: str | None = None) -> ScrubRun | None:
    """Check the next versions of a run (a new one when `run_id` is None), within the budget.

    Commits the run's progress; when versions remain, enqueues the run's next step. Returns
    the run, or None when another step of the unfinished run holds it.
    """
    run = _open_run(run_id)
    if run is None or run.finished_at is not None:
        db.session.rollback()
        return run
    budget = current_settings().ged.scrub_batch_bytes
    spent = 0
    done = False
    found: list[tuple] = []
    columns = (DocumentVersion.id, DocumentVersion.document_id, DocumentVersion.number,
               DocumentVersion.object_key, DocumentVersion.object_version_id,
               DocumentVersion.size, DocumentVersion.sha256)
    while spent < budget:
        stmt = sa.select(*columns).order_by(DocumentVersion.id).limit(_PAGE)
        if run.cursor is not None:
            stmt = stmt.where(DocumentVersion.id > run.cursor)
        page = db.session.execute(stmt).all()
        if not page:
            done = True
            break
        for version in page:
            if spent >= budget:
                break
            outcome, read = _check(tenant, version)
            # A missing object costs nothing to read: count the recorded size all the same,
            # so a step over thousands of missing objects still ends.
            spent += max(read, version.size, 1)
            run.checked += 1
            run.bytes_read += read
            run.cursor = version.id
            if outcome == "ok":
                run.ok += 1
                continue
            _report(run, version, outcome)
            found.append((version, outcome))
    # Audited at the end of the step: the chain's lock is held only until the commit below.
    for version, outcome in found:
        record(f"ged.integrity.{outcome}", f"document:{version.document_id}", {
            "version": version.number, "object_key": version.object_key,
            "sha256": version.sha256, "size": version.size, "scrub": str(run.id)},
            actor="job:ged.integrity_scrub")
    run.steps += 1
    if done:
        run.finished_at = utcnow()
        log.log(logging.ERROR if run.mismatched or run.missing else logging.INFO,
                "integrity scrub of %s: %d versions, %d ok, %d mismatched, %d missing",
                tenant.slug, run.checked, run.ok, run.mismatched, run.missing)
    else:
        enqueue(SCRUB_KIND, key=f"scrub:{run.id}:{run.steps}", run_id=str(run.id))
    db.session.commit()
    return run


def _report(run: ScrubRun, version, outcome: str) -> None:
    if outcome == "missing":
        run.missing += 1
    else:
        run.mismatched += 1
    log.error("integrity: version %s (document %s, no %d, object %s) is %s in the store",
              version.id, version.document_id, version.number, version.object_key,
              "missing" if outcome == "missing" else "different from its SHA-256")
    if len(run.problems) < MAX_PROBLEMS:
        run.problems = [*run.problems, {"document_id": str(version.document_id),
                                        "version": version.number,
                                        "version_id": str(version.id), "kind": outcome}]


def last_scrub() -> ScrubSummary | None:
    """The current commune's latest finished scrub, or None if none finished yet."""
    run = db.session.execute(
        sa.select(ScrubRun).where(ScrubRun.finished_at.is_not(None))
        .order_by(ScrubRun.finished_at.desc()).limit(1)).scalar_one_or_none()
    if run is None:
        return None
    ids = tuple(dict.fromkeys(p["document_id"] for p in run.problems or []))
    return ScrubSummary(started_at=run.started_at, finished_at=run.finished_at,
                        checked=run.checked, ok=run.ok, mismatched=run.mismatched,
                        missing=run.missing, bytes_read=run.bytes_read, document_ids=ids)
