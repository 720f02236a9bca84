"""Orders with their frozen license, payments, refunds and disputes."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    JSON,
    Boolean,
    ColumnElement,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    and_,
    false,
    func,
    or_,
    select,
    text,
)
from sqlalchemy.orm import Mapped, column_property, mapped_column, undefer_group

from app.db import Base, Money, created_at, str_enum, uuid_pk
from app.errors import InvalidTransition
from licenses.models import License, LicenseRenewal
from listings.models import Classification, Territory

if TYPE_CHECKING:
    from orders.payments import PaymentStart


class OrderStatus(enum.StrEnum):
    PENDING_PAYMENT = "pending_payment"
    PAID = "paid"
    DELIVERED = "delivered"
    COMPLETED = "completed"
    DISPUTED = "disputed"
    REFUNDED = "refunded"
    CANCELLED = "cancelled"
    EXPIRED = "expired"


class PaymentStatus(enum.StrEnum):
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class DisputeOutcome(enum.StrEnum):
    REFUND_FULL = "refund_full"
    REFUND_PARTIAL = "refund_partial"
    REJECTED = "rejected"


class DemandStatus(enum.StrEnum):
    OPEN = "open"
    MATCHED = "matched"
    EXPIRED = "expired"
    CANCELLED = "cancelled"


# Holding licenses: an order that may still be paid or is paid keeps its licenses taken;
# so does one refunded after delivery (the data went out). One refunded before delivery
# gave them back: `holding_licenses()` selects the orders holding theirs.
RELEASES_LICENSES = {OrderStatus.CANCELLED, OrderStatus.EXPIRED}


# The predicates of the partial indexes of orders below. Queries repeat them as written (a
# bound parameter instead would keep PostgreSQL from using the index in a generic plan).
UNPAID_ORDER = "status = 'pending_payment'"
ABANDONED_ORDER = "status IN ('cancelled', 'expired')"


def _partial_index(name: str, columns: tuple[str, ...], where: str) -> Index:
    return Index(name, *columns, postgresql_where=text(where), sqlite_where=text(where))


class Order(Base):
    """A purchase of licenses of one listing, priced and licensed as the listing was then."""

    __tablename__ = "orders"

    id: Mapped[uuid_pk]
    buyer_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("parties.id"))
    merchant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("parties.id"))
    listing_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("listings.id"), index=True)
    # The listing's category at purchase: recent deals per category are read by index.
    category: Mapped[str] = mapped_column(String(64))
    quantity: Mapped[int] = mapped_column(Integer)
    purpose: Mapped[str] = mapped_column(String(64))
    beneficiaries: Mapped[list[str]] = mapped_column(JSON)
    unit_price: Mapped[int] = mapped_column(Money)
    total_amount: Mapped[int] = mapped_column(Money)
    currency: Mapped[str] = mapped_column(String(3))
    license: Mapped[dict[str, Any]] = mapped_column(JSON)
    # The listing's revenue-share plan and the platform fee at purchase (settlement splits by it).
    revenue_plan: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    status: Mapped[OrderStatus] = mapped_column(str_enum(OrderStatus, "order_status"),
                                                default=OrderStatus.PENDING_PAYMENT)
    payment_provider: Mapped[str] = mapped_column(String(20))
    payment_status: Mapped[PaymentStatus] = mapped_column(
        str_enum(PaymentStatus, "order_payment_status"), default=PaymentStatus.PENDING)
    # The Stripe PaymentIntent paying this order (stripe provider only).
    payment_intent_id: Mapped[str | None] = mapped_column(String(255), unique=True)
    paid_amount: Mapped[int] = mapped_column(Money, default=0)
    refunded_amount: Mapped[int] = mapped_column(Money, default=0)
    expires_at: Mapped[datetime]
    paid_at: Mapped[datetime | None]
    delivered_at: Mapped[datetime | None]
    delivery_ref: Mapped[str | None] = mapped_column(String(500))
    checksum: Mapped[str | None] = mapped_column(String(200))
    # Delivered with a file the exchange holds: its SHA-256, computed at upload, is the
    # checksum, so the delivery is verified; free-text references and checksums are not.
    artifact_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("artifacts.id"))
    verified_delivery: Mapped[bool] = mapped_column(Boolean, default=False,
                                                    server_default=false())
    completed_at: Mapped[datetime | None]
    closed_at: Mapped[datetime | None]
    version: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[created_at]

    # Not stored: what the buyer needs to pay (a Stripe client secret), set when placed.
    if TYPE_CHECKING:  # declared for the type checker only: the ORM maps no such column
        payment_start: PaymentStart | None
        # Read from the licences' tables (mapped below the class): the licence this order
        # renews, if it is a renewal, and the licence it grants or renews.
        renews_license_id: Mapped[uuid.UUID | None]
        license_id: Mapped[uuid.UUID | None]
    payment_start = None

    __mapper_args__ = {"version_id_col": version}
    __table_args__ = (
        Index("ix_orders_buyer_created", "buyer_id", "created_at"),
        Index("ix_orders_merchant_created", "merchant_id", "created_at"),
        # The expiry and auto-accept jobs look orders up by status and time.
        Index("ix_orders_status_expires", "status", "expires_at"),
        # Deal statistics: completed orders of a category in a window, prices read from
        # the index alone.
        Index("ix_orders_deals", "category", "status", "completed_at", "unit_price"),
        # What a buyer holds unpaid of a listing (the cap at placing), and the unpaid orders
        # it abandoned in a window (the credit finding): partial, so each covers only the
        # few rows it is asked for, however many orders a buyer has.
        _partial_index("ix_orders_unpaid_buyer_listing", ("buyer_id", "listing_id"),
                       UNPAID_ORDER),
        _partial_index("ix_orders_abandoned_buyer_closed", ("buyer_id", "closed_at"),
                       ABANDONED_ORDER),
    )

    def require_status(self, *allowed: OrderStatus, doing: str) -> None:
        if self.status not in allowed:
            raise InvalidTransition(f"A {self.status.value} order cannot be {doing}.",
                                    status=self.status.value)

    def pay(self, amount: int, at: datetime) -> None:
        self.require_status(OrderStatus.PENDING_PAYMENT, doing="paid")
        self.status, self.payment_status = OrderStatus.PAID, PaymentStatus.SUCCEEDED
        self.paid_amount, self.paid_at = amount, at

    def payment_failed(self) -> None:
        """A payment attempt failed: the order stays payable until it expires."""
        self.require_status(OrderStatus.PENDING_PAYMENT, doing="marked as failed")
        self.payment_status = PaymentStatus.FAILED

    def cancel(self, at: datetime) -> None:
        self.require_status(OrderStatus.PENDING_PAYMENT, doing="cancelled")
        self.status, self.closed_at = OrderStatus.CANCELLED, at

    def expire(self, at: datetime) -> None:
        self.require_status(OrderStatus.PENDING_PAYMENT, doing="expired")
        self.status, self.closed_at = OrderStatus.EXPIRED, at

    def deliver(self, delivery_ref: str, checksum: str, at: datetime, *,
                artifact_id: uuid.UUID | None = None) -> None:
        """Delivered: by reference and checksum, verified when they are an artifact's."""
        self.require_status(OrderStatus.PAID, doing="delivered")
        self.status, self.delivered_at = OrderStatus.DELIVERED, at
        self.delivery_ref, self.checksum = delivery_ref, checksum
        self.artifact_id, self.verified_delivery = artifact_id, artifact_id is not None

    def accept(self, at: datetime) -> None:
        self.require_status(OrderStatus.DELIVERED, doing="accepted")
        self.status, self.completed_at = OrderStatus.COMPLETED, at

    def dispute(self) -> None:
        self.require_status(OrderStatus.DELIVERED, doing="disputed")
        self.status = OrderStatus.DISPUTED

    def refund_undelivered(self, at: datetime) -> int:
        """A paid order never delivered is refunded in full (its buyer cancelled it, or the
        delivery period passed) and ends `refunded`; returns the amount to pay back."""
        self.require_status(OrderStatus.PAID, doing="cancelled with a refund")
        amount = self.refundable_amount
        self.refunded_amount += amount
        self.status, self.closed_at = OrderStatus.REFUNDED, at
        return amount

    def settle_dispute(self, outcome: DisputeOutcome, refund: int, at: datetime) -> None:
        """Close a dispute: a full refund ends the order refunded; otherwise it completes at
        the price less any partial refund."""
        self.require_status(OrderStatus.DISPUTED, doing="resolved")
        self.refunded_amount += refund
        if outcome is DisputeOutcome.REFUND_FULL:
            self.status, self.closed_at = OrderStatus.REFUNDED, at
        else:
            self.status, self.completed_at = OrderStatus.COMPLETED, at

    @property
    def refundable_amount(self) -> int:
        return self.paid_amount - self.refunded_amount


def holding_licenses() -> ColumnElement[bool]:
    """Orders whose licenses are out of their listing's stock: neither cancelled nor expired
    unpaid, nor refunded before delivery (a refund after delivery leaves them taken)."""
    return and_(Order.status.not_in(RELEASES_LICENSES),
                or_(Order.status != OrderStatus.REFUNDED, Order.delivered_at.is_not(None)))


# Deferred: loaded by the reads that show or need them (`WITH_LICENSE`), not by settlement's
# batches of orders. A renewal order takes no licence of its own and takes no stock.
_renews = (select(LicenseRenewal.license_id).where(LicenseRenewal.order_id == Order.id)
           .correlate_except(LicenseRenewal).scalar_subquery())
_grants = (select(License.id).where(License.order_id == Order.id)
           .correlate_except(License).scalar_subquery())
Order.renews_license_id = column_property(_renews, deferred=True, group="license")
Order.license_id = column_property(func.coalesce(_grants, _renews), deferred=True,
                                   group="license")
WITH_LICENSE = undefer_group("license")


class Payment(Base):
    """Money received for an order, as our own record (never assumed from the provider)."""

    __tablename__ = "payments"

    id: Mapped[uuid_pk]
    order_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("orders.id"), unique=True)
    provider: Mapped[str] = mapped_column(String(20))
    amount: Mapped[int] = mapped_column(Money)
    reference: Mapped[str] = mapped_column(String(200))
    recorded_by: Mapped[uuid.UUID | None]
    created_at: Mapped[created_at]


class Refund(Base):
    """Money returned to a buyer; the sum per order never exceeds what was paid."""

    __tablename__ = "refunds"

    id: Mapped[uuid_pk]
    order_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("orders.id"), index=True)
    dispute_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("disputes.id"))
    provider: Mapped[str] = mapped_column(String(20))
    amount: Mapped[int] = mapped_column(Money)
    reference: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[created_at]


class Dispute(Base):
    """A buyer's complaint about a delivered order, resolved by an operator."""

    __tablename__ = "disputes"

    id: Mapped[uuid_pk]
    order_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("orders.id"), index=True)
    buyer_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("parties.id"))
    reason: Mapped[str] = mapped_column(Text)
    outcome: Mapped[DisputeOutcome | None] = mapped_column(
        str_enum(DisputeOutcome, "dispute_outcome"))
    refund_amount: Mapped[int | None] = mapped_column(Money)
    note: Mapped[str | None] = mapped_column(Text)
    resolved_by: Mapped[uuid.UUID | None]
    resolved_at: Mapped[datetime | None]
    created_at: Mapped[created_at]

    @property
    def status(self) -> str:
        return "resolved" if self.outcome is not None else "open"


class StripeEvent(Base):
    """A Stripe webhook event already processed, recorded in the transaction of its effect."""

    __tablename__ = "stripe_events"

    event_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    type: Mapped[str] = mapped_column(String(100))
    received_at: Mapped[created_at]


class Demand(Base):
    """What a buyer is looking for: the hard constraints a listing must meet, and a budget."""

    __tablename__ = "demands"

    id: Mapped[uuid_pk]
    buyer_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("parties.id"))
    category: Mapped[str] = mapped_column(String(64))
    keywords: Mapped[list[str]] = mapped_column(JSON)
    max_classification: Mapped[Classification] = mapped_column(
        str_enum(Classification, "demand_max_classification"))
    delivery_modes: Mapped[list[str]] = mapped_column(JSON)
    purpose: Mapped[str] = mapped_column(String(64))
    territory: Mapped[Territory] = mapped_column(str_enum(Territory, "demand_territory"))
    max_unit_price: Mapped[int] = mapped_column(Money)
    currency: Mapped[str] = mapped_column(String(3))
    quantity: Mapped[int] = mapped_column(Integer)
    auto_order: Mapped[bool]
    expires_at: Mapped[datetime]
    status: Mapped[DemandStatus] = mapped_column(str_enum(DemandStatus, "demand_status"),
                                                 default=DemandStatus.OPEN)
    # The order placed for it (auto_order), once matched.
    order_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("orders.id"))
    closed_at: Mapped[datetime | None]
    version: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[created_at]

    # Not stored: the order auto_order placed in this request, for its response.
    if TYPE_CHECKING:
        placed_order: Order | None
    placed_order = None

    __mapper_args__ = {"version_id_col": version}
    __table_args__ = (
        Index("ix_demands_buyer_created", "buyer_id", "created_at"),
        # A listing's fitting demands: open ones in its category; the expiry job: by time.
        Index("ix_demands_status_category", "status", "category"),
        Index("ix_demands_status_expires", "status", "expires_at"),
    )

    def _close(self, status: DemandStatus, at: datetime, doing: str) -> None:
        if self.status is not DemandStatus.OPEN:
            raise InvalidTransition(f"A {self.status.value} demand cannot be {doing}.",
                                    status=self.status.value)
        self.status, self.closed_at = status, at

    def fulfil_with(self, order_id: uuid.UUID, at: datetime) -> None:
        self._close(DemandStatus.MATCHED, at, "matched")
        self.order_id = order_id

    def cancel(self, at: datetime) -> None:
        self._close(DemandStatus.CANCELLED, at, "cancelled")

    def expire(self, at: datetime) -> None:
        self._close(DemandStatus.EXPIRED, at, "expired")
