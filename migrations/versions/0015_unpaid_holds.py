"""what a buyer holds unpaid and abandons: partial indexes of unpaid orders by buyer and
listing, and of cancelled or expired orders by buyer and closing time

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-01 09:00:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None

UNPAID = "status = 'pending_payment'"
ABANDONED = "status IN ('cancelled', 'expired')"


def upgrade():
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.create_index('ix_orders_unpaid_buyer_listing', ['buyer_id', 'listing_id'],
                              unique=False, postgresql_where=sa.text(UNPAID),
                              sqlite_where=sa.text(UNPAID))
        batch_op.create_index('ix_orders_abandoned_buyer_closed', ['buyer_id', 'closed_at'],
                              unique=False, postgresql_where=sa.text(ABANDONED),
                              sqlite_where=sa.text(ABANDONED))


def downgrade():
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.drop_index('ix_orders_abandoned_buyer_closed')
        batch_op.drop_index('ix_orders_unpaid_buyer_listing')
