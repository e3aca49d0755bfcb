"""Jobs: scheduling envelope, commune payloads (RLS), platform payloads, wait histogram

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29

"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from saas.modelbase import UTCDateTime
from saas.tenancy.rls import enable_rls

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def _payload_columns():
    return [
        sa.Column("idempotency_key", sa.String(length=200), nullable=True),
        sa.Column("args", JSON, nullable=False),
        sa.Column("result", JSON, nullable=True),
        sa.Column("error_code", sa.String(length=40), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("progress_message", sa.String(length=300), nullable=True),
        sa.Column("effects", JSON, nullable=False),
        sa.Column("created_by", sa.Uuid(), nullable=True),
    ]


def upgrade():
    op.create_table(
        "job_queue",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=True),
        sa.Column("kind", sa.String(length=100), nullable=False),
        sa.Column("queue", sa.String(length=40), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("dedup_key", sa.String(length=64), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("max_attempts", sa.Integer(), nullable=False),
        sa.Column("progress", sa.SmallInteger(), nullable=False),
        sa.Column("next_try", UTCDateTime(), nullable=False),
        sa.Column("dispatched_at", UTCDateTime(), nullable=True),
        sa.Column("dispatch_token", sa.String(length=32), nullable=True),
        sa.Column("lease_expires_at", UTCDateTime(), nullable=True),
        sa.Column("worker_id", sa.String(length=120), nullable=True),
        sa.Column("cancel_requested", sa.Boolean(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("started_at", UTCDateTime(), nullable=True),
        sa.Column("finished_at", UTCDateTime(), nullable=True),
        sa.CheckConstraint("state IN ('queued', 'running', 'succeeded', 'failed', 'dead')",
                           name=op.f("ck_job_queue_state")),
        sa.CheckConstraint("progress >= 0 AND progress <= 100", name=op.f("ck_job_queue_progress")),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"],
                                name=op.f("fk_job_queue_tenant_id_tenants"), ondelete="RESTRICT"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_job_queue")),
        sa.UniqueConstraint("dedup_key", name=op.f("uq_job_queue_dedup_key")),
    )
    op.create_index("ix_job_queue_due", "job_queue", ["queue", "tenant_id", "next_try", "created_at"],
                    postgresql_where=sa.text("state = 'queued' AND dispatched_at IS NULL"),
                    sqlite_where=sa.text("state = 'queued' AND dispatched_at IS NULL"))
    op.create_index("ix_job_queue_in_flight", "job_queue", ["queue", "tenant_id"],
                    postgresql_where=sa.text("dispatched_at IS NOT NULL"),
                    sqlite_where=sa.text("dispatched_at IS NOT NULL"))
    op.create_index("ix_job_queue_lease", "job_queue", ["lease_expires_at"],
                    postgresql_where=sa.text("state = 'running'"),
                    sqlite_where=sa.text("state = 'running'"))
    op.create_index("ix_job_queue_state_queue", "job_queue", ["state", "queue"])
    op.create_index("ix_job_queue_tenant_state", "job_queue", ["tenant_id", "state"])
    op.create_index("ix_job_queue_finished_at", "job_queue", ["finished_at"])

    op.create_table(
        "jobs",
        sa.Column("id", sa.Uuid(), nullable=False),
        *_payload_columns(),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(["id"], ["job_queue.id"], name=op.f("fk_jobs_id_job_queue"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], name=op.f("fk_jobs_tenant_id_tenants"),
                                ondelete="RESTRICT"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_jobs")),
    )
    op.create_index(op.f("ix_jobs_tenant_id"), "jobs", ["tenant_id"], unique=False)

    op.create_table(
        "platform_jobs",
        sa.Column("id", sa.Uuid(), nullable=False),
        *_payload_columns(),
        sa.ForeignKeyConstraint(["id"], ["job_queue.id"], name=op.f("fk_platform_jobs_id_job_queue"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_platform_jobs")),
    )

    op.create_table(
        "job_wait_histogram",
        sa.Column("queue", sa.String(length=40), nullable=False),
        sa.Column("bucket", sa.String(length=16), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("queue", "bucket", name=op.f("pk_job_wait_histogram")),
    )

    # Row-level security on the commune-owned part (PostgreSQL only).
    enable_rls(op, "jobs")


def downgrade():
    op.drop_table("job_wait_histogram")
    op.drop_table("platform_jobs")
    op.drop_index(op.f("ix_jobs_tenant_id"), table_name="jobs")
    op.drop_table("jobs")
    op.drop_index("ix_job_queue_finished_at", table_name="job_queue")
    op.drop_index("ix_job_queue_tenant_state", table_name="job_queue")
    op.drop_index("ix_job_queue_state_queue", table_name="job_queue")
    op.drop_index("ix_job_queue_lease", table_name="job_queue")
    op.drop_index("ix_job_queue_in_flight", table_name="job_queue")
    op.drop_index("ix_job_queue_due", table_name="job_queue")
    op.drop_table("job_queue")
