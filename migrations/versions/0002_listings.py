"""listings, certifications, quality reports, admission rules

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24 18:51:05.130021

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('admission_rules',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('rule_key', sa.Uuid(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('list', sa.Enum('positive', 'negative', name='admission_list', native_enum=False, create_constraint=True), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('categories', sa.JSON(), nullable=False),
    sa.Column('keywords', sa.JSON(), nullable=False),
    sa.Column('classifications', sa.JSON(), nullable=False),
    sa.Column('contains_personal_info', sa.Boolean(), nullable=True),
    sa.Column('territory', sa.Enum('domestic', 'cross_border', name='rule_territory', native_enum=False, create_constraint=True), nullable=True),
    sa.Column('effective_from', sa.DateTime(timezone=True), nullable=False),
    sa.Column('effective_to', sa.DateTime(timezone=True), nullable=True),
    sa.Column('retired_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_by', sa.Uuid(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['created_by'], ['parties.id'], name=op.f('fk_admission_rules_created_by_parties')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_admission_rules')),
    sa.UniqueConstraint('rule_key', 'version', name=op.f('uq_admission_rules_rule_key_version'))
    )
    op.create_table('listings',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('merchant_id', sa.Uuid(), nullable=False),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('category', sa.String(length=64), nullable=False),
    sa.Column('tags', sa.JSON(), nullable=False),
    sa.Column('classification', sa.Enum('open', 'general', 'sensitive', 'important', 'core', name='classification', native_enum=False, create_constraint=True), nullable=False),
    sa.Column('contains_personal_info', sa.Boolean(), nullable=False),
    sa.Column('anonymized', sa.Boolean(), nullable=False),
    sa.Column('consent_basis', sa.String(length=500), nullable=True),
    sa.Column('source_origin', sa.Enum('collected', 'public_authorized', 'purchased', 'derived', name='source_origin', native_enum=False, create_constraint=True), nullable=False),
    sa.Column('source_description', sa.Text(), nullable=False),
    sa.Column('source_legal_basis', sa.String(length=500), nullable=False),
    sa.Column('rights_holder_id', sa.Uuid(), nullable=False),
    sa.Column('rights_processor_ids', sa.JSON(), nullable=False),
    sa.Column('rights_operator_id', sa.Uuid(), nullable=False),
    sa.Column('usage_purposes', sa.JSON(), nullable=False),
    sa.Column('usage_term_days', sa.Integer(), nullable=True),
    sa.Column('usage_territory', sa.Enum('domestic', 'cross_border', name='usage_territory', native_enum=False, create_constraint=True), nullable=False),
    sa.Column('usage_resale', sa.Boolean(), nullable=False),
    sa.Column('usage_derivatives', sa.Boolean(), nullable=False),
    sa.Column('delivery_mode', sa.Enum('download', 'api', 'sandbox', name='delivery_mode', native_enum=False, create_constraint=True), nullable=False),
    sa.Column('price_model', sa.Enum('one_time', 'subscription', 'per_call', name='price_model', native_enum=False, create_constraint=True), nullable=False),
    sa.Column('unit_price', sa.BigInteger(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('licenses_available', sa.Integer(), nullable=True),
    sa.Column('revenue_shares', sa.JSON(), nullable=False),
    sa.Column('status', sa.Enum('draft', 'pending_review', 'listed', 'rejected', 'suspended', 'delisted', name='listing_status', native_enum=False, create_constraint=True), nullable=False),
    sa.Column('status_reason', sa.Text(), nullable=True),
    sa.Column('admission', sa.JSON(), nullable=True),
    sa.Column('review_flag', sa.String(length=200), nullable=True),
    sa.Column('quality_reports_count', sa.Integer(), nullable=False),
    sa.Column('quality_score_total', sa.Integer(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('listed_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['merchant_id'], ['parties.id'], name=op.f('fk_listings_merchant_id_parties')),
    sa.ForeignKeyConstraint(['rights_holder_id'], ['parties.id'], name=op.f('fk_listings_rights_holder_id_parties')),
    sa.ForeignKeyConstraint(['rights_operator_id'], ['parties.id'], name=op.f('fk_listings_rights_operator_id_parties')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_listings'))
    )
    with op.batch_alter_table('listings', schema=None) as batch_op:
        batch_op.create_index('ix_listings_merchant_status', ['merchant_id', 'status'], unique=False)
        batch_op.create_index('ix_listings_status_category_price', ['status', 'category', 'unit_price'], unique=False)

    op.create_table('certifications',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('listing_id', sa.Uuid(), nullable=False),
    sa.Column('certifier_id', sa.Uuid(), nullable=False),
    sa.Column('rating', sa.Enum('AAA', 'AA', 'A', 'B', 'C', name='rating', native_enum=False, create_constraint=True), nullable=False),
    sa.Column('scopes', sa.JSON(), nullable=False),
    sa.Column('valid_until', sa.DateTime(timezone=True), nullable=False),
    sa.Column('report_ref', sa.String(length=200), nullable=False),
    sa.Column('issued_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['certifier_id'], ['parties.id'], name=op.f('fk_certifications_certifier_id_parties')),
    sa.ForeignKeyConstraint(['listing_id'], ['listings.id'], name=op.f('fk_certifications_listing_id_listings')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_certifications'))
    )
    with op.batch_alter_table('certifications', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_certifications_listing_id'), ['listing_id'], unique=False)

    op.create_table('quality_reports',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('listing_id', sa.Uuid(), nullable=False),
    sa.Column('buyer_id', sa.Uuid(), nullable=False),
    sa.Column('score', sa.Integer(), nullable=False),
    sa.Column('issue', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['buyer_id'], ['parties.id'], name=op.f('fk_quality_reports_buyer_id_parties')),
    sa.ForeignKeyConstraint(['listing_id'], ['listings.id'], name=op.f('fk_quality_reports_listing_id_listings')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_quality_reports'))
    )
    with op.batch_alter_table('quality_reports', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_quality_reports_listing_id'), ['listing_id'], unique=False)



def downgrade():
    with op.batch_alter_table('quality_reports', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_quality_reports_listing_id'))

    op.drop_table('quality_reports')
    with op.batch_alter_table('certifications', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_certifications_listing_id'))

    op.drop_table('certifications')
    with op.batch_alter_table('listings', schema=None) as batch_op:
        batch_op.drop_index('ix_listings_status_category_price')
        batch_op.drop_index('ix_listings_merchant_status')

    op.drop_table('listings')
    op.drop_table('admission_rules')
