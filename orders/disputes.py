"""Disputes and refunds: a buyer disputes a delivery, an operator resolves it."""

from __future__ import annotations

import uuid

from sqlalchemy.orm import Session

from app import audit, clock
from app.errors import ValidationFailed
from app.parties.models import Actor
from credit import services as credit
from licenses import services as licenses
from orders import refunds
from orders.ending import order_ended
from orders.errors import DisputeNotFound, RefundExceedsPayment
from orders.models import Dispute, DisputeOutcome, Order, OrderStatus
from orders.services import ensure_party_of, get_order


def open_dispute(session: Session, *, order_id: uuid.UUID, actor: Actor,
                 reason: str) -> Dispute:
    """The buyer disputes a delivered order."""
    order = get_order(session, order_id=order_id, viewer=actor, for_update=True)
    ensure_party_of(order, actor, "buyer_id")
    order.dispute()
    dispute = Dispute(order_id=order.id, buyer_id=actor.id, reason=reason)
    session.add(dispute)
    session.flush()
    audit.record(session, actor_id=actor.id, action="order.disputed", subject=order,
                 listing_id=order.listing_id,
                 details={"status": order.status.value, "dispute_id": str(dispute.id),
                          "reason": reason})
    return dispute


def resolve_dispute(session: Session, *, dispute_id: uuid.UUID, actor: Actor,
                    outcome: DisputeOutcome, refund_amount: int | None,
                    note: str | None) -> Dispute:
    """Refund in full, in part, or reject. Refunds never exceed what was paid: the order row
    is locked, so two resolutions cannot both see the same refundable amount."""
    dispute = session.get(Dispute, dispute_id)
    if dispute is None:
        raise DisputeNotFound()
    order = session.get(Order, dispute.order_id, with_for_update=True, populate_existing=True)
    assert order is not None
    amount = _refund_amount(outcome, refund_amount, order.refundable_amount)
    now = clock.now()
    order.settle_dispute(outcome, amount, now)  # 409 unless the order is disputed
    if amount:
        # Keyed by the dispute, which is resolved once.
        refunds.refund(session, order, amount, refund_key=f"refund:dispute:{dispute.id}",
                       actor=actor, dispute_id=dispute.id)
    dispute.outcome, dispute.refund_amount, dispute.note = outcome, amount, note
    dispute.resolved_by, dispute.resolved_at = actor.id, now
    session.flush()
    audit.record(session, actor_id=actor.id, action="order.dispute_resolved", subject=order,
                 listing_id=order.listing_id,
                 details={"status": order.status.value, "dispute_id": str(dispute.id),
                          "outcome": outcome.value, "refund_amount": amount})
    if order.status is OrderStatus.REFUNDED:
        order_ended(session, order, actor=actor)
    else:  # the order completed: a renewal takes effect
        licenses.order_completed(session, order_id=order.id, actor=actor, at=now)
    if outcome is not DisputeOutcome.REJECTED:
        credit.record_system_event(session, party_id=order.merchant_id, kind="lost_dispute",
                                   description=f"Dispute over order {order.id} resolved "
                                               f"{outcome.value}.",
                                   evidence_ref=f"dispute:{dispute.id}")
    return dispute


def _refund_amount(outcome: DisputeOutcome, requested: int | None, remaining: int) -> int:
    if outcome is DisputeOutcome.REJECTED:
        if requested:
            raise ValidationFailed(errors={"refund_amount": ["Not with a rejected dispute."]})
        return 0
    if outcome is DisputeOutcome.REFUND_FULL:
        if requested not in (None, remaining):
            raise RefundExceedsPayment(f"A full refund is {remaining} fen, not {requested}.",
                                       refundable_amount=remaining)
        return remaining
    if not requested:
        raise ValidationFailed(errors={"refund_amount": ["Required for a partial refund."]})
    if requested >= remaining:
        raise RefundExceedsPayment(
            f"A partial refund must be below the {remaining} fen still refundable.",
            refundable_amount=remaining)
    return requested
