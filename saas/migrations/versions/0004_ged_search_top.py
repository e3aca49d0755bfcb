"""GED search: the matching function ranks its commune's matches and keeps the best ones

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29

ged_search_matches(query) returned every match (a common word: most of the commune), which
the caller then sorted whole before walking the first thousand: the sort and the tuple store
grew with the commune. ged_search_top(query, lim) ranks the same way and keeps the first
`lim` (a top-N heap sort), so a search costs the GIN scan plus `lim` rows. Same security
model as before (see 0003): SECURITY DEFINER to use the GIN index, the same tenant predicate
as the policies, ids only; the caller joins them to ged_documents under RLS and, when fewer
than it needs are visible among `lim` candidates, asks again without a limit.
"""
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

# The signature's tail and the matching query, as in 0003; ged_search_top() adds the order
# (the caller's: head_rank DESC, document_date DESC, document_id) and the limit.
_RETURNS = """
RETURNS TABLE (document_id uuid, head_rank real, document_date date)
LANGUAGE sql STABLE STRICT SECURITY DEFINER PARALLEL SAFE ROWS 1000
SET search_path = pg_catalog, pg_temp
"""
_MATCHES = """
  SELECT s.document_id, ts_rank(s.head_vector, query), s.document_date
    FROM public.ged_search s
   WHERE s.tenant_id = NULLIF(current_setting('app.current_tenant', true), '')::uuid
     AND s.search_vector @@ query
"""
TOP_FUNCTION = (f"CREATE FUNCTION ged_search_top(query tsquery, lim integer){_RETURNS}"
                f"AS $${_MATCHES}   ORDER BY 2 DESC, 3 DESC, 1\n   LIMIT lim\n$$")
# 0003's function, for downgrade.
MATCHES_FUNCTION = f"CREATE FUNCTION ged_search_matches(query tsquery){_RETURNS}AS $${_MATCHES}$$"


def upgrade():
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(TOP_FUNCTION)
    op.execute("REVOKE ALL ON FUNCTION ged_search_top(tsquery, integer) FROM PUBLIC")
    op.execute("DROP FUNCTION ged_search_matches(tsquery)")


def downgrade():
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(MATCHES_FUNCTION)
    op.execute("REVOKE ALL ON FUNCTION ged_search_matches(tsquery) FROM PUBLIC")
    op.execute("DROP FUNCTION ged_search_top(tsquery, integer)")
