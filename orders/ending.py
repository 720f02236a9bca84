"""Where an order's life ends: every ending passes through `order_ended`.

An order ends cancelled or expired before payment, refunded before delivery (cancelled by its
buyer once paid, or refunded by the scheduler for non-delivery: orders.remedies), or refunded
in full after a dispute. Whatever the order granted ends with it: licenses never delivered go
back to the listing's stock; licenses delivered stay taken (the data went out), and what the
buyer may still do with them ends here too: the order's licence is revoked and its tokens
stop (a renewal order took no stock and leaves the licence it would have extended as it is).
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from app.parties.models import Actor
from licenses import services as licenses
from listings import services as listings
from orders.models import Order, OrderStatus

_WHY = {OrderStatus.CANCELLED: "order cancelled", OrderStatus.EXPIRED: "order expired unpaid"}


def order_ended(session: Session, order: Order, *, actor: Actor) -> None:
    """What follows from the end of an order (its status final, its row locked, its money
    moved): `actor` ended it (SYSTEM for the scheduler).

    Called after the order's own changes and any call to a payment provider, so that the
    listing's row, locked by giving licenses back, is held for as little of the transaction
    as possible (every buyer of the product queues on it); credit findings come after it
    (the credit chain's lock is taken after a listing's row everywhere).
    """
    assert order.closed_at is not None, f"order {order.id} has not ended"
    if order.delivered_at is None and order.renews_license_id is None:
        listings.release_licenses(session, listing_id=order.listing_id, quantity=order.quantity)
    reason = _WHY.get(order.status) or (
        "order refunded in full" if order.delivered_at else "order refunded before delivery")
    licenses.order_ended(session, order_id=order.id, reason=reason, actor=actor,
                         at=order.closed_at)
