"""Stripe webhooks: verified, each event processed once, in the transaction of its effect.

The event id is inserted into `stripe_events` with ON CONFLICT DO NOTHING before anything
else: a duplicate delivery (even a concurrent one, which waits on the primary key) inserts
nothing and changes nothing. The payload is only a hint: the PaymentIntent is re-read from
Stripe, and its amount must equal the order's before the order is paid.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import stripe
from flask import current_app
from sqlalchemy import select
from sqlalchemy.orm import Session

from app import audit, clock
from app.api import unstorable_text
from app.db import upsert_insert
from orders import money
from orders.errors import InvalidSignature
from orders.models import Order, OrderStatus, Payment, StripeEvent
from orders.payments import stripe_client

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Event:
    """What a delivery carries that we use: the event's id and type and its object."""

    id: str
    type: str
    object: dict[str, Any]


def receive(session: Session, payload: bytes, signature: str | None) -> dict[str, Any]:
    """Verify one delivery, record and apply its event; the acknowledgement for Stripe.

    A bad signature is refused (400). A signed body that holds no usable event is
    acknowledged and ignored: Stripe retries anything but a 2xx for days, and a body it
    signed will not mend by being sent again.
    """
    event = verified_event(payload, signature)
    if event is None:
        log.warning("signed stripe delivery of %d bytes holds no usable event: ignored",
                    len(payload))
        return {"received": True, "outcome": "ignored"}
    return {"received": True, "event_id": event.id, "outcome": handle_event(session, event)}


def verified_event(payload: bytes, signature: str | None) -> Event | None:
    """The event, if the Stripe-Signature header verifies against the raw body; None for a
    signed body that is no event we can store."""
    secret = current_app.config.get("STRIPE_WEBHOOK_SECRET")
    if not secret:
        raise InvalidSignature("No webhook secret is configured.")
    if not signature:
        raise InvalidSignature("The Stripe-Signature header is missing.")
    # Stripe signs UTF-8 text; a body that is not (replaced characters) cannot verify.
    text = payload.decode("utf-8", errors="replace")
    try:
        stripe.WebhookSignature.verify_header(text, signature, secret,
                                              stripe.Webhook.DEFAULT_TOLERANCE)
    except stripe.SignatureVerificationError:
        raise InvalidSignature() from None
    try:
        document = json.loads(text)
    except (ValueError, RecursionError):  # not JSON, too deep, or too long an integer
        return None
    if not isinstance(document, dict) or unstorable_text(document):
        return None
    event_id, kind, data = document.get("id"), document.get("type"), document.get("data")
    obj = data.get("object") if isinstance(data, dict) else None
    # Lengths of stripe_events.event_id and .type.
    if not (isinstance(event_id, str) and 0 < len(event_id) <= 255 and isinstance(kind, str)
            and len(kind) <= 100 and isinstance(obj, dict)):
        return None
    return Event(event_id, kind, obj)


def handle_event(session: Session, event: Event) -> str:
    """Record the event once and apply it; returns what happened (for the response and logs)."""
    inserted = session.scalar(
        upsert_insert(session, StripeEvent)
        .values(event_id=event.id, type=event.type, received_at=clock.now())
        .on_conflict_do_nothing(index_elements=["event_id"])
        .returning(StripeEvent.event_id))
    if inserted is None:
        log.info("stripe event %s delivered again: ignored", event.id)
        return "duplicate"
    handler = HANDLERS.get(event.type)
    if handler is None:
        return "ignored"
    obj = event.object
    if obj.get("object") != "payment_intent" or not isinstance(obj.get("id"), str):
        log.warning("stripe event %s (%s) carries no payment_intent: ignored", event.id,
                    event.type)
        return "ignored"
    return handler(session, obj)


def _order_for(session: Session, intent: dict[str, Any]) -> Order | None:
    """The order an intent pays: by its intent id, else by the order id in its metadata."""
    order = session.scalars(
        select(Order).where(Order.payment_intent_id == intent["id"])
        .with_for_update().execution_options(populate_existing=True)).first()
    if order is not None:
        return order
    metadata = intent.get("metadata")
    try:
        order_id = uuid.UUID(str(metadata.get("order_id") if isinstance(metadata, dict) else None))
    except ValueError:
        return None
    order = session.get(Order, order_id, with_for_update=True, populate_existing=True)
    if order is None or order.payment_provider != "stripe" or (
            order.payment_intent_id not in (None, intent["id"])):
        return None
    order.payment_intent_id = intent["id"]
    return order


def _payment_succeeded(session: Session, hint: dict[str, Any]) -> str:
    # Re-read: the payload may be stale or reordered; Stripe's current state decides.
    try:
        intent = stripe_client().v1.payment_intents.retrieve(hint["id"]).to_dict()
    except stripe.InvalidRequestError as error:
        if error.http_status != 404:
            raise
        log.warning("stripe event names payment %s, which Stripe does not know: ignored",
                    hint["id"])
        return "unknown_payment_intent"
    intent_id = intent["id"]
    order = _order_for(session, intent)
    if order is None:
        log.warning("stripe payment %s matches no order", intent_id)
        return "no_order"
    if intent.get("status") != "succeeded":
        log.warning("stripe payment %s is %s, not succeeded", intent_id, intent.get("status"))
        return "not_succeeded"
    # Stripe reports amount_received; localstripe leaves it empty (the amount, all captured).
    amount = intent.get("amount_received") or intent.get("amount")
    if amount != order.total_amount or str(intent.get("currency")).lower() != "cny":
        log.error("stripe payment %s of %s %s does not match order %s (%s cny): not paid",
                  intent_id, amount, intent.get("currency"), order.id, order.total_amount)
        return "amount_mismatch"
    if order.status is not OrderStatus.PENDING_PAYMENT:
        log.error("stripe payment %s arrived for order %s, which is %s: needs a refund",
                  intent_id, order.id, order.status.value)
        return "order_not_payable"
    order.pay(amount, clock.now())
    session.add(Payment(order_id=order.id, provider="stripe", amount=amount,
                        reference=intent_id))
    money.payment_received(session, order, amount)
    session.flush()
    audit.record(session, actor_id=None, action="order.paid", subject=order,
                 listing_id=order.listing_id,
                 details={"status": order.status.value, "provider": "stripe",
                          "reference": intent_id, "amount": amount})
    return "paid"


def _payment_failed(session: Session, hint: dict[str, Any]) -> str:
    order = _order_for(session, hint)
    if order is None or order.status is not OrderStatus.PENDING_PAYMENT:
        return "ignored"
    order.payment_failed()  # still payable until it expires
    session.flush()
    audit.record(session, actor_id=None, action="order.payment_failed", subject=order,
                 listing_id=order.listing_id,
                 details={"status": order.status.value, "provider": "stripe",
                          "reference": hint["id"]})
    return "payment_failed"


HANDLERS: dict[str, Callable[[Session, dict[str, Any]], str]] = {
    "payment_intent.succeeded": _payment_succeeded,
    "payment_intent.payment_failed": _payment_failed,
}
