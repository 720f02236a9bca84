"""The double-entry ledger (app.ledger) on the database: balanced transactions only, one per
business key, append-only entries, cached balances equal to their entries, and the trial
balance that checks all of it."""

from __future__ import annotations

from decimal import Decimal

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from app import ledger
from app.db import unit_of_work
from app.extensions import db
from app.parties.models import Role
from tests.factories import make_member, run_together

A = ledger.AccountRef("test_source")
B = ledger.AccountRef("test_sink")
C = ledger.AccountRef("test_other")


def post(key: str, lines: list[tuple[ledger.AccountRef, object]],
         kind: str = "test") -> ledger.LedgerTransaction:
    with unit_of_work() as session:
        return ledger.post_transaction(session, key=key, kind=kind, description=key,
                                       lines=lines)  # type: ignore[arg-type]


def counts() -> tuple[int, int, int]:
    with db.engine.connect() as connection:
        return tuple(connection.scalar(sa.select(sa.func.count()).select_from(model))
                     for model in (ledger.LedgerTransaction, ledger.LedgerEntry,
                                   ledger.Account))  # type: ignore[return-value]


def cached(*refs: ledger.AccountRef) -> dict[str, int]:
    with Session(db.engine) as session:
        return ledger.balances(session, refs)


def entry_sums() -> dict[str, int]:
    with db.engine.connect() as connection:
        return {code: int(total) for code, total in connection.execute(
            sa.select(ledger.Account.code, sa.func.sum(ledger.LedgerEntry.amount))
            .join(ledger.LedgerEntry, ledger.LedgerEntry.account_id == ledger.Account.id)
            .group_by(ledger.Account.code))}


def trial() -> ledger.TrialBalance:
    with Session(db.engine) as session:
        return ledger.trial_balance(session)


# --- balanced transactions only --------------------------------------------------------------

UNBALANCED = {
    "short": [(A, -100), (B, 99)],
    "over": [(A, -100), (B, 100), (C, 1)],
    "one_line": [(A, 100)],
    "same_account": [(A, -100), (A, 100)],  # nets to nothing: no money moves
    "zeros": [(A, 0), (B, 0)],
    "empty": [],
}


def test_an_unbalanced_transaction_is_refused_and_nothing_is_written(app):
    for name, lines in UNBALANCED.items():
        with pytest.raises(ledger.UnbalancedTransaction):
            post(f"t-{name}", lines)

        assert counts() == (0, 0, 0), name


def test_an_amount_that_is_not_an_integer_of_fen_is_refused(app):
    for amount in (1.5, 100.0, Decimal("100"), "100", True):
        with pytest.raises(ledger.UnbalancedTransaction, match="integer fen"):
            post("t-1", [(A, amount), (B, amount)])  # refused before any sum is made
        with pytest.raises(ledger.UnbalancedTransaction, match="integer fen"):
            post("t-1", [(A, -100), (B, amount)])

        assert counts() == (0, 0, 0), amount


def test_a_balanced_transaction_writes_its_entries_and_moves_the_cached_balances(app):
    posted = post("t-1", [(A, -250), (B, 200), (C, 50)])

    assert (posted.key, posted.kind) == ("t-1", "test")
    assert counts() == (1, 3, 3)
    assert cached(A, B, C) == {A.code: -250, B.code: 200, C.code: 50}


def test_lines_on_one_account_are_netted_into_one_entry(app):
    post("t-1", [(A, -100), (B, 60), (B, 40), (C, 0)])

    assert counts()[:2] == (1, 2)
    assert entry_sums() == {A.code: -100, B.code: 100}


def test_a_partys_account_is_named_by_kind_and_party(app):
    party = make_member(Role.MERCHANT).party
    payable = ledger.AccountRef("payable", party.id)

    post("t-1", [(A, -10), (payable, 10)])

    with Session(db.engine) as session:
        account = session.scalars(sa.select(ledger.Account)
                                  .where(ledger.Account.code == f"payable:{party.id}")).one()
    assert (account.kind, account.party_id, account.currency, account.balance) == \
        ("payable", party.id, "CNY", 10)


# --- one transaction per business key --------------------------------------------------------

def test_the_same_key_with_the_same_lines_returns_the_original_and_writes_nothing(app):
    first = post("order:1:paid", [(A, -500), (B, 500)])

    again = post("order:1:paid", [(B, 500), (A, -500)])  # order and description do not matter
    split = post("order:1:paid", [(A, -500), (B, 200), (B, 300)])

    assert again.id == split.id == first.id
    assert counts() == (1, 2, 2)
    assert cached(A, B) == {A.code: -500, B.code: 500}


def test_the_same_key_with_other_lines_is_refused_as_reused(app):
    post("order:1:paid", [(A, -500), (B, 500)])

    for other in ([(A, -501), (B, 501)], [(A, -500), (C, 500)],
                  [(A, -500), (B, 400), (C, 100)]):
        with pytest.raises(ledger.LedgerKeyReused) as refused:
            post("order:1:paid", other)

        assert refused.value.status == 409
        assert refused.value.code == "ledger_key_reused"
        assert counts()[:2] == (1, 2)
        assert cached(A, B, C) == {A.code: -500, B.code: 500, C.code: 0}


def test_a_reused_key_rolls_back_the_whole_unit_of_work(app):
    post("k-1", [(A, -500), (B, 500)])

    with pytest.raises(ledger.LedgerKeyReused), unit_of_work() as session:
        ledger.post_transaction(session, key="k-2", kind="test", description="",
                                lines=[(A, -1), (C, 1)])
        ledger.post_transaction(session, key="k-1", kind="test", description="",
                                lines=[(A, -2), (C, 2)])

    assert counts() == (1, 2, 2)
    assert cached(A, C) == {A.code: -500, C.code: 0}


@pytest.mark.postgres_only
def test_concurrent_postings_of_one_key_write_it_once(app):
    def post_once(client):
        with client.application.app_context():
            try:
                return post("order:1:paid", [(A, -700), (B, 700)]).id
            finally:
                db.session.remove()

    ids = run_together(app, [post_once] * 8)

    assert len(set(ids)) == 1
    assert counts() == (1, 2, 2)
    assert cached(A, B) == {A.code: -700, B.code: 700}


def posting(key: str, *lines: tuple[ledger.AccountRef, int]) -> ledger.Posting:
    return ledger.Posting(key=key, kind="test", description=key, lines=list(lines))


def post_many(*postings: ledger.Posting) -> int:
    with unit_of_work() as session:
        return ledger.post_transactions(session, list(postings))


def test_a_batch_of_postings_writes_each_once_and_moves_each_balance_by_its_sum(app):
    assert post_many(posting("b-1", (A, -100), (B, 100)),
                     posting("b-2", (A, -50), (C, 50)),
                     posting("b-3", (B, -30), (C, 30))) == 3

    assert counts() == (3, 6, 3)
    assert cached(A, B, C) == entry_sums() == {A.code: -150, B.code: 70, C.code: 80}
    # Replayed in a later batch with a new one: only the new one is written.
    assert post_many(posting("b-2", (C, 50), (A, -50)), posting("b-4", (C, -1), (A, 1))) == 1
    assert counts()[:2] == (4, 8)
    assert cached(A, B, C) == entry_sums() == {A.code: -149, B.code: 70, C.code: 79}


def test_a_batch_with_a_reused_key_or_a_key_twice_writes_nothing_of_the_batch(app):
    post("b-1", [(A, -100), (B, 100)])

    with pytest.raises(ledger.LedgerKeyReused):
        post_many(posting("b-2", (A, -5), (C, 5)), posting("b-1", (A, -100), (C, 100)))
    with pytest.raises(ledger.UnbalancedTransaction):
        post_many(posting("b-3", (A, -5), (C, 5)), posting("b-3", (A, -5), (C, 5)))
    with pytest.raises(ledger.UnbalancedTransaction):
        post_many(posting("b-4", (A, -5), (C, 5)), posting("b-5", (A, -5), (C, 4)))

    assert counts()[:2] == (1, 2)
    assert cached(A, B, C) == {A.code: -100, B.code: 100, C.code: 0}
    assert post_many() == 0


# --- cached balances and append-only entries -------------------------------------------------

def test_cached_balances_equal_the_sums_of_their_entries(app):
    post("t-1", [(A, -1_000), (B, 1_000)])
    post("t-2", [(B, -300), (C, 300)])
    post("t-3", [(C, -300), (A, 100), (B, 200)])
    post("t-2", [(B, -300), (C, 300)])  # a replay moves nothing

    assert cached(A, B, C) == entry_sums() == {A.code: -900, B.code: 900, C.code: 0}
    assert cached(ledger.AccountRef("never_used")) == {"never_used": 0}


def test_entries_cannot_be_updated_or_deleted_through_the_orm(app):
    post("t-1", [(A, -100), (B, 100)])

    with pytest.raises(PermissionError), unit_of_work() as session:
        entry = session.scalars(sa.select(ledger.LedgerEntry)).first()
        entry.amount = 1
        session.flush()
    with pytest.raises(PermissionError), unit_of_work() as session:
        session.delete(session.scalars(sa.select(ledger.LedgerEntry)).first())
        session.flush()
    with pytest.raises(PermissionError), unit_of_work() as session:
        session.execute(sa.update(ledger.LedgerEntry).values(amount=0))
    with pytest.raises(PermissionError), unit_of_work() as session:
        session.execute(sa.delete(ledger.LedgerEntry))

    assert entry_sums() == {A.code: -100, B.code: 100}
    assert trial().balanced


@pytest.mark.postgres_only
@pytest.mark.parametrize("statement", [
    "UPDATE ledger_entries SET amount = amount + 1",
    "DELETE FROM ledger_entries",
])
def test_postgresql_refuses_plain_sql_changes_to_ledger_entries(app, statement):
    post("t-1", [(A, -100), (B, 100)])

    with pytest.raises(DBAPIError) as refused, db.engine.begin() as connection:
        connection.execute(sa.text(statement))

    assert refused.value.orig.sqlstate == "42501"  # insufficient_privilege
    assert "append-only" in str(refused.value.orig)
    assert entry_sums() == {A.code: -100, B.code: 100}


# --- the trial balance -----------------------------------------------------------------------

def test_the_trial_balance_of_balanced_postings_is_balanced(app):
    post("t-1", [(A, -1_000), (B, 600), (C, 400)])
    post("t-2", [(B, -100), (A, 100)])

    report = trial()

    assert report.balanced
    assert report.total_debits == report.total_credits == 1_100
    assert report.mismatched_accounts == [] and report.unbalanced_transactions == []
    assert {a["code"]: (a["balance"], a["entries_balance"]) for a in report.accounts} == {
        A.code: (-900, -900), B.code: (500, 500), C.code: (400, 400)}


def test_an_empty_ledger_is_balanced(app):
    report = trial()

    assert report.balanced
    assert (report.total_debits, report.total_credits, report.accounts) == (0, 0, [])


def test_the_trial_balance_finds_a_cached_balance_that_drifted_from_its_entries(app):
    post("t-1", [(A, -100), (B, 100)])
    with db.engine.begin() as connection:  # accounts are not append-only: their cache moves
        connection.execute(sa.update(ledger.Account).where(ledger.Account.code == B.code)
                           .values(balance=101))

    report = trial()

    assert not report.balanced
    assert report.mismatched_accounts == [B.code]
    assert report.total_debits == report.total_credits


def test_the_trial_balance_finds_an_entry_written_outside_a_transaction(app):
    posted = post("t-1", [(A, -100), (B, 100)])
    with Session(db.engine) as session:
        account_id = session.scalars(sa.select(ledger.Account.id)
                                     .where(ledger.Account.code == A.code)).one()
    with db.engine.begin() as connection:
        connection.execute(ledger.LedgerEntry.__table__.insert().values(
            transaction_id=posted.id, account_id=account_id, amount=-5,
            posted_at=posted.posted_at))

    report = trial()

    assert not report.balanced
    assert report.unbalanced_transactions == ["t-1"]
    assert (report.total_debits, report.total_credits) == (100, 105)
    assert report.mismatched_accounts == [A.code]


def test_a_key_is_unique_across_kinds_of_transaction(app):
    first = post("same", [(A, -1), (B, 1)], kind="payment").id

    with pytest.raises(ledger.LedgerKeyReused):
        post("same", [(A, -2), (B, 2)], kind="refund")

    assert counts() == (1, 2, 2)
    assert post("same", [(A, -1), (B, 1)], kind="payment").id == first
