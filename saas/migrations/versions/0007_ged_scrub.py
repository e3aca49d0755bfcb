"""GED integrity scrub: one row per scrub run of a commune (counts and affected versions)

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-08

The daily scrub reads every version's bytes back from storage and compares them with the
SHA-256 and size recorded at upload; a run is resumable (cursor) and lists the mismatched and
missing versions for the console. Tenant table: tenant_id and forced RLS, as in 0003.
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from saas.modelbase import UTCDateTime
from saas.tenancy.rls import enable_rls

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade():
    op.create_table(
        "ged_scrub_runs",
        sa.Column("started_at", UTCDateTime(), nullable=False),
        sa.Column("finished_at", UTCDateTime(), nullable=True),
        sa.Column("cursor", sa.Uuid(), nullable=True),
        sa.Column("steps", sa.Integer(), nullable=False),
        sa.Column("checked", sa.Integer(), nullable=False),
        sa.Column("ok", sa.Integer(), nullable=False),
        sa.Column("mismatched", sa.Integer(), nullable=False),
        sa.Column("missing", sa.Integer(), nullable=False),
        sa.Column("bytes_read", sa.BigInteger(), nullable=False),
        sa.Column("problems", JSON, nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"],
                                name=op.f("fk_ged_scrub_runs_tenant_id_tenants"),
                                ondelete="RESTRICT"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ged_scrub_runs")),
    )
    op.create_index(op.f("ix_ged_scrub_runs_tenant_id"), "ged_scrub_runs", ["tenant_id"])
    op.create_index(op.f("ix_ged_scrub_runs_started_at"), "ged_scrub_runs", ["started_at"])
    enable_rls(op, "ged_scrub_runs")


def downgrade():
    op.drop_table("ged_scrub_runs")
