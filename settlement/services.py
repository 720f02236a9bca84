"""Settlement: completed orders allocated to their payees on the ledger, exactly once.

The steps of a run (`settlement.runs.settle` drives them): open (or resume) the run of a
cut-off, settle the completed, unsettled orders in batches — many orders per transaction,
each order's allocation and its ledger transaction together —, take back refunds of settled
orders from their payees, and close the run. An order is settled once whatever happens:
its settlement row's primary key is the order, batches lock the orders they take (SKIP
LOCKED, so a second run settles others), and a batch that loses a race rolls back and is
read again. A process killed part-way leaves whole batches behind it; the next run settles
the rest.

Accounts (payees' accounts carry the party): `buyer_clearing` (money received, waiting),
`platform_revenue`, `payable:<party>` (owed to the payee), `clawback:<party>` (negative:
what a payee owes back after a refund took more than it still had payable).
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import exists, func, select, update
from sqlalchemy.orm import Session

from app import audit, clock, ledger
from app.db import upsert_insert
from app.faults import crash_point
from app.parties.models import Actor
from orders.models import Order, OrderStatus, Refund
from orders.money import BUYER_CLEARING
from settlement import allocation
from settlement.models import (
    AllocationLine,
    OrderSettlement,
    RefundReversal,
    RunStatus,
    SettlementRun,
)

log = logging.getLogger(__name__)

PLATFORM_REVENUE = ledger.AccountRef("platform_revenue")


def payable(party_id: uuid.UUID) -> ledger.AccountRef:
    return ledger.AccountRef("payable", party_id)


def clawback(party_id: uuid.UUID) -> ledger.AccountRef:
    return ledger.AccountRef("clawback", party_id)


def open_run(session: Session, *, up_to: datetime, actor: Actor | None) -> SettlementRun:
    """The run of this cut-off: created now, or the one already there (one per cut-off)."""
    session.execute(upsert_insert(session, SettlementRun).values(
        id=uuid.uuid4(), up_to=up_to, status=RunStatus.RUNNING.value, orders_settled=0,
        gross_amount=0, platform_fee_amount=0, payout_amount=0, refunds_reversed=0,
        started_by=actor.id if actor else None, started_at=clock.now())
        .on_conflict_do_nothing(index_elements=["up_to"]))
    run = session.scalars(select(SettlementRun).where(SettlementRun.up_to == up_to)).one()
    return run


def _unsettled(up_to: datetime, limit: int) -> Any:
    return (select(Order).where(
        Order.status == OrderStatus.COMPLETED, Order.completed_at <= up_to,
        ~exists().where(OrderSettlement.order_id == Order.id))
        .order_by(Order.completed_at, Order.id).limit(limit)
        .with_for_update(skip_locked=True))


def settle_batch(session: Session, run_id: uuid.UUID, up_to: datetime, size: int,
                 actor: Actor | None = None) -> int:
    """Settle up to `size` completed, unsettled orders in this transaction; how many.

    Written in bulk: one insert of settlement marks, one of allocation lines, and the
    ledger postings together (each account's balance moved once for the batch). Each order's
    settlement is audited with its allocation, in its listing's trace."""
    orders = list(session.scalars(_unsettled(up_to, size)))
    if not orders:
        return 0
    now = clock.now()
    marks, postings = [], []
    lines: list[dict[str, Any]] = []
    gross = fee = 0
    for order in orders:
        shares = allocation.split(order.total_amount, allocation.plan_lines(
            order.revenue_plan or {}, order.merchant_id))
        marks.append({"order_id": order.id, "run_id": run_id, "amount": order.total_amount,
                      "settled_at": now})
        lines.extend({"id": uuid.uuid4(), "order_id": order.id, "position": n,
                      "party_id": share.party_id, "role": share.role, "basis": share.basis,
                      "amount": share.amount, "reversed_amount": 0}
                     for n, share in enumerate(shares))
        postings.append(_allocation_posting(order, shares))
        _record_settled(session, order, run_id, shares, actor)
        gross += order.total_amount
        fee += shares[0].amount
    session.execute(OrderSettlement.__table__.insert(), marks)
    session.execute(AllocationLine.__table__.insert(), lines)
    ledger.post_transactions(session, postings)
    crash_point("settlement.batch_written")
    session.execute(update(SettlementRun).where(SettlementRun.id == run_id).values(
        orders_settled=SettlementRun.orders_settled + len(orders),
        gross_amount=SettlementRun.gross_amount + gross,
        platform_fee_amount=SettlementRun.platform_fee_amount + fee,
        payout_amount=SettlementRun.payout_amount + gross - fee))
    return len(orders)


def _record_settled(session: Session, order: Order, run_id: uuid.UUID,
                    shares: list[allocation.Share], actor: Actor | None) -> None:
    audit.record(session, actor_id=actor.id if actor else None, action="order.settled",
                 subject=order, listing_id=order.listing_id,
                 details={"status": order.status.value, "run_id": str(run_id),
                          "amount": order.total_amount,
                          "lines": [{"party_id": str(share.party_id) if share.party_id else None,
                                     "role": share.role, "basis": share.basis,
                                     "amount": share.amount} for share in shares]})


def _allocation_posting(order: Order, shares: list[allocation.Share]) -> ledger.Posting:
    lines: list[tuple[ledger.AccountRef, int]] = [(BUYER_CLEARING, -order.total_amount)]
    for share in shares:
        if share.amount:
            lines.append((PLATFORM_REVENUE if share.party_id is None
                          else payable(share.party_id), share.amount))
    return ledger.Posting(key=f"order:{order.id}:settled", kind="allocation",
                          description=f"Allocation of order {order.id}", lines=lines)


def reverse_refunds(session: Session, run_id: uuid.UUID | None, limit: int,
                    actor: Actor | None = None) -> tuple[int, int]:
    """Take refunds of settled orders back from their allocation lines: how many it found,
    and how many it reversed (the others, a reversal that locked them first took back)."""
    found = session.execute(select(Refund, Order.listing_id)
                            .join(Order, Order.id == Refund.order_id).where(
        exists().where(OrderSettlement.order_id == Refund.order_id),
        ~exists().where(RefundReversal.refund_id == Refund.id))
        .order_by(Refund.created_at, Refund.id).limit(limit)).tuples().all()
    refunds = [refund for refund, _ in found]
    listing_of = {refund.id: listing_id for refund, listing_id in found}
    if refunds:
        # Clearing first, as every posting that touches it locks it first: reading payees'
        # balances under it cannot deadlock with a settlement batch.
        ledger.balances(session, [BUYER_CLEARING], for_update=True)
    reversed_ = 0
    for refund in refunds:
        lines = list(session.scalars(select(AllocationLine).where(
            AllocationLine.order_id == refund.order_id).order_by(AllocationLine.position)
            .with_for_update()))
        if _already_reversed(session, refund.id):
            continue  # by a reversal that held these lines before us
        taken = allocation.reversal(refund.amount, [line.net_amount for line in lines])
        postings: list[tuple[ledger.AccountRef, int]] = [(BUYER_CLEARING, refund.amount)]
        from_payable: dict[uuid.UUID, int] = {}  # a payee may hold several of the lines
        for line, amount in zip(lines, taken, strict=True):
            line.reversed_amount += amount
            if amount:
                postings.extend(_take_back(session, line, amount, from_payable))
        session.add(RefundReversal(refund_id=refund.id, order_id=refund.order_id,
                                   run_id=run_id, amount=refund.amount,
                                   reversed_at=clock.now()))
        session.flush()
        ledger.post_transaction(session, key=f"refund:{refund.id}:reversed", kind="reversal",
                                description=f"Refund {refund.id} taken back from payees",
                                lines=postings)
        audit.record(session, actor_id=actor.id if actor else None, action="refund.reversed",
                     subject=refund, listing_id=listing_of[refund.id],
                     details={"order_id": str(refund.order_id), "amount": refund.amount,
                              "run_id": str(run_id) if run_id else None,
                              "taken": [{"party_id": str(line.party_id) if line.party_id
                                         else None, "role": line.role, "amount": amount}
                                        for line, amount in zip(lines, taken, strict=True)]})
        reversed_ += 1
    return len(refunds), reversed_


def held_for_refunds(session: Session, party_ids: list[uuid.UUID]) -> dict[uuid.UUID, int]:
    """What each payee still holds of orders with a refund not yet taken back: not final
    (the reversal will take part of it), so not paid out until it is."""
    waiting = select(Refund.order_id).where(
        ~exists().where(RefundReversal.refund_id == Refund.id))
    return {party_id: int(amount) for party_id, amount in session.execute(
        select(AllocationLine.party_id,
               func.sum(AllocationLine.amount - AllocationLine.reversed_amount))
        .where(AllocationLine.order_id.in_(waiting), AllocationLine.party_id.in_(party_ids))
        .group_by(AllocationLine.party_id)).tuples() if party_id is not None}


def _already_reversed(session: Session, refund_id: uuid.UUID) -> bool:
    return bool(session.scalar(select(exists().where(RefundReversal.refund_id == refund_id))))


def _take_back(session: Session, line: AllocationLine, amount: int,
               taken: dict[uuid.UUID, int]) -> list[tuple[ledger.AccountRef, int]]:
    """From the payee's payable balance (less what `taken` says this reversal's earlier
    lines already take from it); what is no longer there (paid out) becomes a clawback,
    netted from its next payout."""
    if line.party_id is None:
        return [(PLATFORM_REVENUE, -amount)]
    account = payable(line.party_id)
    available = max(0, ledger.balances(session, [account], for_update=True)[account.code]
                    - taken.get(line.party_id, 0))
    from_payable = min(available, amount)
    taken[line.party_id] = taken.get(line.party_id, 0) + from_payable
    postings = [(account, -from_payable)] if from_payable else []
    if amount > from_payable:
        postings.append((clawback(line.party_id), -(amount - from_payable)))
    return postings


def finish_run(session: Session, run_id: uuid.UUID, actor: Actor | None) -> SettlementRun:
    run = session.get(SettlementRun, run_id, with_for_update=True, populate_existing=True)
    assert run is not None
    if run.status is RunStatus.RUNNING:
        run.status, run.finished_at = RunStatus.COMPLETED, clock.now()
        session.flush()
        audit.record(session, actor_id=actor.id if actor else None,
                     action="settlement.run_completed", subject=run,
                     details={"up_to": run.up_to.isoformat(),
                              "orders_settled": run.orders_settled,
                              "gross_amount": run.gross_amount,
                              "platform_fee_amount": run.platform_fee_amount,
                              "refunds_reversed": run.refunds_reversed})
    return run
