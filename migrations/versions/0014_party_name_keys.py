"""party names compared as they read: parties.name_key, unique

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-02 10:00:00

"""
from alembic import op
import sqlalchemy as sa

from app.parties.names import name_key


# revision identifiers, used by Alembic.
revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None

parties = sa.table("parties", sa.column("id", sa.Uuid()), sa.column("name", sa.String()),
                   sa.column("name_key", sa.String()), sa.column("created_at"))


def upgrade():
    op.add_column('parties', sa.Column('name_key', sa.String(length=64), nullable=True))
    # The oldest party of each name keeps it; a later one under an equal name (registered
    # before names were compared) is left without a key rather than renamed behind its back.
    connection = op.get_bind()
    keys, seen = [], set()
    for party_id, name in connection.execute(
            sa.select(parties.c.id, parties.c.name).order_by(parties.c.created_at, parties.c.id)):
        key = name_key(name)
        if key not in seen:
            seen.add(key)
            keys.append({"party_id": party_id, "key": key})
    if keys:
        connection.execute(parties.update().where(parties.c.id == sa.bindparam("party_id"))
                           .values(name_key=sa.bindparam("key")), keys)
    op.create_index(op.f('ix_parties_name_key'), 'parties', ['name_key'], unique=True)


def downgrade():
    op.drop_index(op.f('ix_parties_name_key'), table_name='parties')
    with op.batch_alter_table('parties', schema=None) as batch_op:
        batch_op.drop_column('name_key')
