"""ledger and settlement: accounts, balanced transactions, append-only entries, runs,
allocation lines, refund reversals, payout accounts, batches and payouts, the revenue plan
frozen on orders

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-29 23:13:41

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('ledger_transactions',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('key', sa.String(length=200), nullable=False),
    sa.Column('kind', sa.String(length=40), nullable=False),
    sa.Column('description', sa.String(length=500), nullable=False),
    sa.Column('entries_digest', sa.String(length=64), nullable=False),
    sa.Column('posted_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ledger_transactions')),
    sa.UniqueConstraint('key', name=op.f('uq_ledger_transactions_key'))
    )
    op.create_table('settlement_runs',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('up_to', sa.DateTime(timezone=True), nullable=False),
    sa.Column('status', sa.Enum('running', 'completed', name='settlement_run_status', native_enum=False, create_constraint=True), nullable=False),
    sa.Column('orders_settled', sa.Integer(), nullable=False),
    sa.Column('gross_amount', sa.BigInteger(), nullable=False),
    sa.Column('platform_fee_amount', sa.BigInteger(), nullable=False),
    sa.Column('payout_amount', sa.BigInteger(), nullable=False),
    sa.Column('refunds_reversed', sa.Integer(), nullable=False),
    sa.Column('started_by', sa.Uuid(), nullable=True),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_settlement_runs')),
    sa.UniqueConstraint('up_to', name=op.f('uq_settlement_runs_up_to'))
    )
    op.create_table('ledger_accounts',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('code', sa.String(length=120), nullable=False),
    sa.Column('kind', sa.String(length=40), nullable=False),
    sa.Column('party_id', sa.Uuid(), nullable=True),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('balance', sa.BigInteger(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['party_id'], ['parties.id'], name=op.f('fk_ledger_accounts_party_id_parties')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ledger_accounts')),
    sa.UniqueConstraint('code', name=op.f('uq_ledger_accounts_code'))
    )
    with op.batch_alter_table('ledger_accounts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_ledger_accounts_party_id'), ['party_id'], unique=False)

    op.create_table('payout_accounts',
    sa.Column('party_id', sa.Uuid(), nullable=False),
    sa.Column('method', sa.Enum('bank_file', 'stripe_connect', name='payout_method', native_enum=False, create_constraint=True), nullable=False),
    sa.Column('bank_name', sa.String(length=200), nullable=True),
    sa.Column('account_name', sa.String(length=200), nullable=True),
    sa.Column('account_number', sa.String(length=64), nullable=True),
    sa.Column('stripe_account_id', sa.String(length=255), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['party_id'], ['parties.id'], name=op.f('fk_payout_accounts_party_id_parties')),
    sa.PrimaryKeyConstraint('party_id', name=op.f('pk_payout_accounts'))
    )
    op.create_table('payout_batches',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('run_id', sa.Uuid(), nullable=False),
    sa.Column('method', sa.Enum('bank_file', 'stripe_connect', name='payout_batch_method', native_enum=False, create_constraint=True), nullable=False),
    sa.Column('file_path', sa.String(length=500), nullable=True),
    sa.Column('confirmed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('confirmed_by', sa.Uuid(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['run_id'], ['settlement_runs.id'], name=op.f('fk_payout_batches_run_id_settlement_runs')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_payout_batches')),
    sa.UniqueConstraint('run_id', 'method', name=op.f('uq_payout_batches_run_id_method'))
    )
    op.create_table('ledger_entries',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('transaction_id', sa.Uuid(), nullable=False),
    sa.Column('account_id', sa.Uuid(), nullable=False),
    sa.Column('amount', sa.BigInteger(), nullable=False),
    sa.Column('posted_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['ledger_accounts.id'], name=op.f('fk_ledger_entries_account_id_ledger_accounts')),
    sa.ForeignKeyConstraint(['transaction_id'], ['ledger_transactions.id'], name=op.f('fk_ledger_entries_transaction_id_ledger_transactions')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ledger_entries'))
    )
    with op.batch_alter_table('ledger_entries', schema=None) as batch_op:
        batch_op.create_index('ix_ledger_entries_account_posted', ['account_id', 'posted_at', 'id'], unique=False)
        batch_op.create_index(batch_op.f('ix_ledger_entries_transaction_id'), ['transaction_id'], unique=False)

    op.create_table('payouts',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('run_id', sa.Uuid(), nullable=False),
    sa.Column('batch_id', sa.Uuid(), nullable=False),
    sa.Column('party_id', sa.Uuid(), nullable=False),
    sa.Column('method', sa.Enum('bank_file', 'stripe_connect', name='payout_entry_method', native_enum=False, create_constraint=True), nullable=False),
    sa.Column('amount', sa.BigInteger(), nullable=False),
    sa.Column('status', sa.Enum('in_transit', 'paid', 'failed', name='payout_status', native_enum=False, create_constraint=True), nullable=False),
    sa.Column('reference', sa.String(length=255), nullable=True),
    sa.Column('failure_reason', sa.String(length=500), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('resolved_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['batch_id'], ['payout_batches.id'], name=op.f('fk_payouts_batch_id_payout_batches')),
    sa.ForeignKeyConstraint(['party_id'], ['parties.id'], name=op.f('fk_payouts_party_id_parties')),
    sa.ForeignKeyConstraint(['run_id'], ['settlement_runs.id'], name=op.f('fk_payouts_run_id_settlement_runs')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_payouts')),
    sa.UniqueConstraint('run_id', 'party_id', name=op.f('uq_payouts_run_id_party_id'))
    )
    with op.batch_alter_table('payouts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_payouts_batch_id'), ['batch_id'], unique=False)
        batch_op.create_index('ix_payouts_party_created', ['party_id', 'created_at'], unique=False)

    op.create_table('allocation_lines',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('order_id', sa.Uuid(), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('party_id', sa.Uuid(), nullable=True),
    sa.Column('role', sa.String(length=30), nullable=False),
    sa.Column('basis', sa.String(length=30), nullable=False),
    sa.Column('amount', sa.BigInteger(), nullable=False),
    sa.Column('reversed_amount', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['order_id'], ['orders.id'], name=op.f('fk_allocation_lines_order_id_orders')),
    sa.ForeignKeyConstraint(['party_id'], ['parties.id'], name=op.f('fk_allocation_lines_party_id_parties')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_allocation_lines')),
    sa.UniqueConstraint('order_id', 'position', name=op.f('uq_allocation_lines_order_id_position'))
    )
    with op.batch_alter_table('allocation_lines', schema=None) as batch_op:
        batch_op.create_index('ix_allocation_lines_party', ['party_id'], unique=False)

    op.create_table('order_settlements',
    sa.Column('order_id', sa.Uuid(), nullable=False),
    sa.Column('run_id', sa.Uuid(), nullable=False),
    sa.Column('amount', sa.BigInteger(), nullable=False),
    sa.Column('settled_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['order_id'], ['orders.id'], name=op.f('fk_order_settlements_order_id_orders')),
    sa.ForeignKeyConstraint(['run_id'], ['settlement_runs.id'], name=op.f('fk_order_settlements_run_id_settlement_runs')),
    sa.PrimaryKeyConstraint('order_id', name=op.f('pk_order_settlements'))
    )
    with op.batch_alter_table('order_settlements', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_order_settlements_run_id'), ['run_id'], unique=False)

    op.create_table('refund_reversals',
    sa.Column('refund_id', sa.Uuid(), nullable=False),
    sa.Column('order_id', sa.Uuid(), nullable=False),
    sa.Column('run_id', sa.Uuid(), nullable=True),
    sa.Column('amount', sa.BigInteger(), nullable=False),
    sa.Column('reversed_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['order_id'], ['orders.id'], name=op.f('fk_refund_reversals_order_id_orders')),
    sa.ForeignKeyConstraint(['refund_id'], ['refunds.id'], name=op.f('fk_refund_reversals_refund_id_refunds')),
    sa.ForeignKeyConstraint(['run_id'], ['settlement_runs.id'], name=op.f('fk_refund_reversals_run_id_settlement_runs')),
    sa.PrimaryKeyConstraint('refund_id', name=op.f('pk_refund_reversals'))
    )
    with op.batch_alter_table('refund_reversals', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_refund_reversals_order_id'), ['order_id'], unique=False)

    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.add_column(sa.Column('revenue_plan', sa.JSON(), nullable=True))


    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE TRIGGER ledger_entries_append_only BEFORE UPDATE OR DELETE ON ledger_entries "
            "FOR EACH ROW EXECUTE FUNCTION refuse_append_only_change()"
        )

def downgrade():
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER ledger_entries_append_only ON ledger_entries")
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.drop_column('revenue_plan')

    with op.batch_alter_table('refund_reversals', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_refund_reversals_order_id'))

    op.drop_table('refund_reversals')
    with op.batch_alter_table('order_settlements', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_order_settlements_run_id'))

    op.drop_table('order_settlements')
    with op.batch_alter_table('allocation_lines', schema=None) as batch_op:
        batch_op.drop_index('ix_allocation_lines_party')

    op.drop_table('allocation_lines')
    with op.batch_alter_table('payouts', schema=None) as batch_op:
        batch_op.drop_index('ix_payouts_party_created')
        batch_op.drop_index(batch_op.f('ix_payouts_batch_id'))

    op.drop_table('payouts')
    with op.batch_alter_table('ledger_entries', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_ledger_entries_transaction_id'))
        batch_op.drop_index('ix_ledger_entries_account_posted')

    op.drop_table('ledger_entries')
    op.drop_table('payout_batches')
    op.drop_table('payout_accounts')
    with op.batch_alter_table('ledger_accounts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_ledger_accounts_party_id'))

    op.drop_table('ledger_accounts')
    op.drop_table('settlement_runs')
    op.drop_table('ledger_transactions')
