"""A short trade written against the client openapi-python-client generates from /openapi.json,
with its typed functions and models only.

tests/test_typed_client.py generates the client (the package `exchange_client`), checks this
file with mypy --strict against it, then runs `trade()` against a live server. Attributes are
read without "unset" checks and compared with the generated enums: the file type-checks only
while the document marks what every answer holds as required and types each field.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from exchange_client import AuthenticatedClient, Client
from exchange_client.api.listings import (
    create_listing,
    get_listing,
    review_listing,
    submit_listing,
)
from exchange_client.api.orders import get_order, list_orders, place_order
from exchange_client.api.parties import register_party
from exchange_client.models import (
    Listing,
    ListingBody,
    ListingBodyClassification,
    ListingBodyDeliveryMode,
    ListingBodyPriceModel,
    ListingDetail,
    ListingDetailStatus,
    ListingStatus,
    Order,
    OrderCreate,
    OrderCurrency,
    OrderStatus,
    PartyCreate,
    PartyCreated,
    PartyCreateKind,
    PartyCreateRolesItem,
    PaymentInfoStatus,
    Review,
    ReviewDecision,
    Rights,
    Source,
    SourceOrigin,
    UsageScope,
    UsageScopeTerritory,
)

UNIT_PRICE = 120_000  # fen


@dataclass(frozen=True)
class Outcome:
    listing: ListingDetail
    order: Order


def register(client: Client, name: str, credit_code: str,
             role: PartyCreateRolesItem) -> PartyCreated:
    created = register_party.sync(client=client, body=PartyCreate(
        name=name, credit_code=credit_code, kind=PartyCreateKind.ENTERPRISE, roles=[role]))
    assert isinstance(created, PartyCreated), created
    return created


def listing_body(merchant_id: uuid.UUID) -> ListingBody:
    return ListingBody(
        title="上海道路交通流量 Shanghai hourly road traffic flows",
        description="每小时路段车流量与拥堵指数。Hourly vehicle counts on 1,200 road segments.",
        category="transport",
        tags=["traffic", "交通"],
        classification=ListingBodyClassification.GENERAL,
        source=Source(origin=SourceOrigin.COLLECTED,
                      description="Roadside loop detectors we operate",
                      legal_basis="道路交通监测设备运营许可 2024-17"),
        rights=Rights(holder_id=merchant_id, operator_id=merchant_id),
        usage_scope=UsageScope(purposes=["research", "logistics_planning"],
                               territory=UsageScopeTerritory.DOMESTIC, term_days=365),
        delivery_mode=ListingBodyDeliveryMode.API,
        price_model=ListingBodyPriceModel.SUBSCRIPTION,
        unit_price=UNIT_PRICE,
        licenses_available=10,
    )


def trade(base_url: str, operator_key: str, credit_codes: tuple[str, str]) -> Outcome:
    """Register a merchant and a buyer, list a product, order two licences, read the order."""
    merchant = register(Client(base_url=base_url), "智行交通数据 Zhixing Traffic Data Co.",
                        credit_codes[0], PartyCreateRolesItem.MERCHANT)
    buyer = register(Client(base_url=base_url), "平安物流 Ping An Logistics Co.",
                     credit_codes[1], PartyCreateRolesItem.BUYER)
    as_merchant = AuthenticatedClient(base_url=base_url, token=merchant.api_key)
    as_buyer = AuthenticatedClient(base_url=base_url, token=buyer.api_key)
    as_operator = AuthenticatedClient(base_url=base_url, token=operator_key)

    draft = create_listing.sync(client=as_merchant, body=listing_body(merchant.id))
    assert isinstance(draft, Listing), draft
    assert draft.status == ListingStatus.DRAFT and draft.merchant_id == merchant.id
    submitted = submit_listing.sync(client=as_merchant, listing_id=draft.id)
    assert isinstance(submitted, Listing), submitted
    if submitted.status == ListingStatus.PENDING_REVIEW:
        reviewed = review_listing.sync(client=as_operator, listing_id=draft.id, body=Review(
            decision=ReviewDecision.APPROVE, reason="来源材料齐全 Sources checked."))
        assert isinstance(reviewed, Listing), reviewed
    listing = get_listing.sync(client=as_buyer, listing_id=draft.id)
    assert isinstance(listing, ListingDetail), listing
    assert listing.status == ListingDetailStatus.LISTED and listing.licenses_available == 10

    placed = place_order.sync(client=as_buyer, idempotency_key=str(uuid.uuid4()), body=OrderCreate(
        listing_id=listing.id, quantity=2, purpose="logistics_planning"))
    assert isinstance(placed, Order), placed
    total: int = placed.total_amount
    assert (placed.status, total, placed.currency) == (
        OrderStatus.PENDING_PAYMENT, 2 * UNIT_PRICE, OrderCurrency.CNY)
    assert placed.payment.status == PaymentInfoStatus.PENDING and placed.paid_at is None

    read = get_order.sync(client=as_merchant, order_id=placed.id)
    assert isinstance(read, Order), read
    assert (read.buyer_id, read.listing_id, read.quantity) == (buyer.id, listing.id, 2)
    orders = list_orders.sync(client=as_buyer)
    assert isinstance(orders, list), orders
    assert [order.id for order in orders] == [placed.id]
    return Outcome(listing, read)
