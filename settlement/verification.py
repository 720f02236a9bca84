"""Every settlement invariant, checked from the database: `flask settlement verify`."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app import ledger
from orders.models import Order, OrderStatus, Refund
from settlement.models import AllocationLine, OrderSettlement, RefundReversal


@dataclass
class Report:
    orders_settled: int = 0
    violations: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.violations


def verify(session: Session) -> Report:
    report = Report()
    trial = ledger.trial_balance(session)
    if trial.total_debits != trial.total_credits:
        report.violations.append(f"debits {trial.total_debits} != credits "
                                 f"{trial.total_credits}")
    report.violations += [f"cached balance of {code} differs from its entries"
                          for code in trial.mismatched_accounts]
    report.violations += [f"transaction {key} does not balance"
                          for key in trial.unbalanced_transactions]

    settled = dict(session.execute(select(OrderSettlement.order_id, OrderSettlement.amount))
                   .tuples().all())
    report.orders_settled = len(settled)
    allocated = dict(session.execute(
        select(AllocationLine.order_id, func.sum(AllocationLine.amount))
        .group_by(AllocationLine.order_id)).tuples().all())
    for order_id, amount in settled.items():
        if allocated.get(order_id) != amount:
            report.violations.append(f"order {order_id}: allocations sum to "
                                     f"{allocated.get(order_id)}, not {amount}")
    report.violations += [f"allocation line {line_id} reversed beyond its amount"
                          for line_id in session.scalars(select(AllocationLine.id).where(
                              (AllocationLine.reversed_amount > AllocationLine.amount)
                              | (AllocationLine.reversed_amount < 0)
                              | (AllocationLine.amount < 0)))]
    reversed_by_order = dict(session.execute(
        select(AllocationLine.order_id, func.sum(AllocationLine.reversed_amount))
        .group_by(AllocationLine.order_id)).tuples().all())
    reversals = dict(session.execute(
        select(RefundReversal.order_id, func.sum(RefundReversal.amount))
        .group_by(RefundReversal.order_id)).tuples().all())
    for order_id, amount in reversals.items():
        if reversed_by_order.get(order_id, 0) != amount:
            report.violations.append(f"order {order_id}: lines reversed "
                                     f"{reversed_by_order.get(order_id, 0)}, refunds {amount}")
    refunded = dict(session.execute(select(Refund.order_id, func.sum(Refund.amount))
                                    .group_by(Refund.order_id)).tuples().all())
    for order in session.scalars(select(Order).where(Order.id.in_(list(refunded)))):
        if refunded[order.id] > order.paid_amount:
            report.violations.append(f"order {order.id}: refunded {refunded[order.id]} of "
                                     f"{order.paid_amount} paid")
    unsettleable = session.scalar(select(func.count()).select_from(OrderSettlement).join(
        Order, Order.id == OrderSettlement.order_id).where(
        Order.status != OrderStatus.COMPLETED))
    if unsettleable:
        report.violations.append(f"{unsettleable} settled orders are not completed")
    return report
