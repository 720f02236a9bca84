"""the credit ledger in the evidence log: each credit entry is written with an audit entry
(`credit.entry_appended`) whose details are the entry's content, and its seq is that audit
entry's id; the hash chain and its lock go

Existing entries keep their order: each gets an audit entry numbered after every audit entry
there is, in chain order (id = the largest id + seq), and takes its id as seq, so the sealer's
next batch integrates them in their chain order (on PostgreSQL they all carry this migration's
transaction id, and a batch is ordered by (txid, id)).

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-09 03:00:00

"""
import datetime
import hashlib
import json

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0020'
down_revision = '0019'
branch_labels = None
depends_on = None

BIG = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')
ACTION = 'credit.entry_appended'
BATCH = 5000

credit_entries = sa.table(
    'credit_entries', sa.column('seq', BIG), sa.column('id', sa.Uuid()),
    sa.column('party_id', sa.Uuid()), sa.column('action', sa.String()),
    sa.column('kind', sa.String()), sa.column('severity', sa.String()),
    sa.column('points', sa.Integer()), sa.column('description', sa.Text()),
    sa.column('evidence_ref', sa.String()), sa.column('refers_to', sa.Uuid()),
    sa.column('recorded_by', sa.Uuid()), sa.column('occurred_at', sa.DateTime(timezone=True)),
    sa.column('prev_hash', sa.String()), sa.column('hash', sa.String()))
audit_entries = sa.table(
    'audit_entries', sa.column('id', BIG), sa.column('occurred_at', sa.DateTime(timezone=True)),
    sa.column('actor_id', sa.Uuid()), sa.column('action', sa.String()),
    sa.column('subject_type', sa.String()), sa.column('subject_id', sa.String()),
    sa.column('details', sa.JSON()), sa.column('payload_digest', sa.String()))


def _canonical_json(value):
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      default=str)


def _utc(value):
    if value.tzinfo is None:  # SQLite keeps UTC naive
        return value.replace(tzinfo=datetime.timezone.utc)
    return value.astimezone(datetime.timezone.utc)


def _content(row):
    """credit.models.entry_content as of this revision."""
    return {"id": str(row.id), "party_id": str(row.party_id), "action": row.action,
            "kind": row.kind, "severity": row.severity, "points": row.points,
            "description": row.description, "evidence_ref": row.evidence_ref,
            "refers_to": str(row.refers_to) if row.refers_to else None,
            "recorded_by": str(row.recorded_by) if row.recorded_by else None,
            "occurred_at": _utc(row.occurred_at).isoformat()}


def upgrade():
    bind = op.get_bind()
    postgresql = bind.dialect.name == 'postgresql'
    offset = bind.scalar(sa.select(sa.func.coalesce(sa.func.max(audit_entries.c.id), 0)))
    last = None
    while True:
        query = sa.select(credit_entries).order_by(credit_entries.c.seq).limit(BATCH)
        if last is not None:
            query = query.where(credit_entries.c.seq > last)
        rows = bind.execute(query).all()
        if not rows:
            break
        logged = []
        for row in rows:
            content = _content(row)
            logged.append({
                "id": offset + row.seq, "occurred_at": row.occurred_at,
                "actor_id": row.recorded_by, "action": ACTION,
                "subject_type": "credit_entries", "subject_id": str(row.id),
                "details": content,
                "payload_digest": hashlib.sha256(_canonical_json(content).encode()).hexdigest()})
        bind.execute(sa.insert(audit_entries), logged)
        last = rows[-1].seq
    if postgresql:
        op.execute("SELECT setval('audit_entries_id_seq', "
                   "coalesce((SELECT max(id) FROM audit_entries), 0) + 1, false)")
        op.execute("ALTER TABLE credit_entries DISABLE TRIGGER credit_entries_append_only")
    # Through negative numbers: every seq stays unique after each row's update.
    bind.execute(sa.update(credit_entries).values(seq=-credit_entries.c.seq))
    bind.execute(sa.update(credit_entries).values(seq=offset - credit_entries.c.seq))
    if postgresql:
        op.execute("ALTER TABLE credit_entries ENABLE TRIGGER credit_entries_append_only")
    with op.batch_alter_table('credit_entries', schema=None) as batch_op:
        batch_op.drop_constraint('uq_credit_entries_hash', type_='unique')
        batch_op.drop_constraint('uq_credit_entries_prev_hash', type_='unique')
        batch_op.drop_column('hash')
        batch_op.drop_column('prev_hash')
        batch_op.create_foreign_key(batch_op.f('fk_credit_entries_seq_audit_entries'),
                                    'audit_entries', ['seq'], ['id'])


def _chain_hash(prev_hash, seq, row):
    content = {**_content(row), "seq": seq}
    return hashlib.sha256((prev_hash + _canonical_json(content)).encode()).hexdigest()


def downgrade():
    """Back to the hash chain, numbered 1, 2, ... in seq order (the audit entries stay: they
    are leaves of the log)."""
    bind = op.get_bind()
    postgresql = bind.dialect.name == 'postgresql'
    with op.batch_alter_table('credit_entries', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_credit_entries_seq_audit_entries'),
                                 type_='foreignkey')
        batch_op.add_column(sa.Column('prev_hash', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('hash', sa.String(length=64), nullable=True))
    if postgresql:
        op.execute("ALTER TABLE credit_entries DISABLE TRIGGER credit_entries_append_only")
    bind.execute(sa.update(credit_entries).values(seq=-credit_entries.c.seq))
    rows = bind.execute(sa.select(credit_entries)
                        .order_by(credit_entries.c.seq.desc())).all()  # -seq: largest first
    prev_hash = "0" * 64
    for seq, row in enumerate(rows, start=1):
        entry_hash = _chain_hash(prev_hash, seq, row)
        bind.execute(sa.update(credit_entries).where(credit_entries.c.seq == row.seq)
                     .values(seq=seq, prev_hash=prev_hash, hash=entry_hash))
        prev_hash = entry_hash
    if postgresql:
        op.execute("ALTER TABLE credit_entries ENABLE TRIGGER credit_entries_append_only")
    with op.batch_alter_table('credit_entries', schema=None) as batch_op:
        batch_op.alter_column('prev_hash', existing_type=sa.String(length=64), nullable=False)
        batch_op.alter_column('hash', existing_type=sa.String(length=64), nullable=False)
        batch_op.create_unique_constraint(batch_op.f('uq_credit_entries_prev_hash'),
                                          ['prev_hash'])
        batch_op.create_unique_constraint(batch_op.f('uq_credit_entries_hash'), ['hash'])
