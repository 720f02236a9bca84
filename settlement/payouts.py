"""Payouts: per payee per run, two-phase, through a payout provider.

After a run, each payee with a payout account and money payable gets one payout of what is
final (never what it holds of an order whose refund is still to be taken back): first
what it owes back (a clawback, after a refund took more than it still had) is netted from
its payable balance; the rest moves payable → in transit in the transaction that creates
the payout (phase one, committed before any provider is called). The provider then pays:
on success in transit → paid out, on failure in transit → payable again (phase two); each
payout resolves once. A crash between the phases leaves payouts in transit, and the next
`pay_out` sends them again under the same idempotency keys.

Providers: `bank_file` writes the batch file the operator pays from (CSV: payee name,
credit code, bank, account, amount) and the operator confirms the batch, naming the
payouts the bank refused; `stripe_connect` makes one Transfer per payout to the payee's
connected account, `transfer_group` the run's id, the idempotency key from the payout's id.
"""

from __future__ import annotations

import logging
import os
import tempfile
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import stripe
from flask import current_app
from sqlalchemy import Select, func, or_, select
from sqlalchemy.orm import Session, aliased

from app import audit, clock, csv_export, ledger
from app.db import retrying, unit_of_work
from app.errors import NotFound, ValidationFailed
from app.faults import crash_point
from app.parties.models import OVERSEERS, Actor, Party
from orders.models import Order
from settlement.models import (
    AllocationLine,
    OrderSettlement,
    Payout,
    PayoutAccount,
    PayoutBatch,
    PayoutMethod,
    PayoutStatus,
    SettlementRun,
)
from settlement.services import clawback, held_for_refunds, payable
from settlement.views import PartyNotFound

log = logging.getLogger(__name__)


class BatchNotFound(NotFound):
    code, title = "payout_batch_not_found", "No such payout batch"


def in_transit(party_id: uuid.UUID) -> ledger.AccountRef:
    return ledger.AccountRef("in_transit", party_id)


def paid_out(party_id: uuid.UUID) -> ledger.AccountRef:
    return ledger.AccountRef("paid_out", party_id)


# --- phase one: payouts created, money in transit --------------------------------------------

def create_payouts(session: Session, run: SettlementRun) -> list[Payout]:
    """One payout per payee with a payout account and money payable (none twice per run),
    less what it holds of orders whose refunds are still to be taken back."""
    accounts = {account.party_id: account for account in session.scalars(
        select(PayoutAccount))}
    owed = session.execute(select(ledger.Account.party_id, ledger.Account.balance).where(
        ledger.Account.kind == "payable", ledger.Account.balance > 0,
        ledger.Account.party_id.in_(list(accounts))).order_by(ledger.Account.party_id)).all()
    existing = set(session.scalars(select(Payout.party_id).where(Payout.run_id == run.id)))
    parties = [party_id for party_id, _ in owed if party_id not in existing]
    # Locked (all three, in the ledger's one order, as confirmations lock them), then read
    # again: a refund's reversal may be taking from it right now.
    balances = {party_id: ledger.balances(
        session, [payable(party_id), clawback(party_id), in_transit(party_id)],
        for_update=True)[payable(party_id).code] for party_id in parties}
    # Read under those locks: no allocation to these payees commits meanwhile.
    held = held_for_refunds(session, parties)
    created = []
    for party_id in parties:
        final = balances[party_id] - held.get(party_id, 0)
        if final <= 0:
            continue
        amount = final - _net_clawback(session, run, party_id, final)
        if amount <= 0:
            continue
        method = accounts[party_id].method
        payout = Payout(run_id=run.id, batch_id=_batch(session, run, method).id,
                        party_id=party_id, method=method, amount=amount,
                        status=PayoutStatus.IN_TRANSIT)
        session.add(payout)
        session.flush()
        ledger.post_transaction(session, key=f"payout:{payout.id}:initiated", kind="payout",
                                description=f"Payout {payout.id} initiated",
                                lines=[(payable(party_id), -amount),
                                       (in_transit(party_id), amount)])
        _record(session, payout, "payout.initiated", None, party_id=str(party_id),
                amount=amount, method=method.value, run_id=str(run.id))
        created.append(payout)
    return created


def _net_clawback(session: Session, run: SettlementRun, party_id: uuid.UUID,
                  available: int) -> int:
    """Settle what the payee owes back from what it is owed; returns the amount netted."""
    account = clawback(party_id)
    owes = -ledger.balances(session, [account])[account.code]
    netted = min(owes, available)
    if netted > 0:
        ledger.post_transaction(session, key=f"run:{run.id}:clawback:{party_id}",
                                kind="clawback", description="Clawback netted from payout",
                                lines=[(payable(party_id), -netted), (account, netted)])
    return max(netted, 0)


def _batch(session: Session, run: SettlementRun, method: PayoutMethod) -> PayoutBatch:
    batch = session.scalars(select(PayoutBatch).where(PayoutBatch.run_id == run.id,
                                                      PayoutBatch.method == method)).first()
    if batch is None:
        batch = PayoutBatch(run_id=run.id, method=method)
        session.add(batch)
        session.flush()
    return batch


def _record(session: Session, payout: Payout, action: str, actor: Actor | None,
            **details: Any) -> None:
    """Audit the payout once for each listing whose orders it pays, naming those orders and
    their part of it, so that each listing's trace shows its payout lines (once, with no
    listing, if it pays none: money of no allocation line, which does not happen today)."""
    parts = _listing_parts(session, payout) or {None: ([], 0)}
    for listing_id, (order_ids, amount) in parts.items():
        audit.record(session, actor_id=actor.id if actor else None, action=action,
                     subject=payout, listing_id=listing_id,
                     details={**details, **({"orders": order_ids, "listing_amount": amount}
                                            if listing_id else {})})


def _listing_parts(session: Session,
                   payout: Payout) -> dict[uuid.UUID | None, tuple[list[str], int]]:
    """The listings whose orders the payout pays → (their order ids, what they hold of it).

    A payout pays what its payee was allocated since its last payout that did not fail: the
    payee's allocation lines settled in runs after that payout's run, up to its own (money
    of a failed payout, or of a run when the payee had no payout account, is paid later).
    What refunds took back is left out."""
    run = aliased(SettlementRun)
    earlier = aliased(SettlementRun)
    this_up_to = select(run.up_to).where(run.id == payout.run_id).scalar_subquery()
    last_paid_up_to = (select(func.max(earlier.up_to))
                       .join(Payout, Payout.run_id == earlier.id)
                       .where(Payout.party_id == payout.party_id, Payout.id != payout.id,
                              Payout.status != PayoutStatus.FAILED,
                              earlier.up_to < this_up_to).scalar_subquery())
    rows = session.execute(
        select(Order.listing_id, AllocationLine.order_id,
               AllocationLine.amount - AllocationLine.reversed_amount)
        .join(Order, Order.id == AllocationLine.order_id)
        .join(OrderSettlement, OrderSettlement.order_id == AllocationLine.order_id)
        .join(SettlementRun, SettlementRun.id == OrderSettlement.run_id)
        .where(AllocationLine.party_id == payout.party_id,
               SettlementRun.up_to <= this_up_to,
               or_(last_paid_up_to.is_(None), SettlementRun.up_to > last_paid_up_to))
        .order_by(Order.listing_id, OrderSettlement.settled_at, AllocationLine.order_id)
    ).tuples()
    parts: dict[uuid.UUID | None, tuple[list[str], int]] = {}
    for listing_id, order_id, amount in rows:
        order_ids, total = parts.get(listing_id, ([], 0))
        if str(order_id) not in order_ids:
            order_ids.append(str(order_id))
        parts[listing_id] = (order_ids, total + amount)
    return parts


# --- phase two: paid, or back to payable ----------------------------------------------------

def mark_paid(session: Session, payout: Payout, reference: str, actor: Actor | None) -> None:
    payout.resolve(PayoutStatus.PAID, clock.now(), reference=reference)
    session.flush()
    ledger.post_transaction(session, key=f"payout:{payout.id}:paid", kind="payout",
                            description=f"Payout {payout.id} paid ({reference})",
                            lines=[(in_transit(payout.party_id), -payout.amount),
                                   (paid_out(payout.party_id), payout.amount)])
    _record(session, payout, "payout.paid", actor, reference=reference, amount=payout.amount)


def mark_failed(session: Session, payout: Payout, reason: str, actor: Actor | None) -> None:
    payout.resolve(PayoutStatus.FAILED, clock.now(), reason=reason)
    session.flush()
    ledger.post_transaction(session, key=f"payout:{payout.id}:failed", kind="payout",
                            description=f"Payout {payout.id} failed: {reason}"[:500],
                            lines=[(in_transit(payout.party_id), -payout.amount),
                                   (payable(payout.party_id), payout.amount)])
    _record(session, payout, "payout.failed", actor, reason=reason, amount=payout.amount)


# --- providers -------------------------------------------------------------------------------

def write_bank_file(session: Session, batch: PayoutBatch) -> Path:
    """The batch's file for the bank (written whole, then renamed into place)."""
    payouts = list(session.scalars(select(Payout).where(Payout.batch_id == batch.id)
                                   .order_by(Payout.created_at, Payout.id)))
    parties = {p.id: p for p in session.scalars(
        select(Party).where(Party.id.in_([p.party_id for p in payouts])))}
    accounts = {a.party_id: a for a in session.scalars(
        select(PayoutAccount).where(PayoutAccount.party_id.in_(list(parties))))}
    folder = Path(current_app.config["PAYOUT_FILE_DIR"])
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"payouts-{batch.run_id}.csv"
    handle, temporary = tempfile.mkstemp(dir=folder, suffix=".tmp")
    with os.fdopen(handle, "w", newline="", encoding="utf-8") as out:
        # Names escaped where a spreadsheet would run them; amount_fen stays a number.
        writer = csv_export.Writer(out)
        writer.writerow(["payout_id", "payee_name", "credit_code", "bank_name", "account_name",
                         "account_number", "amount_fen", "currency"])
        for payout in payouts:
            party, account = parties[payout.party_id], accounts[payout.party_id]
            writer.writerow([payout.id, party.name, party.credit_code, account.bank_name,
                             account.account_name, account.account_number, payout.amount,
                             ledger.CURRENCY])
    os.replace(temporary, path)
    batch.file_path = str(path)
    return path


def connect_client() -> stripe.StripeClient:
    config = current_app.config
    base = config.get("STRIPE_CONNECT_API_BASE") or config.get("STRIPE_API_BASE")
    return stripe.StripeClient(config["STRIPE_SECRET_KEY"],
                               base_addresses={"api": base} if base else {},
                               max_network_retries=config["STRIPE_MAX_NETWORK_RETRIES"])


def send_transfer(payout: Payout, account: PayoutAccount) -> Any:
    """A Stripe Transfer of the payout; replayed by Stripe if sent before under its key."""
    return connect_client().v1.transfers.create(
        params={"amount": payout.amount, "currency": "cny",
                "destination": account.stripe_account_id or "",
                "transfer_group": str(payout.run_id),
                "metadata": {"payout_id": str(payout.id), "party_id": str(payout.party_id)}},
        options={"idempotency_key": f"transfer:{payout.id}"})


def _send_stripe_transfers(payout_ids: Iterable[uuid.UUID]) -> None:
    """Each payout in its own transaction: a transfer's outcome is recorded as it happens."""
    for payout_id in payout_ids:
        with unit_of_work() as session:
            payout = session.get(Payout, payout_id, with_for_update=True,
                                 populate_existing=True)
            if payout is None or payout.status is not PayoutStatus.IN_TRANSIT:
                continue
            account = session.get(PayoutAccount, payout.party_id)
            assert account is not None  # payouts go to parties with an account (never deleted)
            try:
                transfer = send_transfer(payout, account)
            except stripe.APIConnectionError:
                log.warning("transfer for payout %s not confirmed; stays in transit",
                            payout.id)
                continue
            except stripe.StripeError as error:
                crash_point("payout.transfer_answered")
                mark_failed(session, payout, f"stripe: {error.code or error.user_message or error}"
                            [:500], None)
                continue
            crash_point("payout.transfer_answered")
            mark_paid(session, payout, transfer.id, None)


def pay_out(run_id: uuid.UUID) -> None:
    """Create the run's payouts (phase one, committed), write bank files, and send every
    Stripe transfer still in transit (this run's, and any a crash left behind)."""
    def create(session: Session) -> None:
        run = session.get(SettlementRun, run_id)
        assert run is not None
        create_payouts(session, run)

    retrying(create)  # it locks payees' accounts party by party: it may lose a deadlock
    crash_point("payout.initiated")
    with unit_of_work() as session:
        for batch in session.scalars(select(PayoutBatch).where(
                PayoutBatch.run_id == run_id, PayoutBatch.method == PayoutMethod.BANK_FILE,
                PayoutBatch.file_path.is_(None))):
            write_bank_file(session, batch)
        pending = list(session.scalars(select(Payout.id).where(
            Payout.method == PayoutMethod.STRIPE_CONNECT,
            Payout.status == PayoutStatus.IN_TRANSIT).order_by(Payout.created_at, Payout.id)))
    _send_stripe_transfers(pending)


def confirm_bank_batch(session: Session, *, batch_id: uuid.UUID, actor: Actor,
                       failed: list[dict[str, Any]]) -> PayoutBatch:
    """The operator has paid the batch file: every payout in transit is paid, but those the
    bank refused, which go back to payable."""
    batch = session.get(PayoutBatch, batch_id, with_for_update=True)
    if batch is None:
        raise BatchNotFound()
    if batch.method is not PayoutMethod.BANK_FILE:
        raise ValidationFailed("Only bank_file batches are confirmed by an operator.")
    payouts = {p.id: p for p in session.scalars(select(Payout).where(
        Payout.batch_id == batch.id).with_for_update())}
    refused = {item["payout_id"]: item["reason"] for item in failed}
    unknown = [str(pid) for pid in refused if pid not in payouts]
    if unknown:
        raise ValidationFailed(f"Not in this batch: {', '.join(unknown)}.",
                               errors={"failed": ["Unknown payout ids."]})
    for payout in payouts.values():
        if payout.status is not PayoutStatus.IN_TRANSIT:
            continue
        if payout.id in refused:
            mark_failed(session, payout, refused[payout.id], actor)
        else:
            mark_paid(session, payout, f"bank:{batch.id}", actor)
    batch.confirmed_at, batch.confirmed_by = clock.now(), actor.id
    session.flush()
    return batch


# --- payout accounts and reads ---------------------------------------------------------------

def set_payout_account(session: Session, *, party_id: uuid.UUID, actor: Actor,
                       body: dict[str, Any]) -> PayoutAccount:
    """Where the party is paid: set by the party alone (an operator who could change it
    could redirect a payee's money)."""
    if party_id != actor.id:
        raise PartyNotFound()
    if session.get(Party, party_id) is None:
        raise PartyNotFound()
    method = body["method"]
    needed = (["stripe_account_id"] if method is PayoutMethod.STRIPE_CONNECT
              else ["bank_name", "account_name", "account_number"])
    missing = [name for name in needed if not body.get(name)]
    if missing:
        raise ValidationFailed(f"{method.value} needs {', '.join(missing)}.",
                               errors={name: ["Required for this method."] for name in missing})
    account = session.get(PayoutAccount, party_id, with_for_update=True)
    if account is None:
        account = PayoutAccount(party_id=party_id)
        session.add(account)
    for name in ("method", "bank_name", "account_name", "account_number", "stripe_account_id"):
        setattr(account, name, body.get(name))
    account.updated_at = clock.now()
    session.flush()
    audit.record(session, actor_id=actor.id, action="payout_account.set", subject=account,
                 details={"party_id": str(party_id), "method": method.value})
    return account


def get_payout_account(session: Session, *, party_id: uuid.UUID,
                       viewer: Actor) -> PayoutAccount:
    if party_id != viewer.id and not viewer.has_role(*OVERSEERS):
        raise PartyNotFound()
    account = session.get(PayoutAccount, party_id)
    if account is None:
        raise NotFound("No payout account on file.")
    return account


def payouts_query(*, viewer: Actor, party_id: uuid.UUID | None = None,
                  run_id: uuid.UUID | None = None,
                  status: PayoutStatus | None = None) -> Select:
    """Payouts, newest first: a party's own, or everyone's for operators and regulators."""
    stmt = select(Payout)
    if not viewer.has_role(*OVERSEERS):
        stmt = stmt.where(Payout.party_id == viewer.id)
    if party_id is not None:
        stmt = stmt.where(Payout.party_id == party_id)
    if run_id is not None:
        stmt = stmt.where(Payout.run_id == run_id)
    if status is not None:
        stmt = stmt.where(Payout.status == status)
    return stmt.order_by(Payout.created_at.desc(), Payout.id)


def get_batch(session: Session, batch_id: uuid.UUID) -> PayoutBatch:
    batch = session.get(PayoutBatch, batch_id)
    if batch is None:
        raise BatchNotFound()
    return batch
