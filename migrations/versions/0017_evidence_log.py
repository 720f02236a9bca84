"""the evidence log: audit entries become plain rows (id, and on PostgreSQL the writing
transaction's id), appended without a lock; tiles, leaves and signed checkpoints of the
Merkle tree the sealer builds from them

Existing entries keep their place: the chain's seq becomes the id, so the sealer's first
batch integrates them in their chain order (on PostgreSQL they all carry this migration's
transaction id, and a batch is ordered by (txid, id)).

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-06 03:00:00

"""
import datetime
import hashlib
import json

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0017'
down_revision = '0016'
branch_labels = None
depends_on = None

BIG = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')

# A tile's hashes only grow: an update must keep every byte it had and add whole hashes, and a
# full tile (256 hashes of 32 bytes) never changes.
TILES_ONLY_GROW_FUNCTION = """
CREATE FUNCTION refuse_tile_rewrite() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'log_tiles only grow: DELETE refused'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF NEW.level <> OLD.level OR NEW."index" <> OLD."index"
            OR length(OLD.hashes) >= 8192
            OR length(NEW.hashes) <= length(OLD.hashes)
            OR length(NEW.hashes) % 32 <> 0
            OR substring(NEW.hashes FROM 1 FOR length(OLD.hashes)) <> OLD.hashes THEN
        RAISE EXCEPTION 'log_tiles only grow: UPDATE refused'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql
"""


def upgrade():
    postgresql = op.get_bind().dialect.name == "postgresql"
    with op.batch_alter_table('audit_entries', schema=None) as batch_op:
        batch_op.drop_constraint('uq_audit_entries_hash', type_='unique')
        batch_op.drop_constraint('uq_audit_entries_prev_hash', type_='unique')
        batch_op.drop_column('hash')
        batch_op.drop_column('prev_hash')
        batch_op.alter_column('seq', new_column_name='id', existing_type=BIG,
                              existing_nullable=False)
    if postgresql:
        op.execute("CREATE SEQUENCE audit_entries_id_seq OWNED BY audit_entries.id")
        op.execute("ALTER TABLE audit_entries ALTER COLUMN id "
                   "SET DEFAULT nextval('audit_entries_id_seq')")
        op.execute("SELECT setval('audit_entries_id_seq', "
                   "coalesce((SELECT max(id) FROM audit_entries), 0) + 1, false)")
        # Every existing row takes this transaction's id: below any later writer's.
        op.execute("ALTER TABLE audit_entries ADD COLUMN txid xid8 "
                   "DEFAULT pg_current_xact_id()")
    else:
        with op.batch_alter_table('audit_entries', schema=None) as batch_op:
            batch_op.add_column(sa.Column('txid', sa.BigInteger(), nullable=True))
    with op.batch_alter_table('audit_entries', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_audit_entries_txid'), ['txid'], unique=False)

    op.create_table('log_tiles',
    sa.Column('level', sa.SmallInteger(), autoincrement=False, nullable=False),
    sa.Column('index', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('hashes', sa.LargeBinary(), nullable=False),
    sa.PrimaryKeyConstraint('level', 'index', name=op.f('pk_log_tiles'))
    )
    op.create_table('log_leaves',
    sa.Column('log_index', BIG, autoincrement=False, nullable=False),
    sa.Column('entry_id', BIG, nullable=False),
    sa.Column('integrated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['entry_id'], ['audit_entries.id'],
                            name=op.f('fk_log_leaves_entry_id_audit_entries')),
    sa.PrimaryKeyConstraint('log_index', name=op.f('pk_log_leaves')),
    sa.UniqueConstraint('entry_id', name=op.f('uq_log_leaves_entry_id'))
    )
    op.create_table('log_checkpoints',
    sa.Column('tree_size', BIG, autoincrement=False, nullable=False),
    sa.Column('root_hash', sa.LargeBinary(length=32), nullable=False),
    sa.Column('signed_note', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('xmin_watermark', sa.BigInteger(), nullable=True),
    sa.PrimaryKeyConstraint('tree_size', name=op.f('pk_log_checkpoints'))
    )
    if postgresql:
        op.execute(TILES_ONLY_GROW_FUNCTION)
        op.execute("CREATE TRIGGER log_tiles_only_grow BEFORE UPDATE OR DELETE ON log_tiles "
                   "FOR EACH ROW EXECUTE FUNCTION refuse_tile_rewrite()")
        for table in ('log_leaves', 'log_checkpoints'):
            op.execute(f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                       "FOR EACH ROW EXECUTE FUNCTION refuse_append_only_change()")


def _chain_hash(prev_hash, seq, row):
    occurred_at = row.occurred_at
    if occurred_at.tzinfo is None:  # SQLite keeps UTC naive
        occurred_at = occurred_at.replace(tzinfo=datetime.timezone.utc)
    content = {"seq": seq, "occurred_at": occurred_at.astimezone(datetime.timezone.utc).isoformat(),
               "actor_id": str(row.actor_id) if row.actor_id else None,
               "action": row.action, "subject_type": row.subject_type,
               "subject_id": row.subject_id, "payload_digest": row.payload_digest}
    text = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      default=str)
    return hashlib.sha256((prev_hash + text).encode()).hexdigest()


def downgrade():
    """Back to the hash chain, in id order (the log's order is dropped with its tables)."""
    bind = op.get_bind()
    postgresql = bind.dialect.name == "postgresql"
    if postgresql:
        op.execute("DROP TRIGGER log_checkpoints_append_only ON log_checkpoints")
        op.execute("DROP TRIGGER log_leaves_append_only ON log_leaves")
        op.execute("DROP TRIGGER log_tiles_only_grow ON log_tiles")
        op.execute("DROP FUNCTION refuse_tile_rewrite()")
    op.drop_table('log_checkpoints')
    op.drop_table('log_leaves')
    op.drop_table('log_tiles')
    with op.batch_alter_table('audit_entries', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_audit_entries_txid'))
        batch_op.drop_column('txid')
        batch_op.add_column(sa.Column('prev_hash', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('hash', sa.String(length=64), nullable=True))
    if postgresql:
        op.execute("ALTER TABLE audit_entries ALTER COLUMN id DROP DEFAULT")
        op.execute("DROP SEQUENCE audit_entries_id_seq")
        op.execute("ALTER TABLE audit_entries DISABLE TRIGGER audit_entries_append_only")
    entries = sa.table('audit_entries', sa.column('id'),
                       sa.column('occurred_at', sa.DateTime(timezone=True)),
                       sa.column('actor_id'), sa.column('action'), sa.column('subject_type'),
                       sa.column('subject_id'), sa.column('payload_digest'),
                       sa.column('prev_hash'), sa.column('hash'))
    prev_hash = "0" * 64
    rows = bind.execute(sa.select(entries).order_by(entries.c.id)).all()
    for seq, row in enumerate(rows, start=1):
        entry_hash = _chain_hash(prev_hash, seq, row)
        bind.execute(sa.update(entries).where(entries.c.id == row.id)
                     .values(id=seq, prev_hash=prev_hash, hash=entry_hash))
        prev_hash = entry_hash
    if postgresql:
        op.execute("ALTER TABLE audit_entries ENABLE TRIGGER audit_entries_append_only")
    with op.batch_alter_table('audit_entries', schema=None) as batch_op:
        batch_op.alter_column('id', new_column_name='seq', existing_type=BIG,
                              existing_nullable=False)
        batch_op.alter_column('prev_hash', existing_type=sa.String(length=64), nullable=False)
        batch_op.alter_column('hash', existing_type=sa.String(length=64), nullable=False)
        batch_op.create_unique_constraint(batch_op.f('uq_audit_entries_prev_hash'), ['prev_hash'])
        batch_op.create_unique_constraint(batch_op.f('uq_audit_entries_hash'), ['hash'])
