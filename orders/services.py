"""Use cases of orders: place, pay, cancel, deliver, accept, expire (disputes: orders.disputes;
refunds of undelivered orders: orders.remedies; what every ending brings: orders.ending).

Every action checks the credit domain's restrictions, and trading records credit events
through `credit.services` (late delivery, lost dispute, payment default, on-time trade).
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from flask import current_app
from sqlalchemy import Select, or_, select
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from app import audit, clock
from app.db import run_last
from app.errors import Forbidden, ValidationFailed
from app.parties.models import OVERSEERS, Actor, Party, PartyKind
from credit import services as credit
from licenses import services as licenses
from licenses.models import License
from listings import artifacts, certification, pricing
from listings import services as listings
from listings.errors import ChecksumMismatch, ListingNotFound
from listings.models import MIN_UNIT_PRICE, Listing, ListingStatus, QualityReport
from orders import holds, money, remedies
from orders.ending import order_ended
from orders.errors import (
    InvalidBeneficiaries,
    ListingNotAvailable,
    NoCompletedOrder,
    OrderNotFound,
    OutOfStock,
    PurposeOutOfScope,
)
from orders.models import WITH_LICENSE, Order, OrderStatus, Payment
from orders.payments import provider_named


def _record(session: Session, actor: Actor, action: str, order: Order, **details: Any) -> None:
    audit.record(session, actor_id=actor.id, action=action, subject=order,
                 listing_id=order.listing_id, details={"status": order.status.value, **details})


def _check_beneficiaries(session: Session, beneficiaries: list[uuid.UUID]) -> None:
    if not beneficiaries:
        return
    found = {party.id: party for party in session.scalars(
        select(Party).where(Party.id.in_(beneficiaries)))}
    wrong = [str(b) for b in beneficiaries
             if b not in found or found[b].kind is not PartyKind.PUBLIC_AGENCY]
    if wrong:
        raise InvalidBeneficiaries(
            f"Not public agencies: {', '.join(wrong)}.",
            errors={"beneficiaries": ["Each beneficiary must be a public_agency party."]})


def _frozen_license(listing: Listing, order_purpose: str,
                    beneficiaries: list[uuid.UUID], at: datetime) -> dict[str, Any]:
    """The usage scope as it stands now: later edits of the listing do not change it."""
    scope = listing.usage_scope
    return {
        "listing_id": str(listing.id), "listing_version": listing.version,
        "title": listing.title, "purpose": order_purpose, "purposes": list(scope.purposes),
        "term_days": scope.term_days,
        "valid_until": (at + timedelta(days=scope.term_days)).isoformat()
        if scope.term_days else None,
        "territory": scope.territory.value, "resale": scope.resale,
        "derivatives": scope.derivatives, "delivery_mode": listing.delivery_mode.value,
        "price_model": listing.price_model.value,
        "licensees": [str(b) for b in beneficiaries],
    }


def _frozen_plan(listing: Listing) -> dict[str, Any]:
    """Who shares the proceeds, as the listing says now, and the platform's fee now."""
    return {"listing_version": listing.version,
            "platform_fee_bps": current_app.config["PLATFORM_FEE_BPS"],
            "shares": [dict(share) for share in listing.revenue_shares]}


def place_order(session: Session, *, buyer: Party, listing_id: uuid.UUID, quantity: int,
                purpose: str, beneficiaries: list[uuid.UUID],
                renewal_of: License | None = None) -> Order:
    """Buy licenses of a listed product at its current price, under its current scope; the
    order's licence is issued `pending`. A renewal (`renewal_of`, locked by
    `licenses.ensure_renewable`) takes no stock: it extends that licence once completed."""
    listing = session.get(Listing, listing_id)
    # Both sides' trade restrictions in one query; the buyer's is refused first, whatever
    # the listing.
    restricted = credit.trade_restrictions(
        session, {buyer.id} if listing is None else {buyer.id, listing.merchant_id})
    if buyer.id in restricted:
        raise restricted[buyer.id]
    if listing is None or (listing.listed_at is None and listing.merchant_id != buyer.id
                           and not buyer.has_role(*OVERSEERS)):
        # A product never on the market is not revealed to exist (its detail answers 404
        # too); one taken off it (suspended, delisted) is known: 409 listing_not_available.
        raise ListingNotFound()
    if listing.status is not ListingStatus.LISTED:
        raise ListingNotAvailable(f"The listing is {listing.status.value}, not listed.")
    if listing.merchant_id == buyer.id:
        raise ListingNotAvailable("A merchant cannot buy its own listing.")
    if listing.unit_price < MIN_UNIT_PRICE:
        # Listed at 0 before prices had a floor: there is no payment to take for it.
        raise ListingNotAvailable(f"The listing is priced at {listing.unit_price} fen, below "
                                  f"the lowest price of {MIN_UNIT_PRICE} fen.")
    if listing.merchant_id in restricted:
        raise ListingNotAvailable("The merchant is restricted from trading.")
    if purpose not in listing.usage_scope.purposes:
        raise PurposeOutOfScope(
            f"{purpose!r} is not among the listing's purposes: "
            f"{', '.join(listing.usage_scope.purposes)}.",
            errors={"purpose": ["Outside the listing's usage scope."]})
    now = clock.now()
    # A binding band set since the listing was listed excludes its price now.
    pricing.ensure_in_band(session, listing, now)
    beneficiaries = list(dict.fromkeys(beneficiaries))
    _check_beneficiaries(session, beneficiaries)
    takes_stock = renewal_of is None
    if takes_stock and listing.licenses_available is not None \
            and listing.licenses_available < quantity:
        # Seen already: refuse before a payment is opened (the UPDATE at commit is the guard).
        raise OutOfStock(f"Fewer than {quantity} licenses are left.")
    if takes_stock:
        # Likewise (the guard is the same check under the listing's lock, at the end).
        holds.ensure_within_cap(session, buyer_id=buyer.id, listing=listing,
                                quantity=quantity, counted=False)
    provider = provider_named(current_app.config["PAYMENT_PROVIDER"])
    order = Order(
        buyer_id=buyer.id, merchant_id=listing.merchant_id, listing_id=listing.id,
        category=listing.category, quantity=quantity, purpose=purpose,
        beneficiaries=[str(b) for b in beneficiaries],
        unit_price=listing.unit_price, total_amount=listing.unit_price * quantity,
        currency=listing.currency, license=_frozen_license(listing, purpose, beneficiaries, now),
        revenue_plan=_frozen_plan(listing),
        payment_provider=provider.name,
        expires_at=now + timedelta(minutes=current_app.config["ORDER_PAYMENT_TTL_MINUTES"]))
    session.add(order)
    session.flush()
    order.payment_start = provider.start(order)
    _record(session, buyer, "order.placed", order, listing_id=str(listing.id),
            quantity=quantity, total_amount=order.total_amount)
    if renewal_of is not None:
        licenses.open_renewal(session, license=renewal_of, order_id=order.id,
                              scope=order.license, actor=buyer)
        _knows_license(order, renewal_of.id, renews=True)
        return order
    license = licenses.issue_for_order(
        session, order_id=order.id, listing_id=listing.id, buyer_id=buyer.id,
        merchant_id=listing.merchant_id, beneficiaries=order.beneficiaries, purpose=purpose,
        quantity=quantity, scope=order.license, actor=buyer)
    _knows_license(order, license.id, renews=False)

    def take(session: Session) -> None:
        if not listings.take_licenses(session, listing=listing, quantity=quantity):
            raise OutOfStock(f"Fewer than {quantity} licenses are left.")
        # Under the listing's lock: the buyer's unpaid licenses of it are counted one order
        # at a time.
        holds.ensure_within_cap(session, buyer_id=buyer.id, listing=listing,
                                quantity=quantity, counted=True)

    # Last of all, just before COMMIT: the UPDATE locks the listing's row until the commit
    # ends, and every buyer of the product queues on that lock, so only the count runs
    # under it.
    run_last(session, take)
    return order


def _knows_license(order: Order, license_id: uuid.UUID, *, renews: bool) -> None:
    # The answer names the licence without reading it back (one statement less per order).
    set_committed_value(order, "license_id", license_id)
    set_committed_value(order, "renews_license_id", license_id if renews else None)


def can_see(order: Order, viewer: Actor) -> bool:
    return viewer.id in (order.buyer_id, order.merchant_id) or viewer.has_role(*OVERSEERS)


def get_order(session: Session, *, order_id: uuid.UUID, viewer: Actor,
              for_update: bool = False) -> Order:
    """An order its buyer, its merchant or an overseer may see (everyone else: 404)."""
    order = session.get(Order, order_id, with_for_update=for_update,
                        populate_existing=for_update, options=[WITH_LICENSE])
    if order is None or not can_see(order, viewer):
        raise OrderNotFound()
    return order


def orders_query(*, viewer: Actor, status: OrderStatus | None = None) -> Select:
    stmt = select(Order).options(WITH_LICENSE)
    if not viewer.has_role(*OVERSEERS):
        stmt = stmt.where(or_(Order.buyer_id == viewer.id, Order.merchant_id == viewer.id))
    if status is not None:
        stmt = stmt.where(Order.status == status)
    return stmt.order_by(Order.created_at.desc(), Order.id.desc())


def ensure_party_of(order: Order, actor: Actor, party_field: str) -> None:
    """403 unless the actor is the order's buyer (`buyer_id`) or merchant (`merchant_id`)."""
    if getattr(order, party_field) != actor.id:
        role = "buyer" if party_field == "buyer_id" else "merchant"
        raise Forbidden(f"Only the order's {role} can do this.")


def payment_details(session: Session, *, order_id: uuid.UUID, actor: Actor) -> Order:
    """How the buyer pays an unpaid order (a Stripe client secret, or transfer instructions):
    for orders placed without the buyer at hand, such as auto-orders."""
    order = get_order(session, order_id=order_id, viewer=actor)
    ensure_party_of(order, actor, "buyer_id")
    order.require_status(OrderStatus.PENDING_PAYMENT, doing="paid")
    order.payment_start = provider_named(order.payment_provider).resume(order)
    return order


def confirm_offline_payment(session: Session, *, order_id: uuid.UUID, actor: Actor,
                            reference: str) -> Order:
    """An operator confirms a received bank transfer: the order is paid."""
    order = get_order(session, order_id=order_id, viewer=actor, for_update=True)
    if order.payment_provider != "offline":
        raise ValidationFailed("This order is paid through Stripe, not by bank transfer.")
    now = clock.now()
    order.pay(order.total_amount, now)
    session.add(Payment(order_id=order.id, provider="offline", amount=order.total_amount,
                        reference=reference, recorded_by=actor.id))
    money.payment_received(session, order, order.total_amount)
    session.flush()
    _record(session, actor, "order.paid", order, provider="offline", reference=reference,
            amount=order.total_amount)
    return order


def cancel_order(session: Session, *, order_id: uuid.UUID, actor: Actor) -> Order:
    """The buyer cancels: unpaid, for nothing; paid and not yet delivered, with a full refund
    through its payment provider (orders.remedies). Either way the licenses go back."""
    order = get_order(session, order_id=order_id, viewer=actor, for_update=True)
    ensure_party_of(order, actor, "buyer_id")
    if order.status is OrderStatus.PAID:
        remedies.refund_undelivered(session, order, actor=actor, reason="cancelled_by_buyer")
        return order
    holds.lock_buyers(session, [order.buyer_id])
    order.cancel(clock.now())
    session.flush()
    _record(session, actor, "order.cancelled", order)
    order_ended(session, order, actor=actor)
    holds.count_abandonment(session, order)
    return order


def deliver_order(session: Session, *, order_id: uuid.UUID, actor: Actor,
                  artifact_id: uuid.UUID | None = None, delivery_ref: str | None = None,
                  checksum: str | None = None) -> Order:
    """The merchant delivers: an artifact of the listing the exchange holds (verified: its
    SHA-256 is the checksum, and a checksum stated too must equal it, else 422
    `checksum_mismatch`), or a file reference, API credential or sandbox grant id with the
    merchant's own checksum (unverified)."""
    order = get_order(session, order_id=order_id, viewer=actor, for_update=True)
    ensure_party_of(order, actor, "merchant_id")
    order.require_status(OrderStatus.PAID, doing="delivered")
    if artifact_id is not None:
        artifact = artifacts.artifact_for_delivery(session, listing_id=order.listing_id,
                                                   artifact_id=artifact_id)
        if checksum is not None and not artifact.matches(checksum):
            raise ChecksumMismatch(
                f"The checksum is not the artifact's SHA-256 ({artifact.checksum}).",
                errors={"checksum": ["Not the artifact's SHA-256."]},
                expected=artifact.checksum)
        delivery_ref, checksum = f"artifact:{artifact.id}", artifact.checksum
    assert delivery_ref is not None and checksum is not None  # DeliverySchema: one form
    # No restriction check: a restricted merchant must still fulfil orders already paid.
    now = clock.now()
    order.deliver(delivery_ref, checksum, now, artifact_id=artifact_id)
    session.flush()
    _record(session, actor, "order.delivered", order, delivery_ref=delivery_ref,
            checksum=checksum, artifact_id=str(artifact_id) if artifact_id else None,
            verified=order.verified_delivery)
    licenses.activate_for_order(session, order_id=order.id, at=now, artifact_id=artifact_id,
                                actor=actor)
    if _late(order):
        credit.record_system_event(session, party_id=order.merchant_id, kind="late_delivery",
                                   description=f"Order {order.id} delivered late.",
                                   evidence_ref=f"order:{order.id}")
    return order


def _late(order: Order) -> bool:
    allowed = timedelta(days=current_app.config["ORDER_LATE_DELIVERY_DAYS"])
    return bool(order.paid_at and order.delivered_at
                and order.delivered_at - order.paid_at > allowed)


def complete(session: Session, order: Order, actor: Actor, *, automatic: bool) -> None:
    """Completion, by the buyer or the scheduler; an on-time trade earns both sides credit."""
    order.accept(clock.now())
    session.flush()
    _record(session, actor, "order.completed", order, automatic=automatic)
    licenses.order_completed(session, order_id=order.id, actor=actor, at=order.completed_at)
    if not _late(order):
        # Two parties' records in one transaction: their profiles are taken together, in
        # the one order every writer follows.
        credit.lock_profiles(session, (order.merchant_id, order.buyer_id))
        for party_id in (order.merchant_id, order.buyer_id):
            credit.record_system_event(session, party_id=party_id, kind="on_time_trade",
                                       description=f"Order {order.id} completed on time.",
                                       evidence_ref=f"order:{order.id}")


def accept_order(session: Session, *, order_id: uuid.UUID, actor: Actor) -> Order:
    """The buyer accepts the delivery: the order completes."""
    order = get_order(session, order_id=order_id, viewer=actor, for_update=True)
    ensure_party_of(order, actor, "buyer_id")
    complete(session, order, actor, automatic=False)
    return order


def expire_unpaid_orders(session: Session, *, at: datetime, actor: Actor) -> int:
    """Unpaid orders past their payment deadline expire and release their licenses; the
    buyer's default is a (minor) credit finding, and counts as an abandonment. Running twice
    changes nothing more."""
    due = list(session.scalars(select(Order).where(
        Order.status == OrderStatus.PENDING_PAYMENT, Order.expires_at <= at)
        .options(WITH_LICENSE).with_for_update(skip_locked=True)))
    # Every buyer first, before any listing's row: a cancellation holds its buyer, then the
    # listing's row, and this job must not hold one listing's row while it waits for a buyer.
    holds.lock_buyers(session, (order.buyer_id for order in due))
    credit.lock_profiles(session, (order.buyer_id for order in due))  # each one's default
    for order in due:
        order.expire(at)
        session.flush()
        _record(session, actor, "order.expired", order)
        order_ended(session, order, actor=actor)
        credit.record_system_event(session, party_id=order.buyer_id, kind="payment_default",
                                   description=f"Order {order.id} left unpaid until expiry.",
                                   evidence_ref=f"order:{order.id}")
        holds.count_abandonment(session, order)
    return len(due)


def auto_accept_delivered_orders(session: Session, *, at: datetime, actor: Actor) -> int:
    """Delivered orders the buyer neither accepted nor disputed in time complete by themselves."""
    cutoff = at - timedelta(days=current_app.config["ORDER_AUTO_ACCEPT_DAYS"])
    due = list(session.scalars(select(Order).where(
        Order.status == OrderStatus.DELIVERED, Order.delivered_at <= cutoff)
        .with_for_update(skip_locked=True)))
    # Every party an on-time completion credits, before the first is credited.
    credit.lock_profiles(session, (party_id for order in due if not _late(order)
                                   for party_id in (order.merchant_id, order.buyer_id)))
    for order in due:
        complete(session, order, actor, automatic=True)
    return len(due)


def report_quality(session: Session, *, listing_id: uuid.UUID, buyer: Party, score: int,
                   issue: str | None) -> QualityReport:
    """Quality feedback from a buyer who completed an order of the listing."""
    listing = session.get(Listing, listing_id)
    # Only listed products take reports; any other is not revealed to exist (a draft's id
    # must not answer 403 no_completed_order where every other route answers 404).
    if listing is None or listing.status is not ListingStatus.LISTED:
        raise ListingNotFound()
    completed = session.scalar(select(Order.id).where(
        Order.buyer_id == buyer.id, Order.listing_id == listing_id,
        Order.status == OrderStatus.COMPLETED).limit(1))
    if completed is None:
        raise NoCompletedOrder("Only a buyer with a completed order of this listing may "
                               "report on its quality.")
    return certification.report_quality(session, listing_id=listing_id, buyer=buyer,
                                        score=score, issue=issue)


