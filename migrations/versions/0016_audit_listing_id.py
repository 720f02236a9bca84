"""the listing an audit entry concerns: audit_entries.listing_id, indexed, backfilled for the
entries of orders (by subject) and of entries naming an order in their details

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-06 03:00:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0016'
down_revision = '0015'
branch_labels = None
depends_on = None

# Entries are append-only: PostgreSQL's trigger refuses every UPDATE, so the backfill turns it
# off for this transaction's statements alone and back on before the migration commits. The
# column is not covered by the entries' hashes, so the chain verifies as before.
POSTGRESQL_BACKFILL = [
    "ALTER TABLE audit_entries DISABLE TRIGGER audit_entries_append_only",
    "UPDATE audit_entries AS a SET listing_id = o.listing_id FROM orders AS o "
    "WHERE a.subject_type = 'orders' AND a.subject_id = o.id::text",
    "UPDATE audit_entries AS a SET listing_id = o.listing_id FROM orders AS o "
    "WHERE a.listing_id IS NULL AND a.details->>'order_id' = o.id::text",
    "ALTER TABLE audit_entries ENABLE TRIGGER audit_entries_append_only",
]
# SQLite keeps uuids as 32 hex digits, the entries' ids in their dashed form.
SQLITE_BACKFILL = [
    "UPDATE audit_entries SET listing_id = (SELECT o.listing_id FROM orders AS o "
    "WHERE o.id = replace(audit_entries.subject_id, '-', '')) WHERE subject_type = 'orders'",
    "UPDATE audit_entries SET listing_id = (SELECT o.listing_id FROM orders AS o "
    "WHERE o.id = replace(json_extract(audit_entries.details, '$.order_id'), '-', '')) "
    "WHERE listing_id IS NULL AND json_extract(details, '$.order_id') IS NOT NULL",
]


def upgrade():
    with op.batch_alter_table('audit_entries', schema=None) as batch_op:
        batch_op.add_column(sa.Column('listing_id', sa.Uuid(), nullable=True))
        batch_op.create_index(batch_op.f('ix_audit_entries_listing_id'), ['listing_id'],
                              unique=False)
    postgresql = op.get_bind().dialect.name == 'postgresql'
    for statement in POSTGRESQL_BACKFILL if postgresql else SQLITE_BACKFILL:
        op.execute(statement)


def downgrade():
    with op.batch_alter_table('audit_entries', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_audit_entries_listing_id'))
        batch_op.drop_column('listing_id')
