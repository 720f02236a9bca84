"""artifacts: data files merchants upload, hashed by the exchange; the download links issued
for them; orders delivered with an artifact (verified_delivery)

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-08 09:00:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0018'
down_revision = '0017'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('artifacts',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('listing_id', sa.Uuid(), nullable=False),
    sa.Column('merchant_id', sa.Uuid(), nullable=False),
    sa.Column('storage_key', sa.String(length=500), nullable=False),
    sa.Column('filename', sa.String(length=255), nullable=False),
    sa.Column('content_type', sa.String(length=255), nullable=False),
    sa.Column('size', sa.BigInteger(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('uploaded_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['listing_id'], ['listings.id'], name=op.f('fk_artifacts_listing_id_listings')),
    sa.ForeignKeyConstraint(['merchant_id'], ['parties.id'], name=op.f('fk_artifacts_merchant_id_parties')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_artifacts')),
    sa.UniqueConstraint('storage_key', name=op.f('uq_artifacts_storage_key'))
    )
    with op.batch_alter_table('artifacts', schema=None) as batch_op:
        batch_op.create_index('ix_artifacts_listing_uploaded', ['listing_id', 'uploaded_at'], unique=False)

    op.create_table('download_logs',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('artifact_id', sa.Uuid(), nullable=False),
    sa.Column('party_id', sa.Uuid(), nullable=False),
    sa.Column('license_id', sa.Uuid(), nullable=True),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('issued_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['artifact_id'], ['artifacts.id'], name=op.f('fk_download_logs_artifact_id_artifacts')),
    sa.ForeignKeyConstraint(['party_id'], ['parties.id'], name=op.f('fk_download_logs_party_id_parties')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_download_logs'))
    )
    with op.batch_alter_table('download_logs', schema=None) as batch_op:
        batch_op.create_index('ix_download_logs_artifact_issued', ['artifact_id', 'issued_at'], unique=False)
        batch_op.create_index('ix_download_logs_license_issued', ['license_id', 'issued_at'], unique=False)

    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.add_column(sa.Column('artifact_id', sa.Uuid(), nullable=True))
        batch_op.add_column(sa.Column('verified_delivery', sa.Boolean(), server_default=sa.false(), nullable=False))
        batch_op.create_foreign_key(batch_op.f('fk_orders_artifact_id_artifacts'), 'artifacts', ['artifact_id'], ['id'])


def downgrade():
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_orders_artifact_id_artifacts'), type_='foreignkey')
        batch_op.drop_column('verified_delivery')
        batch_op.drop_column('artifact_id')

    with op.batch_alter_table('download_logs', schema=None) as batch_op:
        batch_op.drop_index('ix_download_logs_license_issued')
        batch_op.drop_index('ix_download_logs_artifact_issued')

    op.drop_table('download_logs')
    with op.batch_alter_table('artifacts', schema=None) as batch_op:
        batch_op.drop_index('ix_artifacts_listing_uploaded')

    op.drop_table('artifacts')
