"""Payment providers behind one interface.

`offline` (bank transfer) is the default: the buyer transfers, an operator confirms the
transfer with its bank reference, and refunds are recorded for the finance team to pay back.
`stripe` (when STRIPE_SECRET_KEY is set): a PaymentIntent per order, paid by the buyer's client
with its client secret and confirmed to us by the `payment_intent.succeeded` webhook
(orders/webhooks.py). Every call passes an idempotency key derived from our own ids.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import stripe
from flask import current_app

from orders.errors import PaymentProviderError
from orders.models import Order


@dataclass(frozen=True)
class PaymentStart:
    """What the buyer needs to pay: the provider, and a client secret where one exists."""

    provider: str
    status: str
    client_secret: str | None = None
    instructions: str | None = None


class PaymentProvider(Protocol):
    name: str

    def start(self, order: Order) -> PaymentStart:
        """Open the payment of a new order."""
        ...

    def resume(self, order: Order) -> PaymentStart:
        """What the buyer needs to pay an order placed earlier (an auto-order, a retry)."""
        ...

    def refund(self, order: Order, amount: int, refund_key: str) -> str:
        """Return `amount` to the buyer; returns the provider's reference."""
        ...


class OfflineProvider:
    """Bank transfer: confirmed by an operator, refunds recorded for manual payment."""

    name = "offline"

    def start(self, order: Order) -> PaymentStart:
        return PaymentStart(
            provider=self.name, status="pending",
            instructions=f"Transfer {order.total_amount} fen ({order.currency}) quoting "
                         f"order {order.id}; an operator confirms receipt.")

    def resume(self, order: Order) -> PaymentStart:
        return self.start(order)

    def refund(self, order: Order, amount: int, refund_key: str) -> str:
        return f"offline-refund:{refund_key}"


def stripe_client() -> stripe.StripeClient:
    """A Stripe client built from the application's configuration."""
    config = current_app.config
    if not config.get("STRIPE_SECRET_KEY"):
        raise RuntimeError("PAYMENT_PROVIDER is stripe but STRIPE_SECRET_KEY is not set")
    base = config.get("STRIPE_API_BASE")
    return stripe.StripeClient(config["STRIPE_SECRET_KEY"],
                               base_addresses={"api": base} if base else {},
                               max_network_retries=config["STRIPE_MAX_NETWORK_RETRIES"])


class StripeProvider:
    """Stripe PaymentIntents: the order's id and buyer travel in the intent's metadata."""

    name = "stripe"

    def start(self, order: Order) -> PaymentStart:
        # Only fields localstripe accepts too (no description, transfer_group, automatic
        # payment methods): our ids go in the metadata.
        intent = stripe_client().v1.payment_intents.create(
            params={"amount": order.total_amount, "currency": "cny",
                    "metadata": {"order_id": str(order.id), "buyer_id": str(order.buyer_id)}},
            options={"idempotency_key": f"pi:{order.id}"})
        order.payment_intent_id = intent.id
        return PaymentStart(provider=self.name, status="pending",
                            client_secret=intent.client_secret)

    def resume(self, order: Order) -> PaymentStart:
        if not order.payment_intent_id:
            raise RuntimeError(f"order {order.id} has no PaymentIntent")
        intent = stripe_client().v1.payment_intents.retrieve(order.payment_intent_id)
        return PaymentStart(provider=self.name, status=order.payment_status.value,
                            client_secret=intent.client_secret)

    def refund(self, order: Order, amount: int, refund_key: str) -> str:
        if not order.payment_intent_id:
            raise RuntimeError(f"order {order.id} has no PaymentIntent to refund")
        try:
            refund = stripe_client().v1.refunds.create(
                params={"payment_intent": order.payment_intent_id, "amount": amount},
                options={"idempotency_key": refund_key})
        except stripe.StripeError as error:
            # Nothing is recorded (the transaction rolls back); a retry sends the same key,
            # so a refund Stripe made without our hearing of it is not made twice.
            raise PaymentProviderError(
                f"Stripe did not refund order {order.id} "
                f"({error.user_message or type(error).__name__}); nothing was recorded, "
                "retry later.") from error
        return refund.id


PROVIDERS: dict[str, PaymentProvider] = {"offline": OfflineProvider(),
                                         "stripe": StripeProvider()}


def provider_named(name: str) -> PaymentProvider:
    return PROVIDERS[name]
