"""guided pricing: guide prices with bands, price warnings, deal statistics by category

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-29 22:52:08

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('guide_prices',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('category', sa.String(length=64), nullable=False),
    sa.Column('classification', sa.Enum('open', 'general', 'sensitive', 'important', 'core', name='guide_classification', native_enum=False, create_constraint=True), nullable=True),
    sa.Column('price_model', sa.Enum('one_time', 'subscription', 'per_call', name='guide_price_model', native_enum=False, create_constraint=True), nullable=True),
    sa.Column('reference_price', sa.BigInteger(), nullable=False),
    sa.Column('floor_pct', sa.Integer(), nullable=False),
    sa.Column('ceiling_pct', sa.Integer(), nullable=False),
    sa.Column('binding', sa.Boolean(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('effective_from', sa.DateTime(timezone=True), nullable=False),
    sa.Column('effective_to', sa.DateTime(timezone=True), nullable=True),
    sa.Column('superseded_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('superseded_by', sa.Uuid(), nullable=True),
    sa.Column('set_by', sa.Uuid(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['set_by'], ['parties.id'], name=op.f('fk_guide_prices_set_by_parties')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_guide_prices'))
    )
    with op.batch_alter_table('guide_prices', schema=None) as batch_op:
        batch_op.create_index('ix_guide_prices_category_from', ['category', 'effective_from'], unique=False)

    with op.batch_alter_table('listings', schema=None) as batch_op:
        batch_op.add_column(sa.Column('price_warning', sa.Text(), nullable=True))

    # Existing orders take their listing's category, then the column becomes required.
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.add_column(sa.Column('category', sa.String(length=64), nullable=True))
    op.execute("UPDATE orders SET category = "
               "(SELECT listings.category FROM listings WHERE listings.id = orders.listing_id)")
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.alter_column('category', existing_type=sa.String(length=64), nullable=False)
        batch_op.create_index('ix_orders_deals', ['category', 'status', 'completed_at', 'unit_price'], unique=False)



def downgrade():
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.drop_index('ix_orders_deals')
        batch_op.drop_column('category')

    with op.batch_alter_table('listings', schema=None) as batch_op:
        batch_op.drop_column('price_warning')

    with op.batch_alter_table('guide_prices', schema=None) as batch_op:
        batch_op.drop_index('ix_guide_prices_category_from')

    op.drop_table('guide_prices')
