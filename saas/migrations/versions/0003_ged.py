"""GED: filing plan, documents, versions, access lists, shares (cross-tenant RLS), bordereaux, uploads, usage

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29

"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from saas.modelbase import UTCDateTime
from saas.tenancy.rls import TENANT_PREDICATE, enable_rls

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
TSVECTOR = sa.Text().with_variant(postgresql.TSVECTOR(), "postgresql")
CURRENT = "NULLIF(current_setting('app.current_tenant', true), '')::uuid"

TABLES = (
    "ged_classifications", "ged_documents", "ged_versions", "ged_document_access", "ged_shares",
    "ged_elimination_proposals", "ged_elimination_items", "ged_uploads",
)


# Full-text matching for the commune in app.current_tenant: (document id, rank of the title and
# metadata, document date) of every document whose index entry matches `query`.
#
# Why a SECURITY DEFINER function: `@@` (ts_match_vq) is not LEAKPROOF, so on a table under
# RLS PostgreSQL evaluates it only after the policies, row by row, and never as a GIN index
# condition; only a superuser could mark it leakproof. ged_search's RLS is not forced, so this
# function, owned by the migration role (the table owner), reads it without policies and uses
# the GIN index on (tenant_id, search_vector). It filters on the same predicate as the
# policies (fails closed when the setting is unset) and returns ids only: the caller joins
# them to ged_documents under RLS, which also applies trash and visibility.
SEARCH_FUNCTION = """
CREATE FUNCTION ged_search_matches(query tsquery)
RETURNS TABLE (document_id uuid, head_rank real, document_date date)
LANGUAGE sql STABLE STRICT SECURITY DEFINER PARALLEL SAFE ROWS 1000
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT s.document_id, ts_rank(s.head_vector, query), s.document_date
    FROM public.ged_search s
   WHERE s.tenant_id = NULLIF(current_setting('app.current_tenant', true), '')::uuid
     AND s.search_vector @@ query
$$
"""


def _tenant_fk(table):
    return sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"],
                                   name=op.f(f"fk_{table}_tenant_id_tenants"), ondelete="RESTRICT")


def upgrade():
    bind = op.get_bind()
    postgres = bind.dialect.name == "postgresql"
    if postgres:
        # unaccent and btree_gin are trusted extensions: the database owner (the migration role)
        # may create them. btree_gin lets one GIN index hold (tenant_id, search_vector).
        op.execute("CREATE EXTENSION IF NOT EXISTS unaccent")
        op.execute("CREATE EXTENSION IF NOT EXISTS btree_gin")
        op.execute("""
            DO $$ BEGIN
              IF NOT EXISTS (SELECT 1 FROM pg_ts_config WHERE cfgname = 'fr_unaccent') THEN
                CREATE TEXT SEARCH CONFIGURATION fr_unaccent (COPY = french);
                ALTER TEXT SEARCH CONFIGURATION fr_unaccent
                  ALTER MAPPING FOR hword, hword_part, word WITH unaccent, french_stem;
              END IF;
            END $$
        """)

    op.create_table(
        "ged_classifications",
        sa.Column("parent_id", sa.Uuid(), nullable=True),
        sa.Column("code", sa.String(length=20), nullable=False),
        sa.Column("label", sa.String(length=200), nullable=False),
        sa.Column("path", sa.String(length=1000), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(["parent_id"], ["ged_classifications.id"],
                                name=op.f("fk_ged_classifications_parent_id_ged_classifications"),
                                ondelete="RESTRICT"),
        _tenant_fk("ged_classifications"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ged_classifications")),
        sa.UniqueConstraint("tenant_id", "code", name="uq_ged_classifications_code"),
    )
    op.create_index(op.f("ix_ged_classifications_parent_id"), "ged_classifications", ["parent_id"])
    op.create_index(op.f("ix_ged_classifications_tenant_id"), "ged_classifications", ["tenant_id"])

    op.create_table(
        "ged_documents",
        sa.Column("title", sa.String(length=300), nullable=False),
        sa.Column("doc_type", sa.String(length=20), nullable=False),
        sa.Column("classification_id", sa.Uuid(), nullable=True),
        sa.Column("classification_path", sa.String(length=1000), nullable=True),
        sa.Column("tags", JSON, nullable=False),
        sa.Column("metadata", JSON, nullable=False),
        sa.Column("author", sa.String(length=200), nullable=True),
        sa.Column("created_by", sa.Uuid(), nullable=True),
        sa.Column("document_date", sa.Date(), nullable=False),
        sa.Column("confidentiality", sa.String(length=16), nullable=False),
        sa.Column("retention_years", sa.Integer(), nullable=True),
        sa.Column("final_fate", sa.String(length=16), nullable=False),
        sa.Column("legal_hold", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("current_version_number", sa.Integer(), nullable=False),
        sa.Column("versions_count", sa.Integer(), nullable=False),
        sa.Column("deleted_at", UTCDateTime(), nullable=True),
        sa.Column("deleted_by", sa.Uuid(), nullable=True),
        sa.Column("search_text", sa.Text(), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(["classification_id"], ["ged_classifications.id"],
                                name=op.f("fk_ged_documents_classification_id_ged_classifications"),
                                ondelete="RESTRICT"),
        _tenant_fk("ged_documents"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ged_documents")),
    )
    for column in ("classification_id", "classification_path", "created_by", "deleted_at", "tenant_id"):
        op.create_index(op.f(f"ix_ged_documents_{column}"), "ged_documents", [column])
    op.create_index("ix_ged_documents_tenant_date", "ged_documents", ["tenant_id", "document_date"])

    # The full-text index, apart from ged_documents: see SEARCH_FUNCTION below.
    op.create_table(
        "ged_search",
        sa.Column("document_id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("document_date", sa.Date(), nullable=False),
        sa.Column("head_vector", TSVECTOR, nullable=False),
        sa.Column("search_vector", TSVECTOR, nullable=False),
        sa.ForeignKeyConstraint(["document_id"], ["ged_documents.id"],
                                name=op.f("fk_ged_search_document_id_ged_documents"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"],
                                name=op.f("fk_ged_search_tenant_id_tenants"), ondelete="RESTRICT"),
        sa.PrimaryKeyConstraint("document_id", name=op.f("pk_ged_search")),
    )
    op.create_index("ix_ged_search_match", "ged_search", ["tenant_id", "search_vector"],
                    postgresql_using="gin")

    op.create_table(
        "ged_versions",
        sa.Column("document_id", sa.Uuid(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("object_key", sa.String(length=200), nullable=False),
        sa.Column("object_version_id", sa.String(length=200), nullable=True),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("content_type", sa.String(length=255), nullable=False),
        sa.Column("filename", sa.String(length=255), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("created_by", sa.Uuid(), nullable=True),
        sa.Column("extraction_state", sa.String(length=16), nullable=False),
        sa.Column("extraction_error", sa.String(length=500), nullable=True),
        sa.Column("extracted_text", sa.Text(), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(["document_id"], ["ged_documents.id"],
                                name=op.f("fk_ged_versions_document_id_ged_documents"),
                                ondelete="CASCADE"),
        _tenant_fk("ged_versions"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ged_versions")),
        sa.UniqueConstraint("document_id", "number", name="uq_ged_versions_number"),
        sa.UniqueConstraint("object_key", name=op.f("uq_ged_versions_object_key")),
    )
    op.create_index(op.f("ix_ged_versions_document_id"), "ged_versions", ["document_id"])
    op.create_index(op.f("ix_ged_versions_tenant_id"), "ged_versions", ["tenant_id"])

    op.create_table(
        "ged_document_access",
        sa.Column("document_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(["document_id"], ["ged_documents.id"],
                                name=op.f("fk_ged_document_access_document_id_ged_documents"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"],
                                name=op.f("fk_ged_document_access_user_id_users"), ondelete="CASCADE"),
        _tenant_fk("ged_document_access"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ged_document_access")),
        sa.UniqueConstraint("document_id", "user_id", name="uq_ged_document_access_user"),
    )
    for column in ("document_id", "tenant_id", "user_id"):
        op.create_index(op.f(f"ix_ged_document_access_{column}"), "ged_document_access", [column])

    op.create_table(
        "ged_shares",
        sa.Column("target_tenant_id", sa.Uuid(), nullable=False),
        sa.Column("document_id", sa.Uuid(), nullable=True),
        sa.Column("classification_id", sa.Uuid(), nullable=True),
        sa.Column("classification_path", sa.String(length=1000), nullable=True),
        sa.Column("label", sa.String(length=300), nullable=False),
        sa.Column("note", sa.String(length=500), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("created_by", sa.Uuid(), nullable=True),
        sa.Column("revoked_at", UTCDateTime(), nullable=True),
        sa.Column("revoked_by", sa.Uuid(), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.CheckConstraint("(document_id IS NULL) <> (classification_id IS NULL)",
                           name=op.f("ck_ged_shares_one_target")),
        sa.CheckConstraint("target_tenant_id <> tenant_id", name=op.f("ck_ged_shares_not_self")),
        sa.ForeignKeyConstraint(["classification_id"], ["ged_classifications.id"],
                                name=op.f("fk_ged_shares_classification_id_ged_classifications"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["document_id"], ["ged_documents.id"],
                                name=op.f("fk_ged_shares_document_id_ged_documents"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["target_tenant_id"], ["tenants.id"],
                                name=op.f("fk_ged_shares_target_tenant_id_tenants"), ondelete="CASCADE"),
        _tenant_fk("ged_shares"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ged_shares")),
    )
    for column in ("classification_id", "document_id", "target_tenant_id", "tenant_id"):
        op.create_index(op.f(f"ix_ged_shares_{column}"), "ged_shares", [column])

    op.create_table(
        "ged_elimination_proposals",
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("decided_at", UTCDateTime(), nullable=True),
        sa.Column("decided_by", sa.Uuid(), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        _tenant_fk("ged_elimination_proposals"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ged_elimination_proposals")),
    )
    op.create_index(op.f("ix_ged_elimination_proposals_tenant_id"), "ged_elimination_proposals",
                    ["tenant_id"])

    op.create_table(
        "ged_elimination_items",
        sa.Column("proposal_id", sa.Uuid(), nullable=False),
        sa.Column("document_id", sa.Uuid(), nullable=False),
        sa.Column("title", sa.String(length=300), nullable=False),
        sa.Column("doc_type", sa.String(length=20), nullable=False),
        sa.Column("document_date", sa.Date(), nullable=False),
        sa.Column("retention_end", sa.Date(), nullable=False),
        sa.Column("fate", sa.String(length=16), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("decision", sa.String(length=16), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(["proposal_id"], ["ged_elimination_proposals.id"],
                                name=op.f("fk_ged_elimination_items_proposal_id_ged_elimination_proposals"),
                                ondelete="CASCADE"),
        _tenant_fk("ged_elimination_items"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ged_elimination_items")),
        sa.UniqueConstraint("proposal_id", "document_id", name="uq_ged_elimination_items_doc"),
    )
    for column in ("document_id", "proposal_id", "tenant_id"):
        op.create_index(op.f(f"ix_ged_elimination_items_{column}"), "ged_elimination_items", [column])

    op.create_table(
        "ged_uploads",
        sa.Column("user_id", sa.Uuid(), nullable=True),
        sa.Column("length", sa.BigInteger(), nullable=False),
        sa.Column("offset", sa.BigInteger(), nullable=False),
        sa.Column("parts", JSON, nullable=False),
        sa.Column("filename", sa.String(length=255), nullable=False),
        sa.Column("fields", JSON, nullable=False),
        sa.Column("document_id", sa.Uuid(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("completed_at", UTCDateTime(), nullable=True),
        sa.Column("result_document_id", sa.Uuid(), nullable=True),
        sa.Column("result_version", sa.Integer(), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        _tenant_fk("ged_uploads"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ged_uploads")),
    )
    op.create_index(op.f("ix_ged_uploads_expires_at"), "ged_uploads", ["expires_at"])
    op.create_index(op.f("ix_ged_uploads_tenant_id"), "ged_uploads", ["tenant_id"])

    # Platform table: one byte counter per commune, read by the intercommunality's reports.
    op.create_table(
        "ged_usage",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("used_bytes", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"],
                                name=op.f("fk_ged_usage_tenant_id_tenants"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("tenant_id", name=op.f("pk_ged_usage")),
    )

    for table in TABLES:
        enable_rls(op, table)

    if postgres:
        # Intercommunal sharing: the target commune reads the share rows naming it (live ones),
        # and through them the owner's documents and versions, read-only (SELECT policies only).
        # PostgreSQL may evaluate the OR of the policies in any order: each shared-read policy
        # starts with `tenant_id <> current` so a commune's own rows never run its EXISTS.
        op.execute(
            "CREATE POLICY z_share_target_read ON ged_shares FOR SELECT "
            f"USING (revoked_at IS NULL AND target_tenant_id = {CURRENT})"
        )
        op.execute(f"""
            CREATE POLICY z_shared_read ON ged_documents FOR SELECT USING (
              tenant_id <> {CURRENT}
              AND deleted_at IS NULL AND confidentiality = 'all_agents' AND EXISTS (
                SELECT 1 FROM ged_shares s
                 WHERE s.tenant_id = ged_documents.tenant_id
                   AND s.target_tenant_id = {CURRENT}
                   AND s.revoked_at IS NULL
                   AND (s.document_id = ged_documents.id
                        OR (s.classification_path IS NOT NULL
                            AND ged_documents.classification_path LIKE s.classification_path || '%'))))
        """)
        op.execute(f"""
            CREATE POLICY z_shared_read ON ged_versions FOR SELECT USING (
              tenant_id <> {CURRENT}
              AND EXISTS (SELECT 1 FROM ged_documents d
                       WHERE d.id = ged_versions.document_id AND d.tenant_id = ged_versions.tenant_id))
        """)
        # The search index: RLS enabled, so the app role reads and writes its commune's rows
        # only, but NOT forced, so that the table owner can use the GIN index (see below).
        op.execute("ALTER TABLE ged_search ENABLE ROW LEVEL SECURITY")
        op.execute(f"CREATE POLICY tenant_isolation ON ged_search "
                   f"USING ({TENANT_PREDICATE}) WITH CHECK ({TENANT_PREDICATE})")
        # Titles and metadata stay in the row (ranked for every match); the text may be toasted.
        op.execute("ALTER TABLE ged_search ALTER COLUMN head_vector SET STORAGE MAIN")
        op.execute(SEARCH_FUNCTION)
        op.execute("REVOKE ALL ON FUNCTION ged_search_matches(tsquery) FROM PUBLIC")


def downgrade():
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS ged_search_matches(tsquery)")
    op.drop_table("ged_search")
    op.drop_table("ged_usage")
    for table in reversed(TABLES):
        op.drop_table(table)
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TEXT SEARCH CONFIGURATION IF EXISTS fr_unaccent")
