"""demands: buyers' posted needs, matched against listings

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-29 22:43:44

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('demands',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('buyer_id', sa.Uuid(), nullable=False),
    sa.Column('category', sa.String(length=64), nullable=False),
    sa.Column('keywords', sa.JSON(), nullable=False),
    sa.Column('max_classification', sa.Enum('open', 'general', 'sensitive', 'important', 'core', name='demand_max_classification', native_enum=False, create_constraint=True), nullable=False),
    sa.Column('delivery_modes', sa.JSON(), nullable=False),
    sa.Column('purpose', sa.String(length=64), nullable=False),
    sa.Column('territory', sa.Enum('domestic', 'cross_border', name='demand_territory', native_enum=False, create_constraint=True), nullable=False),
    sa.Column('max_unit_price', sa.BigInteger(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('quantity', sa.Integer(), nullable=False),
    sa.Column('auto_order', sa.Boolean(), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('status', sa.Enum('open', 'matched', 'expired', 'cancelled', name='demand_status', native_enum=False, create_constraint=True), nullable=False),
    sa.Column('order_id', sa.Uuid(), nullable=True),
    sa.Column('closed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['buyer_id'], ['parties.id'], name=op.f('fk_demands_buyer_id_parties')),
    sa.ForeignKeyConstraint(['order_id'], ['orders.id'], name=op.f('fk_demands_order_id_orders')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_demands'))
    )
    with op.batch_alter_table('demands', schema=None) as batch_op:
        batch_op.create_index('ix_demands_buyer_created', ['buyer_id', 'created_at'], unique=False)
        batch_op.create_index('ix_demands_status_category', ['status', 'category'], unique=False)
        batch_op.create_index('ix_demands_status_expires', ['status', 'expires_at'], unique=False)



def downgrade():
    with op.batch_alter_table('demands', schema=None) as batch_op:
        batch_op.drop_index('ix_demands_status_expires')
        batch_op.drop_index('ix_demands_status_category')
        batch_op.drop_index('ix_demands_buyer_created')

    op.drop_table('demands')
