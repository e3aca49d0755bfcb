"""Identity hardening: login throttles per (account, client address); secrets out of reach

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-08

Failed logins used to be counted on the account alone (users.failed_logins, users.locked_until),
so anyone could keep a known address locked out. They are now counted per (account, client
network) with a much higher ceiling per account over every address, in login_throttles (a
platform table: HMAC keys, counters and times, no name nor address in clear). The two users
columns are left in place, no longer written by the login.

The application role could read every account's password hash and TOTP secret. `saas init`
now grants it SELECT on the other columns of users only (saas.tenancy.rls.SECRET_COLUMNS);
it reads one account's secret at a time through auth_password_hash(id) / auth_totp_secret(id),
SECURITY DEFINER functions that answer at most SECRET_READS_PER_TRANSACTION times per
transaction (counted in auth_secret_reads, which the application role cannot touch), so one
injected statement cannot dump the accounts. users.totp_enabled (generated from the secret)
tells whether a second factor is enrolled without reading it.
"""
from alembic import op
import sqlalchemy as sa

from saas.modelbase import UTCDateTime

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


SECRET_READS_PER_TRANSACTION = 5


def _secret_function(name: str, column: str) -> str:
    return f"""
CREATE FUNCTION {name}(uid uuid) RETURNS text
LANGUAGE plpgsql VOLATILE STRICT SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  n integer;
BEGIN
  INSERT INTO public.auth_secret_reads AS r (backend, xact, reads)
  VALUES (pg_backend_pid(), pg_current_xact_id()::text::bigint, 1)
  ON CONFLICT (backend) DO UPDATE
    SET reads = CASE WHEN r.xact = excluded.xact THEN r.reads + 1 ELSE 1 END,
        xact = excluded.xact
  RETURNING reads INTO n;
  IF n > {SECRET_READS_PER_TRANSACTION} THEN
    RAISE EXCEPTION 'too many account secrets read in one transaction'
      USING ERRCODE = 'insufficient_privilege';
  END IF;
  RETURN (SELECT u.{column} FROM public.users u WHERE u.id = uid);
END
$$
"""


def upgrade():
    op.create_table(
        "login_throttles",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("account", sa.String(length=64), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("window_ends", UTCDateTime(), nullable=False),
        sa.Column("locked_until", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_login_throttles")),
    )
    op.create_index(op.f("ix_login_throttles_window_ends"), "login_throttles", ["window_ends"],
                    unique=False)
    op.create_index(op.f("ix_login_throttles_account"), "login_throttles", ["account"],
                    unique=False)

    bind = op.get_bind()
    postgres = bind.dialect.name == "postgresql"
    # STORED on PostgreSQL (its only kind before 18); SQLite can only add a VIRTUAL one.
    op.add_column("users", sa.Column(
        "totp_enabled", sa.Boolean(),
        sa.Computed("totp_secret_enc IS NOT NULL", persisted=postgres), nullable=True))
    # Created everywhere so models and schema agree; only PostgreSQL's functions use it.
    op.create_table(
        "auth_secret_reads",
        sa.Column("backend", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("xact", sa.BigInteger(), nullable=False),
        sa.Column("reads", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("backend", name=op.f("pk_auth_secret_reads")),
    )
    if postgres:
        op.execute(_secret_function("auth_password_hash", "password_hash"))
        op.execute(_secret_function("auth_totp_secret", "totp_secret_enc"))
        # Functions are executable by PUBLIC by default: only the app role (saas init grants
        # it EXECUTE) may call these, as for the GED's SECURITY DEFINER functions.
        op.execute("REVOKE ALL ON FUNCTION auth_password_hash(uuid) FROM PUBLIC")
        op.execute("REVOKE ALL ON FUNCTION auth_totp_secret(uuid) FROM PUBLIC")


def downgrade():
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        # Roles granted column by column on users get the whole table back, as before.
        grantees = bind.execute(sa.text(
            "SELECT DISTINCT grantee FROM information_schema.column_privileges "
            "WHERE table_schema = 'public' AND table_name = 'users' AND column_name = 'email' "
            "AND privilege_type = 'SELECT' AND grantee <> current_user")).scalars().all()
        for grantee in grantees:
            ident = bind.dialect.identifier_preparer.quote(grantee)
            op.execute(f"GRANT SELECT ON users TO {ident}")
        op.execute("DROP FUNCTION auth_totp_secret(uuid)")
        op.execute("DROP FUNCTION auth_password_hash(uuid)")
        op.drop_column("users", "totp_enabled")
    else:
        op.execute("ALTER TABLE users DROP COLUMN totp_enabled")
    op.drop_table("auth_secret_reads")
    op.drop_index(op.f("ix_login_throttles_account"), table_name="login_throttles")
    op.drop_index(op.f("ix_login_throttles_window_ends"), table_name="login_throttles")
    op.drop_table("login_throttles")
