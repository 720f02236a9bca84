"""credit ledger, profiles, penalties, blacklist, objections, repairs

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24 18:57:03.322517

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('blacklist_entries',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('party_id', sa.Uuid(), nullable=False),
    sa.Column('event_id', sa.Uuid(), nullable=True),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('listed_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('publicity_min_until', sa.DateTime(timezone=True), nullable=False),
    sa.Column('publicity_until', sa.DateTime(timezone=True), nullable=False),
    sa.Column('ended_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('end_reason', sa.String(length=40), nullable=True),
    sa.ForeignKeyConstraint(['party_id'], ['parties.id'], name=op.f('fk_blacklist_entries_party_id_parties')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_blacklist_entries'))
    )
    with op.batch_alter_table('blacklist_entries', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_blacklist_entries_party_id'), ['party_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_blacklist_entries_publicity_until'), ['publicity_until'], unique=False)

    op.create_table('credit_entries',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('party_id', sa.Uuid(), nullable=False),
    sa.Column('action', sa.Enum('recorded', 'revoked', 'corrected', 'repaired', name='credit_entry_action', native_enum=False, create_constraint=True), nullable=False),
    sa.Column('kind', sa.String(length=40), nullable=False),
    sa.Column('severity', sa.Enum('minor', 'general', 'serious', 'severe', 'positive', name='credit_severity', native_enum=False, create_constraint=True), nullable=False),
    sa.Column('points', sa.Integer(), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('evidence_ref', sa.String(length=500), nullable=True),
    sa.Column('refers_to', sa.Uuid(), nullable=True),
    sa.Column('recorded_by', sa.Uuid(), nullable=True),
    sa.Column('occurred_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('seq', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=False, nullable=False),
    sa.Column('prev_hash', sa.String(length=64), nullable=False),
    sa.Column('hash', sa.String(length=64), nullable=False),
    sa.ForeignKeyConstraint(['party_id'], ['parties.id'], name=op.f('fk_credit_entries_party_id_parties')),
    sa.PrimaryKeyConstraint('seq', name=op.f('pk_credit_entries')),
    sa.UniqueConstraint('hash', name=op.f('uq_credit_entries_hash')),
    sa.UniqueConstraint('id', name=op.f('uq_credit_entries_id')),
    sa.UniqueConstraint('prev_hash', name=op.f('uq_credit_entries_prev_hash'))
    )
    with op.batch_alter_table('credit_entries', schema=None) as batch_op:
        batch_op.create_index('ix_credit_entries_party_seq', ['party_id', 'seq'], unique=False)

    if op.get_bind().dialect.name == "postgresql":
        # The function comes with revision 0001 (the audit trail's guard).
        op.execute(
            "CREATE TRIGGER credit_entries_append_only BEFORE UPDATE OR DELETE ON credit_entries "
            "FOR EACH ROW EXECUTE FUNCTION refuse_append_only_change()"
        )
    op.create_table('credit_objections',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('event_id', sa.Uuid(), nullable=False),
    sa.Column('party_id', sa.Uuid(), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('evidence_ref', sa.String(length=500), nullable=True),
    sa.Column('status', sa.Enum('pending', 'upheld', 'revoked', 'corrected', 'approved', 'rejected', name='objection_status', native_enum=False, create_constraint=True), nullable=False),
    sa.Column('decided_by', sa.Uuid(), nullable=True),
    sa.Column('note', sa.Text(), nullable=True),
    sa.Column('decided_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('correction_id', sa.Uuid(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['party_id'], ['parties.id'], name=op.f('fk_credit_objections_party_id_parties')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_credit_objections'))
    )
    with op.batch_alter_table('credit_objections', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_credit_objections_event_id'), ['event_id'], unique=False)

    op.create_table('credit_penalties',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('party_id', sa.Uuid(), nullable=False),
    sa.Column('event_id', sa.Uuid(), nullable=True),
    sa.Column('kind', sa.Enum('warning', 'trade_restriction', 'listing_ban', 'deposit', 'fine', name='penalty_kind', native_enum=False, create_constraint=True), nullable=False),
    sa.Column('starts_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('ends_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('amount', sa.BigInteger(), nullable=True),
    sa.Column('paid_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('lifted_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('lift_reason', sa.String(length=200), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['party_id'], ['parties.id'], name=op.f('fk_credit_penalties_party_id_parties')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_credit_penalties'))
    )
    with op.batch_alter_table('credit_penalties', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_credit_penalties_party_id'), ['party_id'], unique=False)

    op.create_table('credit_profiles',
    sa.Column('party_id', sa.Uuid(), nullable=False),
    sa.Column('score', sa.Integer(), nullable=False),
    sa.Column('level', sa.Enum('A', 'B', 'C', 'D', name='credit_level', native_enum=False, create_constraint=True), nullable=False),
    sa.Column('computed_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['party_id'], ['parties.id'], name=op.f('fk_credit_profiles_party_id_parties')),
    sa.PrimaryKeyConstraint('party_id', name=op.f('pk_credit_profiles'))
    )
    op.create_table('credit_repairs',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('party_id', sa.Uuid(), nullable=False),
    sa.Column('measures', sa.Text(), nullable=False),
    sa.Column('commitment', sa.Boolean(), nullable=False),
    sa.Column('evidence_ref', sa.String(length=500), nullable=True),
    sa.Column('status', sa.Enum('pending', 'upheld', 'revoked', 'corrected', 'approved', 'rejected', name='repair_status', native_enum=False, create_constraint=True), nullable=False),
    sa.Column('decided_by', sa.Uuid(), nullable=True),
    sa.Column('note', sa.Text(), nullable=True),
    sa.Column('decided_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['party_id'], ['parties.id'], name=op.f('fk_credit_repairs_party_id_parties')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_credit_repairs'))
    )
    with op.batch_alter_table('credit_repairs', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_credit_repairs_party_id'), ['party_id'], unique=False)

    op.create_table('credit_repair_events',
    sa.Column('repair_id', sa.Uuid(), nullable=False),
    sa.Column('event_id', sa.Uuid(), nullable=False),
    sa.Column('pending', sa.Boolean(), nullable=True),
    sa.ForeignKeyConstraint(['repair_id'], ['credit_repairs.id'], name=op.f('fk_credit_repair_events_repair_id_credit_repairs')),
    sa.PrimaryKeyConstraint('repair_id', 'event_id', name=op.f('pk_credit_repair_events')),
    sa.UniqueConstraint('event_id', 'pending', name=op.f('uq_credit_repair_events_event_id_pending'))
    )


def downgrade():
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER credit_entries_append_only ON credit_entries")
    op.drop_table('credit_repair_events')
    with op.batch_alter_table('credit_repairs', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_credit_repairs_party_id'))

    op.drop_table('credit_repairs')
    op.drop_table('credit_profiles')
    with op.batch_alter_table('credit_penalties', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_credit_penalties_party_id'))

    op.drop_table('credit_penalties')
    with op.batch_alter_table('credit_objections', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_credit_objections_event_id'))

    op.drop_table('credit_objections')
    with op.batch_alter_table('credit_entries', schema=None) as batch_op:
        batch_op.drop_index('ix_credit_entries_party_seq')

    op.drop_table('credit_entries')
    with op.batch_alter_table('blacklist_entries', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_blacklist_entries_publicity_until'))
        batch_op.drop_index(batch_op.f('ix_blacklist_entries_party_id'))

    op.drop_table('blacklist_entries')
