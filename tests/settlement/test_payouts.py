"""Payouts through the API: two-phase by bank file (an operator confirms the batch) and by
Stripe Connect (against a stateful fake of the transfer endpoints, through the real SDK),
failures back to payable, a crash's transfers resent once, clawbacks netted."""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from app import clock
from app.db import unit_of_work
from app.extensions import db
from app.ledger import LedgerTransaction
from app.parties.models import Role
from orders import money
from orders.models import Refund
from settlement import payouts as payout_service
from settlement.models import Payout, PayoutAccount
from settlement.verification import verify
from tests.conftest import empty_tables, make_app
from tests.factories import Member, make_member
from tests.fakes.stripe_connect import FakeStripeConnect
from tests.orders.factories import listed_product
from tests.support import ok

RUNS = "/api/v1/settlement/runs"
PAYOUTS = "/api/v1/payouts"


@pytest.fixture(scope="session")
def connect_fake() -> Iterator[FakeStripeConnect]:
    fake = FakeStripeConnect()
    yield fake
    fake.stop()


@pytest.fixture(scope="session")
def payout_app(migrated_app: Flask, backend: str, connect_fake: FakeStripeConnect,
               tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flask]:
    app = make_app(backend, STRIPE_SECRET_KEY="sk_test_payouts",
                   STRIPE_CONNECT_API_BASE=connect_fake.url, STRIPE_MAX_NETWORK_RETRIES=0,
                   PAYOUT_FILE_DIR=str(tmp_path_factory.mktemp("payouts")))
    yield app
    with app.app_context():
        db.engine.dispose()


@dataclass
class Exchange:
    client: FlaskClient
    operator: Member
    merchant: Member
    collector: Member
    buyer: Member
    listing: dict[str, Any]
    fake: FakeStripeConnect

    def completed_order(self, quantity: int = 1) -> dict[str, Any]:
        order = ok(self.client.post("/api/v1/orders", headers=self.buyer.headers, json={
            "listing_id": self.listing["id"], "quantity": quantity, "purpose": "research"}), 201)
        ok(self.client.post(f"/api/v1/orders/{order['id']}/payments/confirm",
                            json={"reference": f"bank-{order['id']}"},
                            headers={**self.operator.headers,
                                     "Idempotency-Key": str(uuid.uuid4())}))
        ok(self.client.post(f"/api/v1/orders/{order['id']}/deliver", headers=self.merchant.headers,
                            json={"delivery_ref": "file-1", "checksum": "sha256:00"}))
        return ok(self.client.post(f"/api/v1/orders/{order['id']}/accept",
                                   headers=self.buyer.headers))

    def settle(self) -> dict[str, Any]:
        return ok(self.client.post(RUNS, json={}, headers={
            **self.operator.headers, "Idempotency-Key": str(uuid.uuid4())}), 201)

    def payouts(self, member: Member | None = None) -> list[dict[str, Any]]:
        return ok(self.client.get(PAYOUTS, headers=(member or self.operator).headers))

    def balance(self, member: Member) -> dict[str, Any]:
        return ok(self.client.get(f"/api/v1/parties/{member.id}/balance",
                                  headers=member.headers))

    def account(self, member: Member, **body: Any) -> dict[str, Any]:
        return ok(self.client.put(f"/api/v1/parties/{member.id}/payout-account",
                                  headers=member.headers, json=body))


@pytest.fixture
def exchange(payout_app: Flask, connect_fake: FakeStripeConnect) -> Iterator[Exchange]:
    connect_fake.reset(available=10_000_000, accounts=("acct_merchant", "acct_collector"))
    with payout_app.app_context():
        client = payout_app.test_client()
        merchant, collector = make_member(Role.MERCHANT), make_member(Role.MERCHANT)
        listing = listed_product(client, merchant, unit_price=10_000, licenses_available=None,
                                 revenue_shares=[
                                     {"party_id": collector.id, "role": "collector",
                                      "basis": "contribution", "weight": 40},
                                     {"party_id": merchant.id, "role": "holder",
                                      "basis": "contribution", "weight": 60}])
        yield Exchange(client, make_member(Role.OPERATOR), merchant, collector,
                       make_member(Role.BUYER), listing, connect_fake)
        db.session.remove()
    empty_tables(payout_app)
    clock.reset()


def bank(exchange: Exchange, member: Member) -> None:
    exchange.account(member, method="bank_file", bank_name="Bank of Shanghai",
                     account_name=f"Payee {member.id[:8]}", account_number="6222 0000 1234")


def ledger_keys(prefix: str) -> int:
    db.session.rollback()
    return db.session.scalar(select(func.count()).select_from(LedgerTransaction)
                             .where(LedgerTransaction.key.like(f"{prefix}%")))


def assert_books_clean() -> None:
    db.session.rollback()
    report = verify(db.session)
    assert report.ok, report.violations


# --- bank file -------------------------------------------------------------------------------

def test_a_run_puts_each_payees_money_in_transit_in_a_bank_file(exchange):
    bank(exchange, exchange.merchant)
    bank(exchange, exchange.collector)
    exchange.completed_order(quantity=2)  # 20,000: fee 1,000; collector 7,600; merchant 11,400
    run = exchange.settle()

    payouts = {p["party_id"]: p for p in exchange.payouts()}
    assert {party: p["amount"] for party, p in payouts.items()} == {
        exchange.collector.id: 7_600, exchange.merchant.id: 11_400}
    assert {p["status"] for p in payouts.values()} == {"in_transit"}
    assert {p["run_id"] for p in payouts.values()} == {run["id"]}
    assert exchange.balance(exchange.collector) == {**exchange.balance(exchange.collector),
                                                     "available_amount": 0,
                                                     "pending_amount": 7_600}

    batch_id = payouts[exchange.collector.id]["batch_id"]
    download = exchange.client.get(f"/api/v1/payout-batches/{batch_id}/file",
                                   headers=exchange.operator.headers)
    assert download.status_code == 200
    assert download.mimetype == "text/csv"
    rows = list(csv.DictReader(io.StringIO(download.get_data(as_text=True))))
    assert {row["payout_id"]: int(row["amount_fen"]) for row in rows} == {
        p["id"]: p["amount"] for p in payouts.values()}
    assert {row["account_number"] for row in rows} == {"6222 0000 1234"}
    assert all(row["credit_code"] and row["payee_name"] for row in rows)
    assert_books_clean()


def test_confirming_the_batch_pays_out_all_but_the_refused_payouts(exchange):
    bank(exchange, exchange.merchant)
    bank(exchange, exchange.collector)
    exchange.completed_order()
    exchange.settle()
    payouts = {p["party_id"]: p for p in exchange.payouts()}
    refused = payouts[exchange.collector.id]
    batch_id = refused["batch_id"]

    confirmed = exchange.client.post(
        f"/api/v1/payout-batches/{batch_id}/confirm",
        headers={**exchange.operator.headers, "Idempotency-Key": "batch-1"},
        json={"failed": [{"payout_id": refused["id"], "reason": "account closed"}]})
    assert confirmed.status_code == 200, confirmed.json
    assert confirmed.json["confirmed_at"]

    after = {p["party_id"]: p for p in exchange.payouts()}
    assert after[exchange.merchant.id]["status"] == "paid"
    assert after[exchange.collector.id]["status"] == "failed"
    assert after[exchange.collector.id]["failure_reason"] == "account closed"
    # The refused money is payable again; the paid money has left.
    assert exchange.balance(exchange.collector)["available_amount"] == refused["amount"]
    assert exchange.balance(exchange.merchant)["available_amount"] == 0
    assert exchange.balance(exchange.merchant)["pending_amount"] == 0

    again = exchange.client.post(
        f"/api/v1/payout-batches/{batch_id}/confirm",
        headers={**exchange.operator.headers, "Idempotency-Key": "batch-2"}, json={})
    assert again.status_code == 200
    assert {p["status"] for p in exchange.payouts()} == {"paid", "failed"}
    assert ledger_keys("payout:") == 4  # two initiated, one paid, one failed: nothing twice
    assert_books_clean()


def test_the_next_run_pays_out_money_that_came_back_from_a_failed_payout(exchange):
    bank(exchange, exchange.collector)
    exchange.completed_order()
    exchange.settle()
    [first] = exchange.payouts()
    ok(exchange.client.post(f"/api/v1/payout-batches/{first['batch_id']}/confirm",
                            headers=exchange.operator.headers,
                            json={"failed": [{"payout_id": first["id"], "reason": "typo"}]}))
    exchange.settle()
    amounts = sorted((p["status"], p["amount"]) for p in exchange.payouts())
    assert amounts == [("failed", first["amount"]), ("in_transit", first["amount"])]


def test_payees_without_a_payout_account_keep_their_money_available(exchange):
    bank(exchange, exchange.collector)
    exchange.completed_order()
    exchange.settle()
    assert [p["party_id"] for p in exchange.payouts()] == [exchange.collector.id]
    assert exchange.balance(exchange.merchant)["available_amount"] == 5_700


def test_payees_see_only_their_own_payouts(exchange):
    bank(exchange, exchange.merchant)
    bank(exchange, exchange.collector)
    exchange.completed_order()
    exchange.settle()
    mine = exchange.payouts(exchange.collector)
    assert [p["party_id"] for p in mine] == [exchange.collector.id]
    assert len(exchange.payouts()) == 2
    confirm = exchange.client.post(f"/api/v1/payout-batches/{mine[0]['batch_id']}/confirm",
                                   headers=exchange.collector.headers, json={})
    assert confirm.status_code == 403
    other = exchange.client.put(f"/api/v1/parties/{exchange.merchant.id}/payout-account",
                                headers=exchange.collector.headers,
                                json={"method": "stripe_connect",
                                      "stripe_account_id": "acct_collector"})
    assert other.status_code == 404


@pytest.mark.parametrize("body", [
    {"method": "bank_file", "bank_name": "Bank"},
    {"method": "stripe_connect"},
    {"method": "stripe_connect", "stripe_account_id": "not-an-account"},
    {"method": "cheque"},
])
def test_an_incomplete_payout_account_is_refused(exchange, body):
    response = exchange.client.put(f"/api/v1/parties/{exchange.merchant.id}/payout-account",
                                   headers=exchange.merchant.headers, json=body)
    assert response.status_code == 422
    assert response.mimetype == "application/problem+json"


# --- Stripe Connect --------------------------------------------------------------------------

def connect(exchange: Exchange, member: Member, account: str) -> None:
    exchange.account(member, method="stripe_connect", stripe_account_id=account)


def test_stripe_connect_payouts_are_transfers_in_the_runs_group(exchange):
    connect(exchange, exchange.merchant, "acct_merchant")
    connect(exchange, exchange.collector, "acct_collector")
    exchange.completed_order()
    run = exchange.settle()

    payouts = {p["party_id"]: p for p in exchange.payouts()}
    assert {p["status"] for p in payouts.values()} == {"paid"}
    transfers = exchange.fake.state.transfers
    assert {t["id"] for t in transfers.values()} == {p["reference"] for p in payouts.values()}
    for transfer in transfers.values():
        assert transfer["transfer_group"] == run["id"]
        assert transfer["amount"] == payouts[transfer["metadata"]["party_id"]]["amount"]
        assert transfer["metadata"]["payout_id"] == payouts[
            transfer["metadata"]["party_id"]]["id"]
    assert exchange.fake.state.available == 10_000_000 - 9_500
    assert exchange.balance(exchange.collector)["pending_amount"] == 0
    assert_books_clean()


def test_a_transfer_refused_for_insufficient_balance_returns_the_money_to_payable(exchange):
    connect(exchange, exchange.collector, "acct_collector")
    exchange.fake.reset(available=100, accounts=("acct_collector",))
    exchange.completed_order()
    exchange.settle()
    [payout] = exchange.payouts()
    assert payout["status"] == "failed"
    assert "balance_insufficient" in payout["failure_reason"]
    assert exchange.balance(exchange.collector)["available_amount"] == payout["amount"]
    assert exchange.fake.state.transfers == {}
    assert_books_clean()


def test_a_transfer_whose_answer_was_lost_is_resent_once_under_its_key(exchange):
    connect(exchange, exchange.collector, "acct_collector")
    exchange.fake.state.drop_next = 1
    exchange.completed_order()
    exchange.settle()
    [payout] = exchange.payouts()
    assert payout["status"] == "in_transit"  # unknown outcome: never guessed

    exchange.settle()  # the next run sends what is still in transit
    [payout] = exchange.payouts()
    assert payout["status"] == "paid"
    assert len(exchange.fake.state.transfers) == 1
    assert_books_clean()


def test_a_resent_transfer_already_made_is_replayed_not_repeated(exchange):
    """The transfer went through but our process never recorded it: the same key again
    gets Stripe's stored answer, so the payee is paid once."""
    connect(exchange, exchange.collector, "acct_collector")
    exchange.completed_order()
    exchange.settle()
    [payout] = exchange.payouts()
    with unit_of_work() as session:  # as if the answer had never been recorded
        stored = session.get(Payout, uuid.UUID(payout["id"]))
        assert stored is not None
        transfer = payout_service.send_transfer(stored,
                                                session.get(PayoutAccount, stored.party_id))
    assert transfer.id == payout["reference"]
    assert len(exchange.fake.state.transfers) == 1


# --- clawback --------------------------------------------------------------------------------

def refund_after_payout(exchange: Exchange, amount: int) -> None:
    """A 10,000 order settled and its collector's 3,800 paid out, then `amount` refunded
    (recorded as the orders domain records a refund)."""
    bank(exchange, exchange.collector)
    order = exchange.completed_order()
    exchange.settle()
    [paid] = exchange.payouts()
    ok(exchange.client.post(f"/api/v1/payout-batches/{paid['batch_id']}/confirm",
                            headers=exchange.operator.headers, json={}))
    with unit_of_work() as session:
        refund = Refund(order_id=uuid.UUID(order["id"]), provider="offline", amount=amount,
                        reference=f"offline-refund:{amount}")
        session.add(refund)
        session.flush()
        money.refund_paid(session, refund)


def test_a_refund_after_payout_is_clawed_back_from_the_next_payout(exchange):
    refund_after_payout(exchange, 10_000)  # the whole order: collector owes 3,800 back
    exchange.completed_order()  # another 10,000: collector 3,800 more
    exchange.settle()

    balance = exchange.balance(exchange.collector)
    assert balance["clawback_amount"] == 0
    # 3,800 owed back (the first order fully refunded) netted from 3,800 earned: no payout.
    assert [p["amount"] for p in exchange.payouts()] == [3_800]
    assert balance["available_amount"] == 0
    assert_books_clean()


def test_a_payees_clawback_waits_for_money_to_net_against(exchange):
    refund_after_payout(exchange, 5_000)
    exchange.settle()
    balance = exchange.balance(exchange.collector)
    assert balance["clawback_amount"] == 1_900
    assert balance["available_amount"] == -1_900
    assert len(exchange.payouts()) == 1
    assert_books_clean()


def test_payout_files_are_written_where_configured(exchange, payout_app):
    bank(exchange, exchange.collector)
    exchange.completed_order()
    run = exchange.settle()
    files = list(Path(payout_app.config["PAYOUT_FILE_DIR"]).glob(f"payouts-{run['id']}.csv"))
    assert len(files) == 1
