"""stripe payments: the order's PaymentIntent, and webhook events processed once

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-24 20:30:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.add_column(sa.Column('payment_intent_id', sa.String(length=255), nullable=True))
        batch_op.create_unique_constraint(batch_op.f('uq_orders_payment_intent_id'),
                                          ['payment_intent_id'])

    op.create_table('stripe_events',
    sa.Column('event_id', sa.String(length=255), nullable=False),
    sa.Column('type', sa.String(length=100), nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('event_id', name=op.f('pk_stripe_events'))
    )


def downgrade():
    op.drop_table('stripe_events')

    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('uq_orders_payment_intent_id'), type_='unique')
        batch_op.drop_column('payment_intent_id')
