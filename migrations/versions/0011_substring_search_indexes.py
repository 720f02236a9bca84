"""substring search: trigram indexes (PostgreSQL) for the blacklist's name search and the
catalog's word search

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-30 02:30:00

"""
from alembic import op


# revision identifiers, used by Alembic.
revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None

INDEXES = (("ix_parties_name_trgm", "parties", "name"),
           ("ix_listings_title_trgm", "listings", "title"),
           ("ix_listings_description_trgm", "listings", "description"))


def upgrade():
    # SQLite (the embedded default) has no trigram indexes: its searches scan.
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    for name, table, column in INDEXES:
        op.create_index(name, table, [column], unique=False, postgresql_using="gin",
                        postgresql_ops={column: "gin_trgm_ops"})


def downgrade():
    if op.get_bind().dialect.name != "postgresql":
        return
    for name, table, _ in INDEXES:
        op.drop_index(name, table_name=table)
    # The extension stays: other databases' objects may use it.
