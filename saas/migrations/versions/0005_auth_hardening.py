"""Identity hardening: login throttles per (account, client address)

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-08

Failed logins used to be counted on the account alone (users.failed_logins, users.locked_until),
so anyone could keep a known address locked out. They are now counted per (account, client
network) with a much higher ceiling per account over every address, in login_throttles (a
platform table: HMAC keys, counters and times, no name nor address in clear). The two users
columns are left in place, no longer written by the login.
"""
from alembic import op
import sqlalchemy as sa

from saas.modelbase import UTCDateTime

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "login_throttles",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("window_ends", UTCDateTime(), nullable=False),
        sa.Column("locked_until", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_login_throttles")),
    )
    op.create_index(op.f("ix_login_throttles_window_ends"), "login_throttles", ["window_ends"],
                    unique=False)


def downgrade():
    op.drop_index(op.f("ix_login_throttles_window_ends"), table_name="login_throttles")
    op.drop_table("login_throttles")
