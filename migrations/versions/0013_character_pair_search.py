"""two-character word search (PostgreSQL): a GIN index of the listing text's character pairs

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-30 03:45:00

"""
from alembic import op


# revision identifiers, used by Alembic.
revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade():
    # Trigram indexes cannot serve a word under three characters (no trigram in it), and
    # two-character words are common in Chinese: without this index they scan the catalog.
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("""
        CREATE FUNCTION text_bigrams(value text) RETURNS text[]
        LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT AS $$
            SELECT coalesce(array_agg(DISTINCT substr(value, i, 2)), '{}')
            FROM generate_series(1, length(value) - 1) AS i
        $$""")
    op.execute("CREATE INDEX ix_listings_text_bigrams ON listings USING gin "
               "(text_bigrams(lower(title || ' ' || description)))")


def downgrade():
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP INDEX IF EXISTS ix_listings_text_bigrams")
    op.execute("DROP FUNCTION IF EXISTS text_bigrams(text)")
