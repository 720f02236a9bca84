"""quality reports once per buyer, certification credit once per listing, cleared flags

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-24 20:10:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade():
    # Reports that break the new rule (a buyer's second and later reports on a listing) are
    # removed, the first one kept, and the listings' running totals recomputed from what
    # remains; the audit trail still records every report that was made.
    op.execute(sa.text(
        "DELETE FROM quality_reports WHERE EXISTS ("
        " SELECT 1 FROM quality_reports AS earlier"
        " WHERE earlier.listing_id = quality_reports.listing_id"
        " AND earlier.buyer_id = quality_reports.buyer_id"
        " AND (earlier.created_at < quality_reports.created_at"
        " OR (earlier.created_at = quality_reports.created_at"
        " AND earlier.id < quality_reports.id)))"))
    op.execute(sa.text(
        "UPDATE listings SET"
        " quality_reports_count = (SELECT count(*) FROM quality_reports AS r"
        " WHERE r.listing_id = listings.id),"
        " quality_score_total = (SELECT coalesce(sum(r.score), 0) FROM quality_reports AS r"
        " WHERE r.listing_id = listings.id)"
        " WHERE quality_reports_count <> (SELECT count(*) FROM quality_reports AS r"
        " WHERE r.listing_id = listings.id)"))
    with op.batch_alter_table('quality_reports', schema=None) as batch_op:
        batch_op.drop_index('ix_quality_reports_listing_id')
        batch_op.create_unique_constraint(batch_op.f('uq_quality_reports_listing_id_buyer_id'),
                                          ['listing_id', 'buyer_id'])

    with op.batch_alter_table('listings', schema=None) as batch_op:
        batch_op.add_column(sa.Column('flag_cleared_at_count', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('certification_credited_at', sa.DateTime(timezone=True),
                                      nullable=True))
    # Every certification rated A or better used to earn a credit event: listings that
    # already have one count as credited, from the first of them.
    op.execute(sa.text(
        "UPDATE listings SET certification_credited_at = ("
        " SELECT min(c.issued_at) FROM certifications AS c"
        " WHERE c.listing_id = listings.id AND c.rating IN ('AAA', 'AA', 'A'))"))


def downgrade():
    with op.batch_alter_table('listings', schema=None) as batch_op:
        batch_op.drop_column('certification_credited_at')
        batch_op.drop_column('flag_cleared_at_count')

    with op.batch_alter_table('quality_reports', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('uq_quality_reports_listing_id_buyer_id'),
                                 type_='unique')
        batch_op.create_index('ix_quality_reports_listing_id', ['listing_id'], unique=False)
