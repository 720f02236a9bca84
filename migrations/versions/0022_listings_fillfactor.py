"""listings keep a fifth of each page free (fillfactor 80), so the licenses every order takes
are updated in place of the indexes (HOT updates): three of them are GIN

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-06 06:00:00

"""
from alembic import op


# revision identifiers, used by Alembic.
revision = '0022'
down_revision = '0021'
branch_labels = None
depends_on = None


def upgrade():
    # PostgreSQL only (SQLite has no fillfactor). Pages written from now on keep the room;
    # rewriting the existing ones (VACUUM FULL) is left to a maintenance window.
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE listings SET (fillfactor = 80)")


def downgrade():
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE listings RESET (fillfactor)")
