"""Payment providers behind one interface.

`offline` (bank transfer) is the default: the buyer transfers, an operator confirms the
transfer with its bank reference, and refunds are recorded for the finance team to pay back.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

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

    def refund(self, order: Order, amount: int, refund_key: str) -> str:
        return f"offline-refund:{refund_key}"


PROVIDERS: dict[str, PaymentProvider] = {"offline": OfflineProvider()}


def provider_named(name: str) -> PaymentProvider:
    return PROVIDERS[name]
