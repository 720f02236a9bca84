"""Orders taken through the API to the states settlement cares about, settlement runs, and
reads of the ledger and settlement tables for the settlement tests."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from werkzeug.test import TestResponse

from app import ledger
from app.db import unit_of_work
from app.extensions import db
from app.parties.models import Role
from orders import money
from orders.models import Order, Refund
from settlement import verification
from settlement.models import AllocationLine, OrderSettlement
from tests.factories import Member, make_member
from tests.orders.factories import listed_product, order_body
from tests.support import ok

ORDERS = "/api/v1/orders"
RUNS = "/api/v1/settlement/runs"
TRIAL_BALANCE = "/api/v1/ledger/trial-balance"
UNIT_PRICE = 120_000  # the listing factory's price
ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Market:
    """A merchant with one listed product (and its revenue plan's payees), a buyer and an
    operator."""

    client: FlaskClient
    merchant: Member
    buyer: Member
    operator: Member
    listing: dict[str, Any]
    payees: dict[str, Member] = field(default_factory=dict)
    _keys: int = 0

    def key(self, prefix: str) -> str:
        self._keys += 1
        return f"{prefix}-{self._keys}-{uuid.uuid4().hex[:8]}"


def make_market(client: FlaskClient, *, plan: bool = True, licenses: int | None = 1000,
                **listing: Any) -> Market:
    """With `plan`, the listing shares its proceeds: a broker's 2 % commission, then the
    pool half to the merchant by investment and half by contribution to a collector (3/4)
    and a processor (1/4). At 120 000 fen and a 5 % fee: platform 6000, broker 2400,
    merchant 55 800, collector 41 850, processor 13 950."""
    merchant = make_member(Role.MERCHANT)
    payees = {"merchant": merchant}
    overrides: dict[str, Any] = {"licenses_available": licenses, **listing}
    if plan:
        payees |= {name: make_member(Role.MERCHANT)
                   for name in ("broker", "collector", "processor")}
        overrides.setdefault("revenue_shares", [
            share(payees["broker"], "broker", "contribution", 2),
            share(merchant, "holder", "investment", 4, invested_amount=500_000),
            share(payees["collector"], "collector", "contribution", 3),
            share(payees["processor"], "processor", "contribution", 1),
        ])
    return Market(client, merchant, make_member(Role.BUYER), make_member(Role.OPERATOR),
                  listed_product(client, merchant, **overrides), payees)


EXPECTED_SPLIT = [("platform", 6_000), ("broker", 2_400), ("holder", 55_800),
                  ("collector", 41_850), ("processor", 13_950)]


def share(member: Member, role: str, basis: str, weight: float,
          invested_amount: int = 0) -> dict[str, Any]:
    return {"party_id": member.id, "role": role, "basis": basis, "weight": weight,
            "invested_amount": invested_amount}


def with_key(member: Member, key: str | None) -> dict[str, str]:
    return {**member.headers, **({"Idempotency-Key": key} if key else {})}


# --- orders ----------------------------------------------------------------------------------

def place(m: Market, quantity: int = 1, client: FlaskClient | None = None) -> dict[str, Any]:
    return ok((client or m.client).post(ORDERS, json=order_body(m.listing, quantity=quantity),
                                        headers=m.buyer.headers), 201)


def confirm_payment(m: Market, order_id: str, key: str | None = None,
                    client: FlaskClient | None = None) -> TestResponse:
    return (client or m.client).post(f"{ORDERS}/{order_id}/payments/confirm",
                                     json={"reference": "BANK-001"},
                                     headers=with_key(m.operator, key))


def paid_order(m: Market, quantity: int = 1, client: FlaskClient | None = None,
               key: str | None = None) -> dict[str, Any]:
    order = place(m, quantity, client)
    return ok(confirm_payment(m, order["id"], key, client))


def deliver(m: Market, order_id: str, client: FlaskClient | None = None) -> dict[str, Any]:
    return ok((client or m.client).post(
        f"{ORDERS}/{order_id}/deliver", headers=m.merchant.headers,
        json={"delivery_ref": "s3://exchange/deliveries/1.parquet", "checksum": "sha256:0f"}))


def accept(m: Market, order_id: str, client: FlaskClient | None = None) -> dict[str, Any]:
    return ok((client or m.client).post(f"{ORDERS}/{order_id}/accept",
                                        headers=m.buyer.headers))


def completed_order(m: Market, quantity: int = 1,
                    client: FlaskClient | None = None) -> dict[str, Any]:
    order = paid_order(m, quantity, client)
    deliver(m, order["id"], client)
    completed = accept(m, order["id"], client)
    assert completed["status"] == "completed"
    return completed


def refund_by_dispute(m: Market, order_id: str, outcome: str, amount: int | None = None,
                      client: FlaskClient | None = None) -> dict[str, Any]:
    """Deliver the paid order, let the buyer dispute it, and resolve with a refund."""
    client = client or m.client
    deliver(m, order_id, client)
    dispute = ok(client.post(f"{ORDERS}/{order_id}/disputes", headers=m.buyer.headers,
                             json={"reason": "Half of the rows are empty."}), 201)
    body = {"outcome": outcome, **({"refund_amount": amount} if amount else {})}
    ok(client.post(f"/api/v1/disputes/{dispute['id']}/resolve", json=body,
                   headers=with_key(m.operator, m.key("resolve"))))
    return ok(client.get(f"{ORDERS}/{order_id}", headers=m.buyer.headers))


def partially_refunded_order(m: Market, amount: int, quantity: int = 1) -> dict[str, Any]:
    order = paid_order(m, quantity)
    after = refund_by_dispute(m, order["id"], "refund_partial", amount)
    assert (after["status"], after["refunded_amount"]) == ("completed", amount)
    return after


def record_refund(order_id: str, amount: int) -> uuid.UUID:
    """A refund of a completed (perhaps settled) order, recorded as a refund path outside
    disputes would record it: the Refund row and its ledger posting in one transaction (the
    API refunds only disputed orders, before they complete)."""
    with unit_of_work() as session:
        order = session.get(Order, uuid.UUID(order_id), with_for_update=True)
        assert order is not None and 0 < amount <= order.refundable_amount
        order.refunded_amount += amount
        refund = Refund(order_id=order.id, provider=order.payment_provider, amount=amount,
                        reference=f"test-refund-{uuid.uuid4().hex[:8]}")
        session.add(refund)
        session.flush()
        money.refund_paid(session, refund)
        return refund.id


# --- settlement ------------------------------------------------------------------------------

def run_settlement(client: FlaskClient, operator: Member, up_to: datetime | None = None, *,
                   key: str | None = None) -> TestResponse:
    body = {"up_to": up_to.isoformat()} if up_to else {}
    return client.post(RUNS, json=body,
                       headers=with_key(operator, key or f"run-{uuid.uuid4().hex}"))


def settled(client: FlaskClient, operator: Member, up_to: datetime | None = None) -> dict:
    return ok(run_settlement(client, operator, up_to), 201)


def allocations(client: FlaskClient, member: Member, order_id: str) -> TestResponse:
    return client.get(f"{ORDERS}/{order_id}/allocations", headers=member.headers)


def balance(client: FlaskClient, viewer: Member, party: Member | str) -> TestResponse:
    party_id = party if isinstance(party, str) else party.id
    return client.get(f"/api/v1/parties/{party_id}/balance", headers=viewer.headers)


def statement(client: FlaskClient, viewer: Member, party: Member, **query: Any) -> TestResponse:
    return client.get(f"/api/v1/parties/{party.id}/statement", headers=viewer.headers,
                      query_string=query)


def trial_balance(client: FlaskClient, viewer: Member) -> dict[str, Any]:
    return ok(client.get(TRIAL_BALANCE, headers=viewer.headers))


# --- reads straight from the database --------------------------------------------------------

def count(model: Any, *where: Any) -> int:
    with db.engine.connect() as connection:
        return connection.execute(
            select(func.count()).select_from(model).where(*where)).scalar_one()


def settled_order_ids() -> list[uuid.UUID]:
    with db.engine.connect() as connection:
        return list(connection.scalars(select(OrderSettlement.order_id)))


def lines_per_order() -> dict[uuid.UUID, int]:
    with db.engine.connect() as connection:
        return dict(connection.execute(
            select(AllocationLine.order_id, func.count()).group_by(AllocationLine.order_id))
            .tuples().all())


def ledger_transactions(like: str) -> list[str]:
    with db.engine.connect() as connection:
        return list(connection.scalars(select(ledger.LedgerTransaction.key)
                                       .where(ledger.LedgerTransaction.key.like(like))))


def entries_of(key: str) -> dict[str, int]:
    """The entries of the ledger transaction with this key, by account code."""
    with db.engine.connect() as connection:
        return dict(connection.execute(
            select(ledger.Account.code, ledger.LedgerEntry.amount)
            .join(ledger.LedgerEntry, ledger.LedgerEntry.account_id == ledger.Account.id)
            .join(ledger.LedgerTransaction,
                  ledger.LedgerTransaction.id == ledger.LedgerEntry.transaction_id)
            .where(ledger.LedgerTransaction.key == key)).tuples().all())


def account_balance(code: str) -> int:
    with db.engine.connect() as connection:
        return connection.scalar(select(ledger.Account.balance)
                                 .where(ledger.Account.code == code)) or 0


def refund_ids(order_id: str) -> list[uuid.UUID]:
    with db.engine.connect() as connection:
        return list(connection.scalars(select(Refund.id)
                                       .where(Refund.order_id == uuid.UUID(order_id))))


def verify_report() -> verification.Report:
    with Session(db.engine) as session:
        return verification.verify(session)


def trial() -> ledger.TrialBalance:
    with Session(db.engine) as session:
        return ledger.trial_balance(session)
