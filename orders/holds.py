"""What one buyer may hold unpaid, and what abandoning unpaid orders costs it.

An unpaid order holds its licenses until it is paid, cancelled or expires, and cancelling
costs nothing: cancelling and ordering again could keep a competitor's product unsellable.
So a buyer holds at most UNPAID_LICENSES_PER_BUYER_PER_LISTING licenses of a limited listing
unpaid (409 `unpaid_limit_reached` beyond, nothing reserved), and the
ABANDONED_ORDERS_FINDING_COUNT-th unpaid order it cancels or lets expire within one window of
ABANDONED_ORDERS_WINDOW_HOURS (counted from the epoch, in UTC) is a credit finding,
`order_abandonment`: one per window, for the repetition. Each expiry stays its own
`payment_default` finding, as before; no order makes a second finding of its own.

Both rules count the buyer's own orders, one transaction at a time. The cap is checked once
the order has taken its licenses: that conditional UPDATE holds the listing's row until commit,
so two concurrent orders of one listing are counted one after the other (the second sees the
first, committed) without another lock. Abandonments are counted under a lock on the buyer's
party row (FOR NO KEY UPDATE, which leaves rows that merely refer to the party free to be
written), so a window's count reaches the threshold exactly once.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from flask import current_app
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from app.parties.models import Party
from credit import services as credit
from listings.models import Listing
from orders.errors import UnpaidLimitReached
from orders.models import ABANDONED_ORDER, UNPAID_ORDER, Order

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def lock_buyers(session: Session, buyer_ids: Iterable[uuid.UUID]) -> None:
    """Lock the buyers' party rows until commit, in id order (so that a job locking several
    and a request locking one never wait on each other in a circle)."""
    ids = sorted(set(buyer_ids))
    if ids:
        session.execute(select(Party.id).where(Party.id.in_(ids)).order_by(Party.id)
                        .with_for_update(key_share=True))


def ensure_within_cap(session: Session, *, buyer_id: uuid.UUID, listing: Listing,
                      quantity: int, counted: bool) -> None:
    """409 if `quantity` more licenses would put the buyer's unpaid ones of a limited listing
    over the cap. `counted`: the order asking is flushed, so it is among those counted."""
    if listing.licenses_available is None:
        return  # unlimited: an unpaid order keeps nothing from anyone
    limit = current_app.config["UNPAID_LICENSES_PER_BUYER_PER_LISTING"]
    # The predicate written out (not bound), so PostgreSQL always uses the partial index.
    held: int = session.execute(select(func.coalesce(func.sum(Order.quantity), 0)).where(
        Order.buyer_id == buyer_id, Order.listing_id == listing.id, text(UNPAID_ORDER))
    ).scalar_one()
    held -= quantity if counted else 0
    if held + quantity > limit:
        raise UnpaidLimitReached(
            f"You hold {held} unpaid licenses of this listing and at most {limit} may be "
            "held unpaid: pay or cancel those orders first.", limit=limit, held=held)


def window_of(at: datetime) -> tuple[datetime, datetime]:
    """The abandonment window holding `at`: [start, end)."""
    size = timedelta(hours=current_app.config["ABANDONED_ORDERS_WINDOW_HOURS"])
    start = _EPOCH + size * ((at - _EPOCH) // size)
    return start, start + size


def count_abandonment(session: Session, order: Order) -> None:
    """Count an order just cancelled or expired (flushed, its buyer locked) in its window;
    the threshold-th of a window is that window's finding against the buyer."""
    assert order.closed_at is not None
    start, end = window_of(order.closed_at)
    abandoned = session.scalar(select(func.count()).select_from(Order).where(
        Order.buyer_id == order.buyer_id, text(ABANDONED_ORDER),
        Order.closed_at >= start, Order.closed_at < end))
    threshold = current_app.config["ABANDONED_ORDERS_FINDING_COUNT"]
    if abandoned != threshold:
        return  # not yet, or the window's finding was made at the threshold-th
    credit.record_system_event(
        session, party_id=order.buyer_id, kind="order_abandonment",
        description=f"{threshold} unpaid orders cancelled or left to expire between "
                    f"{start:%Y-%m-%d %H:%M} and {end:%Y-%m-%d %H:%M} UTC.",
        evidence_ref=f"party:{order.buyer_id}:abandoned_orders:{start.isoformat()}")
