"""GED: the retention hold a document takes when it first becomes final, which no status change lifts

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-08

ged_documents.held_since is set the first time a document is final or archived and never
cleared by the application: a final délibération moved back to draft stays under its
retention (the DUA, or permanent keeping), and only an approved bordereau d'élimination
destroys it. Existing documents that are not drafts today are held from their last change.
"""
import sqlalchemy as sa
from alembic import op

from saas.modelbase import UTCDateTime

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade():
    op.add_column("ged_documents", sa.Column("held_since", UTCDateTime(), nullable=True))
    postgres = op.get_bind().dialect.name == "postgresql"
    if postgres:  # the backfill covers every commune: RLS is forced on the owner too
        op.execute("ALTER TABLE ged_documents NO FORCE ROW LEVEL SECURITY")
    op.execute("UPDATE ged_documents SET held_since = updated_at WHERE status <> 'draft'")
    if postgres:
        op.execute("ALTER TABLE ged_documents FORCE ROW LEVEL SECURITY")


def downgrade():
    op.drop_column("ged_documents", "held_since")
