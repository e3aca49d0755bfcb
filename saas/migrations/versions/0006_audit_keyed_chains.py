"""Audit chains keyed: each entry records the id of the audit key whose HMAC it carries

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-08

Entries written before this revision keep key_id NULL and their plain SHA-256 hash: they still
verify, and the first keyed entry's MAC covers the last legacy hash, so the legacy part cannot
be rewritten either without breaking the keyed part. New entries are signed with
SAAS_AUDIT_KEY (HMAC-SHA256), which the database does not hold.
"""
import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_TABLES = ("audit_events", "platform_audit_events")


def upgrade() -> None:
    for table in _TABLES:
        op.add_column(table, sa.Column("key_id", sa.String(length=32), nullable=True))


def downgrade() -> None:
    # Keyed entries cannot be told from legacy ones once the column is gone: verifying them
    # after a downgrade reports them as modified. Downgrade only to go back up.
    for table in _TABLES:
        op.drop_column(table, "key_id")
