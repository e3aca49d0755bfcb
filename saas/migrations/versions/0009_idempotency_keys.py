"""Idempotency keys: the first outcome of each API POST with an Idempotency-Key, and of each
one-time form token, replayed to its repetitions for 24 hours

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-08

Tenant table: tenant_id and forced RLS, as in 0003.
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from saas.modelbase import UTCDateTime
from saas.tenancy.rls import enable_rls

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade():
    op.create_table(
        "idempotency_keys",
        sa.Column("actor", sa.String(length=64), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("status", sa.Integer(), nullable=True),
        sa.Column("headers", JSON, nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"],
                                name=op.f("fk_idempotency_keys_tenant_id_tenants"),
                                ondelete="RESTRICT"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_idempotency_keys")),
        sa.UniqueConstraint("tenant_id", "actor", "key", name="uq_idempotency_keys_actor_key"),
    )
    op.create_index(op.f("ix_idempotency_keys_tenant_id"), "idempotency_keys", ["tenant_id"])
    op.create_index(op.f("ix_idempotency_keys_expires_at"), "idempotency_keys", ["expires_at"])
    enable_rls(op, "idempotency_keys")


def downgrade():
    op.drop_table("idempotency_keys")
