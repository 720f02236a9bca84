"""A refund of an order: paid back through the provider that took the money, posted on the
ledger and audited in the listing's trace. Disputes and the remedies for non-delivery both
refund this way; each decides the amount and the provider's idempotency key."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.orm import Session

from app import audit
from app.parties.models import Actor
from orders import money
from orders.models import Order, Refund
from orders.payments import provider_named


def refund(session: Session, order: Order, amount: int, *, refund_key: str, actor: Actor,
           dispute_id: uuid.UUID | None = None, **details: Any) -> Refund:
    """Pay `amount` of the order back (its row locked, its status already moved); the
    provider is asked under `refund_key`, so a retry after a rolled-back commit asks for the
    same refund instead of a second one."""
    refund = Refund(order_id=order.id, dispute_id=dispute_id, provider=order.payment_provider,
                    amount=amount, reference="pending")
    session.add(refund)
    session.flush()
    refund.reference = provider_named(order.payment_provider).refund(
        order, amount, refund_key=refund_key)
    money.refund_paid(session, refund)
    audit.record(session, actor_id=actor.id, action="order.refunded", subject=order,
                 listing_id=order.listing_id,
                 details={"status": order.status.value, "refund_id": str(refund.id),
                          "amount": amount, "provider": refund.provider,
                          "reference": refund.reference, **details})
    return refund
