"""Job records: the database is the truth, Redis only carries job ids.

A job is split across two tables so that the platform can schedule every commune's work while
row-level security still guards what the work is about:

- `job_queue` (platform table, no RLS): the scheduling envelope of every job — ids, kind and
  queue names, state, attempts, times, lease, progress percentage. It holds no free text and no
  arguments, so the dispatcher, the reconciler, the workers' claim and the console can scan all
  communes at once as the non-owner application role (RLS with FORCE would otherwise show them
  one commune at a time). The idempotency key is stored hashed (`dedup_key`).
- `jobs` (tenant table, RLS forced): what the job is about — arguments, result, error message,
  progress message, the readable idempotency key, exactly-once effect records. Reading it needs
  the job's tenant context, which the worker sets for the whole run.
- `platform_jobs` (platform table): the same columns for platform-wide jobs (backups, purges),
  which belong to no commune and have `job_queue.tenant_id` NULL. Keeping them apart from
  `jobs` keeps `jobs.tenant_id NOT NULL` and its RLS policy without exceptions, and avoids
  pretending that platform work is the intercommunality's own (EPCI tenant) business.

`job_wait_histogram` keeps cumulative queue-wait counters per queue for Prometheus: workers on
any host add to it when they claim a job, so /metrics reports one consistent histogram without
per-process files (the forked work horses would leave one file each under multiprocess mode).
"""

from __future__ import annotations

import enum
import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from saas.extensions import db
from saas.modelbase import JSONType, UTCDateTime, utcnow
from saas.tenancy.scoping import TenantScoped


class JobState(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    DEAD = "dead"


FINAL_STATES = frozenset({JobState.SUCCEEDED, JobState.FAILED, JobState.DEAD})


class ErrorCode(enum.StrEnum):
    """Stable codes for programs; the message beside it is French, for people."""

    PERMANENT = "permanent"  # the job said retrying cannot help
    TRANSIENT = "transient"  # the job asked for a retry
    EXCEPTION = "exception"  # unexpected error: retried like a transient one
    TIMEOUT = "timeout"  # the attempt took longer than the kind's timeout
    WORKER_LOST = "worker_lost"  # the worker stopped heart-beating (killed, crashed, partitioned)
    CANCELLED = "cancelled"  # an administrator cancelled it
    UNKNOWN_KIND = "unknown_kind"  # no worker code for this kind (deployment mismatch)
    EFFECT_UNCERTAIN = "effect_uncertain"  # an external call may have happened; a human decides


STATE_CHECK = "state IN ('queued', 'running', 'succeeded', 'failed', 'dead')"


class QueueEntry(db.Model):
    """The scheduling envelope of one job (table `job_queue`)."""

    __tablename__ = "job_queue"
    __table_args__ = (
        sa.CheckConstraint(STATE_CHECK, name="state"),
        sa.CheckConstraint("progress >= 0 AND progress <= 100", name="progress"),
        sa.Index("ix_job_queue_due", "queue", "tenant_id", "next_try", "created_at",
                 postgresql_where=sa.text("state = 'queued' AND dispatched_at IS NULL"),
                 sqlite_where=sa.text("state = 'queued' AND dispatched_at IS NULL")),
        sa.Index("ix_job_queue_in_flight", "queue", "tenant_id",
                 postgresql_where=sa.text("dispatched_at IS NOT NULL"),
                 sqlite_where=sa.text("dispatched_at IS NOT NULL")),
        sa.Index("ix_job_queue_lease", "lease_expires_at",
                 postgresql_where=sa.text("state = 'running'"),
                 sqlite_where=sa.text("state = 'running'")),
        sa.Index("ix_job_queue_state_queue", "state", "queue"),
        sa.Index("ix_job_queue_tenant_state", "tenant_id", "state"),
        sa.Index("ix_job_queue_finished_at", "finished_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True, default=uuid.uuid4)
    # NULL for platform jobs (their payload lives in platform_jobs).
    tenant_id: Mapped[uuid.UUID | None] = mapped_column(
        sa.Uuid, sa.ForeignKey("tenants.id", ondelete="RESTRICT"))
    kind: Mapped[str] = mapped_column(sa.String(100), nullable=False)
    queue: Mapped[str] = mapped_column(sa.String(40), nullable=False)
    state: Mapped[str] = mapped_column(sa.String(16), nullable=False, default=JobState.QUEUED)
    # SHA-256 of (tenant, kind, idempotency key): unique, and says nothing about the commune.
    dedup_key: Mapped[str | None] = mapped_column(sa.String(64), unique=True)
    attempts: Mapped[int] = mapped_column(sa.Integer, nullable=False, default=0)
    max_attempts: Mapped[int] = mapped_column(sa.Integer, nullable=False)
    progress: Mapped[int] = mapped_column(sa.SmallInteger, nullable=False, default=0)
    next_try: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    # Set while the job is in flight: pushed to Redis (state queued) or running. The token is the
    # RQ job id of the current push; a message carrying another token is stale and ignored.
    dispatched_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    dispatch_token: Mapped[str | None] = mapped_column(sa.String(32))
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    worker_id: Mapped[str | None] = mapped_column(sa.String(120))
    cancel_requested: Mapped[bool] = mapped_column(sa.Boolean, nullable=False, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow,
                                                 onupdate=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    @property
    def is_final(self) -> bool:
        return self.state in FINAL_STATES

    def __repr__(self) -> str:
        return f"<QueueEntry {self.kind} {self.id} {self.state}>"


class _PayloadColumns:
    """What a job is about; identical for commune jobs and platform jobs."""

    idempotency_key: Mapped[str | None] = mapped_column(sa.String(200))
    args: Mapped[dict] = mapped_column(JSONType, nullable=False, default=dict)
    result: Mapped[dict | list | None] = mapped_column(JSONType)
    error_code: Mapped[str | None] = mapped_column(sa.String(40))
    error: Mapped[str | None] = mapped_column(sa.Text)
    progress_message: Mapped[str | None] = mapped_column(sa.String(300))
    # Exactly-once external calls: {name: {"state": "intent"|"done", "token", "at", "result"}}.
    effects: Mapped[dict] = mapped_column(JSONType, nullable=False, default=dict)
    created_by: Mapped[uuid.UUID | None] = mapped_column(sa.Uuid)


class JobData(_PayloadColumns, TenantScoped, db.Model):
    """The commune-owned part of a commune's job (table `jobs`, row-level security forced)."""

    __tablename__ = "jobs"

    id: Mapped[uuid.UUID] = mapped_column(
        sa.Uuid, sa.ForeignKey("job_queue.id", ondelete="CASCADE"), primary_key=True)


class PlatformJobData(_PayloadColumns, db.Model):
    """The payload of a platform-wide job (table `platform_jobs`)."""

    __tablename__ = "platform_jobs"

    id: Mapped[uuid.UUID] = mapped_column(
        sa.Uuid, sa.ForeignKey("job_queue.id", ondelete="CASCADE"), primary_key=True)


class JobWaitBucket(db.Model):
    """One cumulative counter of the queue-wait histogram (bucket 'sum' holds the total)."""

    __tablename__ = "job_wait_histogram"

    queue: Mapped[str] = mapped_column(sa.String(40), primary_key=True)
    bucket: Mapped[str] = mapped_column(sa.String(16), primary_key=True)
    value: Mapped[float] = mapped_column(sa.Float, nullable=False, default=0.0)


def payload_model(tenant_id: uuid.UUID | None) -> type[JobData] | type[PlatformJobData]:
    """The payload table of a job: the commune's (`jobs`) or the platform's."""
    return PlatformJobData if tenant_id is None else JobData
