"""licences as their own records: licenses (one per order, backfilled from each order's
frozen licence, its status from the order's), their access tokens, reported usage and
renewals

Backfill: an unpaid or paid order's licence is pending; a delivered, completed or disputed
one's active from delivery for the frozen term (the expiry job expires those past their end,
audited); a cancelled, expired or refunded one's revoked, the reason naming how the order
ended. A delivery is verified, and its artifact kept for downloads, as the order recorded it;
per-call licences hold all the calls bought. An order frozen without a licence (an empty one) takes the
listing's scope as it is now.

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-06 05:00:00

"""
import datetime
import uuid

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0021'
down_revision = '0020'
branch_labels = None
depends_on = None

BATCH = 1000
ORDERS = sa.table(
    'orders', sa.column('id', sa.Uuid()), sa.column('listing_id', sa.Uuid()),
    sa.column('buyer_id', sa.Uuid()), sa.column('merchant_id', sa.Uuid()),
    sa.column('quantity', sa.Integer()), sa.column('purpose', sa.String()),
    sa.column('beneficiaries', sa.JSON()), sa.column('license', sa.JSON()),
    sa.column('status', sa.String()), sa.column('delivered_at', sa.DateTime(timezone=True)),
    sa.column('closed_at', sa.DateTime(timezone=True)),
    sa.column('artifact_id', sa.Uuid()), sa.column('verified_delivery', sa.Boolean()),
    sa.column('created_at', sa.DateTime(timezone=True)))
LISTINGS = sa.table(
    'listings', sa.column('id', sa.Uuid()), sa.column('usage_purposes', sa.JSON()),
    sa.column('usage_term_days', sa.Integer()), sa.column('usage_territory', sa.String()),
    sa.column('usage_resale', sa.Boolean()), sa.column('usage_derivatives', sa.Boolean()),
    sa.column('delivery_mode', sa.String()), sa.column('price_model', sa.String()))
LICENSE_COLUMNS = [
    ('id', sa.Uuid()), ('order_id', sa.Uuid()), ('listing_id', sa.Uuid()),
    ('buyer_id', sa.Uuid()), ('merchant_id', sa.Uuid()), ('beneficiaries', sa.JSON()),
    ('quantity', sa.Integer()), ('purpose', sa.String()), ('purposes', sa.JSON()),
    ('territory', sa.String()), ('resale', sa.Boolean()), ('derivatives', sa.Boolean()),
    ('delivery_mode', sa.String()), ('price_model', sa.String()), ('term_days', sa.Integer()),
    ('status', sa.String()), ('valid_from', sa.DateTime(timezone=True)),
    ('valid_until', sa.DateTime(timezone=True)), ('verified_delivery', sa.Boolean()),
    ('artifact_id', sa.Uuid()),
    ('calls_total', sa.Integer()), ('calls_remaining', sa.Integer()),
    ('status_reason', sa.Text()), ('status_changed_at', sa.DateTime(timezone=True)),
    ('created_at', sa.DateTime(timezone=True))]
LICENSES = sa.table('licenses', *(sa.column(name, type_) for name, type_ in LICENSE_COLUMNS))
PENDING = {'pending_payment', 'paid'}
ACTIVE = {'delivered', 'completed', 'disputed'}
ENDED = {'cancelled': 'order cancelled', 'expired': 'order expired unpaid',
         'refunded': 'order refunded in full'}


def _license(order, listing):
    """The licence row of one order (a mapping of the orders' and listings' columns)."""
    frozen = order['license'] or {}
    scope = {
        'purposes': frozen.get('purposes', listing['usage_purposes']),
        'term_days': frozen.get('term_days', listing['usage_term_days']),
        'territory': frozen.get('territory', listing['usage_territory']),
        'resale': frozen.get('resale', listing['usage_resale']),
        'derivatives': frozen.get('derivatives', listing['usage_derivatives']),
        'delivery_mode': frozen.get('delivery_mode', listing['delivery_mode']),
        'price_model': frozen.get('price_model', listing['price_model'])}
    delivered = order['delivered_at']
    status, reason, changed = 'pending', None, None
    if order['status'] in ACTIVE:
        status, changed = 'active', delivered
    elif order['status'] in ENDED:
        status, reason, changed = 'revoked', ENDED[order['status']], order['closed_at']
    calls = order['quantity'] if scope['price_model'] == 'per_call' else None
    term = scope['term_days']
    return {
        'id': uuid.uuid4(), 'order_id': order['id'], 'listing_id': order['listing_id'],
        'buyer_id': order['buyer_id'], 'merchant_id': order['merchant_id'],
        'beneficiaries': list(order['beneficiaries'] or []), 'quantity': order['quantity'],
        'purpose': order['purpose'], 'purposes': list(scope['purposes']),
        'territory': scope['territory'], 'resale': bool(scope['resale']),
        'derivatives': bool(scope['derivatives']), 'delivery_mode': scope['delivery_mode'],
        'price_model': scope['price_model'], 'term_days': term, 'status': status,
        'valid_from': delivered,
        'valid_until': delivered + datetime.timedelta(days=term) if delivered and term else None,
        'verified_delivery': bool(order['verified_delivery']) if delivered else None,
        'artifact_id': order['artifact_id'] if delivered else None,
        'calls_total': calls, 'calls_remaining': calls, 'status_reason': reason,
        'status_changed_at': changed, 'created_at': order['created_at']}


def backfill():
    """One licence per existing order, in batches of BATCH orders (by id)."""
    bind = op.get_bind()
    last = None
    while True:
        query = (sa.select(ORDERS, *(c.label(f'listings_{c.name}') for c in LISTINGS.c))
                 .join(LISTINGS, LISTINGS.c.id == ORDERS.c.listing_id)
                 .order_by(ORDERS.c.id).limit(BATCH))
        if last is not None:
            query = query.where(ORDERS.c.id > last)
        rows = [row._mapping for row in bind.execute(query)]
        if not rows:
            return
        bind.execute(LICENSES.insert(), [
            _license(row, {c.name: row[f'listings_{c.name}'] for c in LISTINGS.c})
            for row in rows])
        last = rows[-1]['id']


def upgrade():
    op.create_table('licenses',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('order_id', sa.Uuid(), nullable=False),
    sa.Column('listing_id', sa.Uuid(), nullable=False),
    sa.Column('buyer_id', sa.Uuid(), nullable=False),
    sa.Column('merchant_id', sa.Uuid(), nullable=False),
    sa.Column('beneficiaries', sa.JSON(), nullable=False),
    sa.Column('quantity', sa.Integer(), nullable=False),
    sa.Column('purpose', sa.String(length=64), nullable=False),
    sa.Column('purposes', sa.JSON(), nullable=False),
    sa.Column('territory', sa.Enum('domestic', 'cross_border', name='license_territory', native_enum=False, create_constraint=True), nullable=False),
    sa.Column('resale', sa.Boolean(), nullable=False),
    sa.Column('derivatives', sa.Boolean(), nullable=False),
    sa.Column('delivery_mode', sa.Enum('download', 'api', 'sandbox', name='license_delivery_mode', native_enum=False, create_constraint=True), nullable=False),
    sa.Column('price_model', sa.Enum('one_time', 'subscription', 'per_call', name='license_price_model', native_enum=False, create_constraint=True), nullable=False),
    sa.Column('term_days', sa.Integer(), nullable=True),
    sa.Column('status', sa.Enum('pending', 'active', 'expired', 'suspended', 'revoked', name='license_status', native_enum=False, create_constraint=True), nullable=False),
    sa.Column('valid_from', sa.DateTime(timezone=True), nullable=True),
    sa.Column('valid_until', sa.DateTime(timezone=True), nullable=True),
    sa.Column('verified_delivery', sa.Boolean(), nullable=True),
    sa.Column('artifact_id', sa.Uuid(), nullable=True),
    sa.Column('calls_total', sa.Integer(), nullable=True),
    sa.Column('calls_remaining', sa.Integer(), nullable=True),
    sa.Column('status_reason', sa.Text(), nullable=True),
    sa.Column('status_changed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['artifact_id'], ['artifacts.id'], name=op.f('fk_licenses_artifact_id_artifacts')),
    sa.ForeignKeyConstraint(['buyer_id'], ['parties.id'], name=op.f('fk_licenses_buyer_id_parties')),
    sa.ForeignKeyConstraint(['listing_id'], ['listings.id'], name=op.f('fk_licenses_listing_id_listings')),
    sa.ForeignKeyConstraint(['merchant_id'], ['parties.id'], name=op.f('fk_licenses_merchant_id_parties')),
    sa.ForeignKeyConstraint(['order_id'], ['orders.id'], name=op.f('fk_licenses_order_id_orders')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_licenses')),
    sa.UniqueConstraint('order_id', name=op.f('uq_licenses_order_id'))
    )
    with op.batch_alter_table('licenses', schema=None) as batch_op:
        batch_op.create_index('ix_licenses_active_until', ['valid_until'], unique=False, postgresql_where=sa.text("status = 'active'"), sqlite_where=sa.text("status = 'active'"))
        batch_op.create_index('ix_licenses_buyer_created', ['buyer_id', 'created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_licenses_listing_id'), ['listing_id'], unique=False)
        batch_op.create_index('ix_licenses_merchant_created', ['merchant_id', 'created_at'], unique=False)

    op.create_table('license_renewals',
    sa.Column('order_id', sa.Uuid(), nullable=False),
    sa.Column('license_id', sa.Uuid(), nullable=False),
    sa.Column('term_days', sa.Integer(), nullable=False),
    sa.Column('status', sa.Enum('pending', 'applied', 'void', name='renewal_status', native_enum=False, create_constraint=True), nullable=False),
    sa.Column('extended_from', sa.DateTime(timezone=True), nullable=True),
    sa.Column('extended_to', sa.DateTime(timezone=True), nullable=True),
    sa.Column('closed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['license_id'], ['licenses.id'], name=op.f('fk_license_renewals_license_id_licenses')),
    sa.ForeignKeyConstraint(['order_id'], ['orders.id'], name=op.f('fk_license_renewals_order_id_orders')),
    sa.PrimaryKeyConstraint('order_id', name=op.f('pk_license_renewals'))
    )
    with op.batch_alter_table('license_renewals', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_license_renewals_license_id'), ['license_id'], unique=False)

    op.create_table('license_tokens',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('license_id', sa.Uuid(), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('issued_to', sa.Uuid(), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['issued_to'], ['parties.id'], name=op.f('fk_license_tokens_issued_to_parties')),
    sa.ForeignKeyConstraint(['license_id'], ['licenses.id'], name=op.f('fk_license_tokens_license_id_licenses')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_license_tokens')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_license_tokens_token_hash'))
    )
    with op.batch_alter_table('license_tokens', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_license_tokens_expires_at'), ['expires_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_license_tokens_license_id'), ['license_id'], unique=False)

    op.create_table('license_usage',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('license_id', sa.Uuid(), nullable=False),
    sa.Column('calls', sa.Integer(), nullable=False),
    sa.Column('period_start', sa.DateTime(timezone=True), nullable=False),
    sa.Column('period_end', sa.DateTime(timezone=True), nullable=False),
    sa.Column('calls_remaining', sa.Integer(), nullable=False),
    sa.Column('reported_by', sa.Uuid(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['license_id'], ['licenses.id'], name=op.f('fk_license_usage_license_id_licenses')),
    sa.ForeignKeyConstraint(['reported_by'], ['parties.id'], name=op.f('fk_license_usage_reported_by_parties')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_license_usage'))
    )
    with op.batch_alter_table('license_usage', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_license_usage_license_id'), ['license_id'], unique=False)

    backfill()



def downgrade():
    with op.batch_alter_table('license_usage', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_license_usage_license_id'))

    op.drop_table('license_usage')
    with op.batch_alter_table('license_tokens', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_license_tokens_license_id'))
        batch_op.drop_index(batch_op.f('ix_license_tokens_expires_at'))

    op.drop_table('license_tokens')
    with op.batch_alter_table('license_renewals', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_license_renewals_license_id'))

    op.drop_table('license_renewals')
    with op.batch_alter_table('licenses', schema=None) as batch_op:
        batch_op.drop_index('ix_licenses_merchant_created')
        batch_op.drop_index(batch_op.f('ix_licenses_listing_id'))
        batch_op.drop_index('ix_licenses_buyer_created')
        batch_op.drop_index('ix_licenses_active_until', postgresql_where=sa.text("status = 'active'"), sqlite_where=sa.text("status = 'active'"))

    op.drop_table('licenses')
