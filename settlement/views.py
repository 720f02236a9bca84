"""What settlement shows, and to whom: allocations, balances, statements, runs, the trial
balance. Parties see their own; operators and regulators see everything; others get 404."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from app import ledger
from app.errors import NotFound
from app.parties.models import OVERSEERS, Actor
from orders.errors import OrderNotFound
from orders.models import Order
from settlement import services
from settlement.models import AllocationLine, SettlementRun


class RunNotFound(NotFound):
    code, title = "settlement_run_not_found", "No such settlement run"


class PartyNotFound(NotFound):
    code, title = "party_not_found", "No such party"


def allocations(session: Session, *, order_id: uuid.UUID,
                viewer: Actor) -> list[AllocationLine]:
    """The order's allocation lines: all for its merchant and overseers, a payee's own for
    a payee; an order not yet settled has none."""
    order = session.get(Order, order_id)
    if order is None:
        raise OrderNotFound()
    lines = list(session.scalars(select(AllocationLine).where(
        AllocationLine.order_id == order_id).order_by(AllocationLine.position)))
    if viewer.id == order.merchant_id or viewer.has_role(*OVERSEERS):
        return lines
    own = [line for line in lines if line.party_id == viewer.id]
    if not own:
        raise OrderNotFound()
    return own


def _ensure_self_or_overseer(party_id: uuid.UUID, viewer: Actor) -> None:
    if party_id != viewer.id and not viewer.has_role(*OVERSEERS):
        raise PartyNotFound()


@dataclass(frozen=True)
class Balance:
    party_id: uuid.UUID
    available_amount: int
    pending_amount: int
    clawback_amount: int


def balance(session: Session, *, party_id: uuid.UUID, viewer: Actor) -> Balance:
    _ensure_self_or_overseer(party_id, viewer)
    payable, clawback = services.payable(party_id), services.clawback(party_id)
    in_transit = ledger.AccountRef("in_transit", party_id)
    cached = ledger.balances(session, [payable, clawback, in_transit])
    owed = -cached[clawback.code]
    return Balance(party_id, cached[payable.code] - owed, cached[in_transit.code], owed)


def statement(*, party_id: uuid.UUID, viewer: Actor, start: datetime | None,
              end: datetime | None) -> Select:
    """The ledger lines of the party's accounts, oldest first."""
    _ensure_self_or_overseer(party_id, viewer)
    stmt = (select(ledger.LedgerEntry.posted_at, ledger.Account.code.label("account"),
                   ledger.LedgerEntry.amount,
                   ledger.LedgerTransaction.key.label("transaction_key"),
                   ledger.LedgerTransaction.kind, ledger.LedgerTransaction.description)
            .join(ledger.Account, ledger.Account.id == ledger.LedgerEntry.account_id)
            .join(ledger.LedgerTransaction,
                  ledger.LedgerTransaction.id == ledger.LedgerEntry.transaction_id)
            .where(ledger.Account.party_id == party_id))
    if start is not None:
        stmt = stmt.where(ledger.LedgerEntry.posted_at >= start)
    if end is not None:
        stmt = stmt.where(ledger.LedgerEntry.posted_at < end)
    return stmt.order_by(ledger.LedgerEntry.posted_at, ledger.LedgerEntry.id)


def runs_query() -> Select:
    return select(SettlementRun).order_by(SettlementRun.started_at.desc(), SettlementRun.id)


def get_run(session: Session, run_id: uuid.UUID) -> SettlementRun:
    run = session.get(SettlementRun, run_id)
    if run is None:
        raise RunNotFound()
    return run
