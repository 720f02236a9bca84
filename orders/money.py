"""The orders domain's postings on the ledger: money received from buyers and paid back.

A payment moves the amount from the buyers' side into clearing, where it waits for
settlement to allocate it; a refund moves it out of clearing to the refunds account. One
ledger transaction per business event, keyed by our own ids, so a retried event posts once.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from app import ledger
from orders.models import Order, Refund

BUYER_FUNDS = ledger.AccountRef("buyer_funds")  # the world the money comes from
BUYER_CLEARING = ledger.AccountRef("buyer_clearing")  # received, not yet allocated
REFUNDS = ledger.AccountRef("refunds")  # paid back to buyers


def payment_received(session: Session, order: Order, amount: int) -> None:
    ledger.post_transaction(session, key=f"order:{order.id}:paid", kind="payment",
                            description=f"Payment of order {order.id}",
                            lines=[(BUYER_FUNDS, -amount), (BUYER_CLEARING, amount)])


def refund_paid(session: Session, refund: Refund) -> None:
    ledger.post_transaction(session, key=f"refund:{refund.id}", kind="refund",
                            description=f"Refund {refund.id} of order {refund.order_id}",
                            lines=[(BUYER_CLEARING, -refund.amount), (REFUNDS, refund.amount)])
