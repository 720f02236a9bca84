"""rights confirmed by their holders: consents asked of the parties a listing names; the
authorization of public data (its authority, document and expiry) and the outbound data
security assessment of cross-border personal information on listings; merchants'
qualifications, certifiers' accreditations, and the revocation of certifications

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-06 05:00:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0019'
down_revision = '0018'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('consents',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('listing_id', sa.Uuid(), nullable=False),
    sa.Column('party_id', sa.Uuid(), nullable=False),
    sa.Column('role', sa.Enum('holder', 'processor', 'authority', 'payee', name='consent_role', native_enum=False, create_constraint=True), nullable=False),
    sa.Column('status', sa.Enum('pending', 'accepted', 'declined', 'superseded', name='consent_status', native_enum=False, create_constraint=True), nullable=False),
    sa.Column('terms', sa.JSON(), nullable=False),
    sa.Column('note', sa.Text(), nullable=True),
    sa.Column('requested_by', sa.Uuid(), nullable=False),
    sa.Column('requested_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('decided_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('superseded_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['listing_id'], ['listings.id'], name=op.f('fk_consents_listing_id_listings')),
    sa.ForeignKeyConstraint(['party_id'], ['parties.id'], name=op.f('fk_consents_party_id_parties')),
    sa.ForeignKeyConstraint(['requested_by'], ['parties.id'], name=op.f('fk_consents_requested_by_parties')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_consents'))
    )
    with op.batch_alter_table('consents', schema=None) as batch_op:
        batch_op.create_index('ix_consents_open_request', ['listing_id', 'party_id', 'role'], unique=True, postgresql_where=sa.text("status <> 'superseded'"), sqlite_where=sa.text("status <> 'superseded'"))
        batch_op.create_index('ix_consents_party_status', ['party_id', 'status'], unique=False)
        batch_op.create_index(batch_op.f('ix_consents_listing_id'), ['listing_id'], unique=False)

    with op.batch_alter_table('listings', schema=None) as batch_op:
        batch_op.add_column(sa.Column('source_authority_id', sa.Uuid(), nullable=True))
        batch_op.add_column(sa.Column('source_authorization_ref', sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column('source_authorization_valid_until', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('usage_cross_border_assessment_ref', sa.String(length=200), nullable=True))
        batch_op.create_foreign_key(batch_op.f('fk_listings_source_authority_id_parties'), 'parties', ['source_authority_id'], ['id'])

    op.create_table('qualifications',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('party_id', sa.Uuid(), nullable=False),
    sa.Column('max_classification', sa.Enum('open', 'general', 'sensitive', 'important', 'core', name='qualification_classification', native_enum=False, create_constraint=True), nullable=False),
    sa.Column('valid_until', sa.DateTime(timezone=True), nullable=False),
    sa.Column('evidence_ref', sa.String(length=200), nullable=False),
    sa.Column('granted_by', sa.Uuid(), nullable=True),
    sa.Column('granted_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['granted_by'], ['parties.id'], name=op.f('fk_qualifications_granted_by_parties')),
    sa.ForeignKeyConstraint(['party_id'], ['parties.id'], name=op.f('fk_qualifications_party_id_parties')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_qualifications'))
    )
    with op.batch_alter_table('qualifications', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_qualifications_party_id'), ['party_id'], unique=False)

    op.create_table('accreditations',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('party_id', sa.Uuid(), nullable=False),
    sa.Column('scopes', sa.JSON(), nullable=False),
    sa.Column('max_classification', sa.Enum('open', 'general', 'sensitive', 'important', 'core', name='accreditation_classification', native_enum=False, create_constraint=True), nullable=False),
    sa.Column('valid_until', sa.DateTime(timezone=True), nullable=False),
    sa.Column('evidence_ref', sa.String(length=200), nullable=False),
    sa.Column('granted_by', sa.Uuid(), nullable=True),
    sa.Column('granted_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['granted_by'], ['parties.id'], name=op.f('fk_accreditations_granted_by_parties')),
    sa.ForeignKeyConstraint(['party_id'], ['parties.id'], name=op.f('fk_accreditations_party_id_parties')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_accreditations'))
    )
    with op.batch_alter_table('accreditations', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_accreditations_party_id'), ['party_id'], unique=False)

    with op.batch_alter_table('certifications', schema=None) as batch_op:
        batch_op.add_column(sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('revoked_by', sa.Uuid(), nullable=True))
        batch_op.add_column(sa.Column('revocation_reason', sa.Text(), nullable=True))
        batch_op.create_foreign_key(batch_op.f('fk_certifications_revoked_by_parties'), 'parties', ['revoked_by'], ['id'])


def downgrade():
    with op.batch_alter_table('certifications', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_certifications_revoked_by_parties'), type_='foreignkey')
        batch_op.drop_column('revocation_reason')
        batch_op.drop_column('revoked_by')
        batch_op.drop_column('revoked_at')

    with op.batch_alter_table('accreditations', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_accreditations_party_id'))

    op.drop_table('accreditations')
    with op.batch_alter_table('qualifications', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_qualifications_party_id'))

    op.drop_table('qualifications')

    with op.batch_alter_table('listings', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_listings_source_authority_id_parties'), type_='foreignkey')
        batch_op.drop_column('usage_cross_border_assessment_ref')
        batch_op.drop_column('source_authorization_valid_until')
        batch_op.drop_column('source_authorization_ref')
        batch_op.drop_column('source_authority_id')

    with op.batch_alter_table('consents', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_consents_listing_id'))
        batch_op.drop_index('ix_consents_party_status')
        batch_op.drop_index('ix_consents_open_request', postgresql_where=sa.text("status <> 'superseded'"), sqlite_where=sa.text("status <> 'superseded'"))

    op.drop_table('consents')
