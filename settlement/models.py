"""Settlement runs, each order's allocation lines, and the reversals of refunds."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, Money, created_at, str_enum, uuid_pk
from app.errors import InvalidTransition


class RunStatus(enum.StrEnum):
    RUNNING = "running"
    COMPLETED = "completed"


class SettlementRun(Base):
    """One settlement of every completed, unsettled order up to a cut-off (one per cut-off)."""

    __tablename__ = "settlement_runs"

    id: Mapped[uuid_pk]
    up_to: Mapped[datetime] = mapped_column(unique=True)
    status: Mapped[RunStatus] = mapped_column(str_enum(RunStatus, "settlement_run_status"),
                                              default=RunStatus.RUNNING)
    orders_settled: Mapped[int] = mapped_column(Integer, default=0)
    gross_amount: Mapped[int] = mapped_column(Money, default=0)
    platform_fee_amount: Mapped[int] = mapped_column(Money, default=0)
    payout_amount: Mapped[int] = mapped_column(Money, default=0)
    refunds_reversed: Mapped[int] = mapped_column(Integer, default=0)
    started_by: Mapped[uuid.UUID | None]
    started_at: Mapped[created_at]
    finished_at: Mapped[datetime | None]


class OrderSettlement(Base):
    """The mark that an order is settled: its primary key is the order, so never twice."""

    __tablename__ = "order_settlements"

    order_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("orders.id"), primary_key=True)
    run_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("settlement_runs.id"), index=True)
    amount: Mapped[int] = mapped_column(Money)
    settled_at: Mapped[datetime]


class AllocationLine(Base):
    """One payee's part of an order (the platform's line has no party), and how much of it
    refunds have taken back."""

    __tablename__ = "allocation_lines"

    id: Mapped[uuid_pk]
    order_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("orders.id"))
    position: Mapped[int] = mapped_column(Integer)
    party_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("parties.id"))
    role: Mapped[str] = mapped_column(String(30))
    basis: Mapped[str] = mapped_column(String(30))
    amount: Mapped[int] = mapped_column(Money)
    reversed_amount: Mapped[int] = mapped_column(Money, default=0)

    __table_args__ = (
        UniqueConstraint("order_id", "position"),
        Index("ix_allocation_lines_party", "party_id"),
    )

    @property
    def net_amount(self) -> int:
        return self.amount - self.reversed_amount


class RefundReversal(Base):
    """A refund taken back from an order's allocation lines: once per refund."""

    __tablename__ = "refund_reversals"

    refund_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("refunds.id"), primary_key=True)
    order_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("orders.id"), index=True)
    run_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("settlement_runs.id"))
    amount: Mapped[int] = mapped_column(Money)
    reversed_at: Mapped[datetime]


class PayoutMethod(enum.StrEnum):
    BANK_FILE = "bank_file"
    STRIPE_CONNECT = "stripe_connect"


class PayoutStatus(enum.StrEnum):
    IN_TRANSIT = "in_transit"
    PAID = "paid"
    FAILED = "failed"


class PayoutAccount(Base):
    """Where a payee is paid: a bank account (in the operator's batch file) or a Stripe
    connected account."""

    __tablename__ = "payout_accounts"

    party_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("parties.id"), primary_key=True)
    method: Mapped[PayoutMethod] = mapped_column(str_enum(PayoutMethod, "payout_method"))
    bank_name: Mapped[str | None] = mapped_column(String(200))
    account_name: Mapped[str | None] = mapped_column(String(200))
    account_number: Mapped[str | None] = mapped_column(String(64))
    stripe_account_id: Mapped[str | None] = mapped_column(String(255))
    updated_at: Mapped[datetime]


class PayoutBatch(Base):
    """The payouts of one run by one method: for bank_file, the file the operator pays from
    and then confirms."""

    __tablename__ = "payout_batches"

    id: Mapped[uuid_pk]
    run_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("settlement_runs.id"))
    method: Mapped[PayoutMethod] = mapped_column(str_enum(PayoutMethod, "payout_batch_method"))
    file_path: Mapped[str | None] = mapped_column(String(500))
    confirmed_at: Mapped[datetime | None]
    confirmed_by: Mapped[uuid.UUID | None]
    created_at: Mapped[created_at]

    __table_args__ = (UniqueConstraint("run_id", "method"),)


class Payout(Base):
    """Money on its way to one payee from one run: payable → in transit → paid out, or back
    to payable when it fails. Each resolves once."""

    __tablename__ = "payouts"

    id: Mapped[uuid_pk]
    run_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("settlement_runs.id"))
    batch_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("payout_batches.id"), index=True)
    party_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("parties.id"))
    method: Mapped[PayoutMethod] = mapped_column(str_enum(PayoutMethod, "payout_entry_method"))
    amount: Mapped[int] = mapped_column(Money)
    status: Mapped[PayoutStatus] = mapped_column(str_enum(PayoutStatus, "payout_status"),
                                                 default=PayoutStatus.IN_TRANSIT)
    reference: Mapped[str | None] = mapped_column(String(255))
    failure_reason: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[created_at]
    resolved_at: Mapped[datetime | None]

    __table_args__ = (
        UniqueConstraint("run_id", "party_id"),
        Index("ix_payouts_party_created", "party_id", "created_at"),
    )

    def resolve(self, status: PayoutStatus, at: datetime, *, reference: str | None = None,
                reason: str | None = None) -> None:
        if self.status is not PayoutStatus.IN_TRANSIT:
            raise InvalidTransition(f"A {self.status.value} payout cannot be marked "
                                    f"{status.value}.", status=self.status.value)
        self.status, self.resolved_at = status, at
        self.reference = reference or self.reference
        self.failure_reason = reason
