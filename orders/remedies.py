"""The buyer's money back when nothing is delivered.

A paid order that is not delivered ends in a full refund through the provider that took the
payment (a Stripe refund of its PaymentIntent, or a bank transfer recorded for the finance
team to pay back), in one of two ways: its buyer cancels it, with no finding against anyone,
or the scheduler refunds it once ORDER_DELIVERY_DAYS have passed since payment and records
`non_delivery` against the merchant. Either way the order ends `refunded` (the contract's
status for paid money returned in full; `cancelled` is an unpaid order's end, and counts
towards the buyer's abandoned orders), everything paid goes back as one balanced ledger
transaction (clearing → refunds), and its licenses go back on sale (orders.ending).

The order's row lock decides between a cancellation, the job and a delivery: the first to
lock it wins, the others find it no longer paid (409 invalid_transition; the job skips it).
An undelivered order is never settled (settlement takes completed orders only), so there are
no allocations to take back.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from app import clock
from app.parties.models import Actor
from credit import services as credit
from orders import refunds
from orders.ending import order_ended
from orders.models import Order, OrderStatus, Refund

# Due orders read per query by the non-delivery job (each then refunded in a transaction of
# its own).
REFUND_BATCH_SIZE = 100


def refund_key(order: Order) -> str:
    """The provider's idempotency key of an order's refund before delivery: derived from the
    order (one such refund per order, whoever asks), so a retry after a lost answer or a
    rolled-back transaction (the provider refunded, our commit failed) refunds once."""
    return f"refund:{order.id}:undelivered"


def refund_undelivered(session: Session, order: Order, *, actor: Actor,
                       reason: str) -> Refund:
    """Refund in full a paid order not delivered (its row locked); it ends `refunded`.

    409 invalid_transition unless it is paid and undelivered. The provider is called once
    every rule has passed and before the ledger's accounts and the listing's row are locked,
    so neither is held during the call.
    """
    amount = order.refund_undelivered(clock.now())
    paid_back = refunds.refund(session, order, amount, refund_key=refund_key(order),
                               actor=actor, reason=reason)
    order_ended(session, order, actor=actor)
    return paid_back


def refund_cutoff(at: datetime) -> datetime:
    """Orders paid at or before this time and still undelivered at `at` are refunded."""
    return at - timedelta(days=current_app.config["ORDER_DELIVERY_DAYS"])


def undelivered_orders_due(session: Session, *, at: datetime,
                           after: tuple[datetime, uuid.UUID] | None = None
                           ) -> list[tuple[datetime, uuid.UUID]]:
    """The next batch of paid orders still undelivered past the delivery period as
    (paid_at, id), oldest payment first, after `after` (the previous batch's last)."""
    stmt = select(Order.paid_at, Order.id).where(
        Order.status == OrderStatus.PAID, Order.paid_at <= refund_cutoff(at))
    if after is not None:
        paid_at, order_id = after
        stmt = stmt.where(or_(Order.paid_at > paid_at,
                              and_(Order.paid_at == paid_at, Order.id > order_id)))
    rows = session.execute(stmt.order_by(Order.paid_at, Order.id)
                           .limit(REFUND_BATCH_SIZE)).tuples().all()
    return [(paid_at, order_id) for paid_at, order_id in rows if paid_at is not None]


def refund_for_non_delivery(session: Session, *, order_id: uuid.UUID, at: datetime,
                            actor: Actor) -> bool:
    """Refund one order still undelivered past the delivery period and record `non_delivery`
    against its merchant; False when it is not due any more (delivered or refunded since,
    or locked by a request deciding it now: the next run looks again)."""
    order = session.scalars(select(Order).where(Order.id == order_id)
                            .with_for_update(skip_locked=True)
                            .execution_options(populate_existing=True)).first()
    if order is None or order.status is not OrderStatus.PAID or order.paid_at is None \
            or order.paid_at > refund_cutoff(at):
        return False
    refund_undelivered(session, order, actor=actor, reason="non_delivery")
    days = current_app.config["ORDER_DELIVERY_DAYS"]
    credit.record_system_event(
        session, party_id=order.merchant_id, kind="non_delivery",
        description=f"Order {order.id} was not delivered within {days} days of payment and "
                    "was refunded in full.",
        evidence_ref=f"order:{order.id}")
    return True
