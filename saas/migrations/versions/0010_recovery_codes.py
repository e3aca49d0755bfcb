"""Second-factor recovery codes, out of the application role's reach; users.password_set

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-08

An administrator who lost her phone was locked out for good. At enrolment she now gets ten
single-use recovery codes. Only their SHA-256 (salted with the account id) is stored, in
auth_recovery_codes, a table the application role has no right on (saas.tenancy.rls
OWNER_ONLY_TABLES): it replaces, consumes and counts one account's codes through SECURITY
DEFINER functions. auth_use_recovery_code() deletes the matching row and returns how many are
left (or -1): one DELETE, so two requests racing on one code cannot both use it.

users.password_set (generated from password_hash, like totp_enabled) tells an invited person
who has not chosen her password yet from an active account, without reading the hash.
"""
from alembic import op
import sqlalchemy as sa

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

_FUNCTIONS = """
CREATE FUNCTION auth_set_recovery_codes(uid uuid, digests text[]) RETURNS void
LANGUAGE sql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
  DELETE FROM public.auth_recovery_codes WHERE user_id = uid;
  INSERT INTO public.auth_recovery_codes (user_id, digest)
  SELECT uid, d FROM unnest(coalesce(digests, ARRAY[]::text[])) AS d;
$$;

CREATE FUNCTION auth_use_recovery_code(uid uuid, code_digest text) RETURNS integer
LANGUAGE plpgsql VOLATILE STRICT SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  found integer;
BEGIN
  DELETE FROM public.auth_recovery_codes WHERE user_id = uid AND digest = code_digest;
  GET DIAGNOSTICS found = ROW_COUNT;
  IF found = 0 THEN
    RETURN -1;
  END IF;
  RETURN (SELECT count(*) FROM public.auth_recovery_codes WHERE user_id = uid);
END
$$;

CREATE FUNCTION auth_recovery_codes_left(uid uuid) RETURNS integer
LANGUAGE sql STABLE STRICT SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT count(*)::integer FROM public.auth_recovery_codes WHERE user_id = uid;
$$;
"""


def upgrade():
    bind = op.get_bind()
    postgres = bind.dialect.name == "postgresql"
    op.create_table(
        "auth_recovery_codes",
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE",
                                name=op.f("fk_auth_recovery_codes_user_id_users")),
        sa.PrimaryKeyConstraint("user_id", "digest", name=op.f("pk_auth_recovery_codes")),
    )
    op.add_column("users", sa.Column(
        "password_set", sa.Boolean(),
        sa.Computed("password_hash IS NOT NULL", persisted=postgres), nullable=True))
    if postgres:
        op.execute(_FUNCTIONS)
        # Executable by PUBLIC by default: only the app role (saas init grants it EXECUTE).
        for signature in ("auth_set_recovery_codes(uuid, text[])",
                          "auth_use_recovery_code(uuid, text)", "auth_recovery_codes_left(uuid)"):
            op.execute(f"REVOKE ALL ON FUNCTION {signature} FROM PUBLIC")
        # The application role (if `saas init` already ran) keeps no right on the new table;
        # `saas init` re-grants the users columns, password_set included.
        roles = bind.execute(sa.text(
            "SELECT DISTINCT grantee FROM information_schema.column_privileges "
            "WHERE table_schema = 'public' AND table_name = 'users' AND column_name = 'email' "
            "AND privilege_type = 'SELECT' AND grantee <> current_user")).scalars().all()
        for role in roles:
            ident = bind.dialect.identifier_preparer.quote(role)
            op.execute(f"REVOKE ALL ON auth_recovery_codes FROM {ident}")
            op.execute(f"GRANT SELECT (password_set) ON users TO {ident}")


def downgrade():
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        op.execute("DROP FUNCTION auth_recovery_codes_left(uuid)")
        op.execute("DROP FUNCTION auth_use_recovery_code(uuid, text)")
        op.execute("DROP FUNCTION auth_set_recovery_codes(uuid, text[])")
        op.drop_column("users", "password_set")
    else:
        op.execute("ALTER TABLE users DROP COLUMN password_set")
    op.drop_table("auth_recovery_codes")
