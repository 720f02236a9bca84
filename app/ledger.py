"""The double-entry ledger: accounts, balanced transactions, cached balances, verification.

Shared plumbing like the audit trail: the orders domain posts money as it moves (a payment
received, a refund paid) and settlement posts allocations and payouts, each through the one
`post_transaction`. What the accounts mean belongs to those domains; the rules are here:

- a transaction's entries sum to zero (per currency: there is one, CNY); none is zero;
- entries are append-only (refused by the ORM and, on PostgreSQL, by a trigger);
- every transaction has a unique business key: posting the same key again with the same
  entries returns the original, with other entries it is refused (409);
- each account's cached balance moves in the same transaction as its entries (an atomic
  increment, accounts locked in one order), and `verify` checks it against the entries.

Amounts are signed integer fen: money moves from accounts with negative entries to accounts
with positive ones. Debits are the positive entries, credits the negative ones.
"""

from __future__ import annotations

import hashlib
import uuid
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, func, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column

from app import clock
from app.db import Base, Money, created_at, upsert_insert, uuid_pk
from app.errors import Conflict
from app.records import canonical_json, make_append_only

CURRENCY = "CNY"


class LedgerKeyReused(Conflict):
    code, title = "ledger_key_reused", "A ledger transaction with this key has other entries"


class UnbalancedTransaction(ValueError):
    """A programming error: money may not appear or vanish."""


class Account(Base):
    """A ledger account with its cached balance (the sum of its entries)."""

    __tablename__ = "ledger_accounts"

    id: Mapped[uuid_pk]
    code: Mapped[str] = mapped_column(String(120), unique=True)
    kind: Mapped[str] = mapped_column(String(40))
    party_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("parties.id"), index=True)
    currency: Mapped[str] = mapped_column(String(3))
    balance: Mapped[int] = mapped_column(Money, default=0)
    created_at: Mapped[created_at]


class LedgerTransaction(Base):
    """One business event's movement of money, identified by its business key."""

    __tablename__ = "ledger_transactions"

    id: Mapped[uuid_pk]
    key: Mapped[str] = mapped_column(String(200), unique=True)
    kind: Mapped[str] = mapped_column(String(40))
    description: Mapped[str] = mapped_column(String(500))
    entries_digest: Mapped[str] = mapped_column(String(64))
    posted_at: Mapped[datetime]


class LedgerEntry(Base):
    """One line of a transaction: a signed amount on one account. Never changed."""

    __tablename__ = "ledger_entries"

    # BIGINT on PostgreSQL; INTEGER on SQLite, where only that is an autoincrementing rowid.
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"),
                                    primary_key=True, autoincrement=True)
    transaction_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("ledger_transactions.id"),
                                                      index=True)
    account_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("ledger_accounts.id"))
    amount: Mapped[int] = mapped_column(Money)
    posted_at: Mapped[datetime]

    __table_args__ = (
        # A party's statement: its accounts' lines in time order.
        Index("ix_ledger_entries_account_posted", "account_id", "posted_at", "id"),
    )


make_append_only(LedgerEntry)


@dataclass(frozen=True)
class AccountRef:
    """An account named by kind and, for a party's account, its party."""

    kind: str
    party_id: uuid.UUID | None = None

    @property
    def code(self) -> str:
        return f"{self.kind}:{self.party_id}" if self.party_id else self.kind


def _digest(lines: dict[str, int]) -> str:
    return hashlib.sha256(canonical_json(sorted(lines.items())).encode()).hexdigest()


def _net(lines: Iterable[tuple[AccountRef, int]]) -> tuple[dict[str, int], dict[str, AccountRef]]:
    amounts: dict[str, int] = defaultdict(int)
    refs: dict[str, AccountRef] = {}
    for ref, amount in lines:
        if not isinstance(amount, int) or isinstance(amount, bool):
            raise UnbalancedTransaction(f"amounts are integer fen, not {amount!r}")
        amounts[ref.code] += amount
        refs[ref.code] = ref
    nonzero = {code: amount for code, amount in amounts.items() if amount}
    if sum(nonzero.values()) != 0:
        raise UnbalancedTransaction(f"entries sum to {sum(nonzero.values())}, not 0: {nonzero}")
    if len(nonzero) < 2:
        raise UnbalancedTransaction("a transaction moves money between at least two accounts")
    return nonzero, refs


def _ensure_accounts(session: Session, refs: Iterable[AccountRef]) -> dict[str, uuid.UUID]:
    # Sorted, like the balance updates: concurrent first postings never deadlock.
    refs = sorted(refs, key=lambda ref: ref.code)
    rows = [{"id": uuid.uuid4(), "code": ref.code, "kind": ref.kind, "party_id": ref.party_id,
             "currency": CURRENCY, "balance": 0, "created_at": clock.now()} for ref in refs]
    session.execute(upsert_insert(session, Account).values(rows)
                    .on_conflict_do_nothing(index_elements=["code"]))
    return dict(session.execute(select(Account.code, Account.id)
                                .where(Account.code.in_([r.code for r in refs]))).tuples()
                .all())


@dataclass(frozen=True)
class Posting:
    """A transaction to post: its business key, what it is, and its lines."""

    key: str
    kind: str
    description: str
    lines: list[tuple[AccountRef, int]]


def post_transaction(session: Session, *, key: str, kind: str, description: str,
                     lines: Iterable[tuple[AccountRef, int]]) -> LedgerTransaction:
    """Post a balanced transaction once per business key (see the module's rules)."""
    post_transactions(session, [Posting(key, kind, description, list(lines))])
    return session.scalars(select(LedgerTransaction).where(LedgerTransaction.key == key)).one()


def post_transactions(session: Session, postings: list[Posting]) -> int:
    """Post many transactions in a few statements (a settlement batch): each is checked and
    keyed as `post_transaction` does; each account's balance moves once by the sum of its
    entries. Returns how many were new (the rest were replays)."""
    if not postings:
        return 0
    now = clock.now()
    checked = []
    for posting in postings:
        amounts, refs = _net(posting.lines)
        checked.append((posting, amounts, refs, _digest(amounts)))
    if len({posting.key for posting in postings}) < len(postings):
        raise UnbalancedTransaction("one business key twice in one posting")
    ids = {posting.key: uuid.uuid4() for posting in postings}
    inserted = set(session.scalars(
        upsert_insert(session, LedgerTransaction).values([
            {"id": ids[posting.key], "key": posting.key, "kind": posting.kind,
             "description": posting.description[:500], "entries_digest": digest,
             "posted_at": now} for posting, _, _, digest in checked])
        .on_conflict_do_nothing(index_elements=["key"])
        .returning(LedgerTransaction.key)))
    replays = {posting.key: digest for posting, _, _, digest in checked
               if posting.key not in inserted}
    if replays:
        for key, stored in session.execute(select(
                LedgerTransaction.key, LedgerTransaction.entries_digest)
                .where(LedgerTransaction.key.in_(list(replays)))):
            if stored != replays[key]:
                raise LedgerKeyReused(f"Ledger transaction {key!r} was posted with other "
                                      "entries.")
    new = [(posting, amounts, refs) for posting, amounts, refs, _ in checked
           if posting.key in inserted]
    if not new:
        return 0
    all_refs = {code: ref for _, _, refs in new for code, ref in refs.items()}
    accounts = _ensure_accounts(session, all_refs.values())
    deltas: dict[str, int] = defaultdict(int)
    entries = []
    for posting, amounts, _ in new:
        for code, amount in sorted(amounts.items()):
            deltas[code] += amount
            entries.append({"transaction_id": ids[posting.key], "account_id": accounts[code],
                            "amount": amount, "posted_at": now})
    # One lock order for every posting: two writers never wait for each other in a cycle.
    for code in sorted(deltas):
        if deltas[code]:
            session.execute(update(Account).where(Account.id == accounts[code])
                            .values(balance=Account.balance + deltas[code])
                            .execution_options(synchronize_session=False))
    session.execute(LedgerEntry.__table__.insert(), entries)
    return len(new)


def balances(session: Session, refs: Iterable[AccountRef], *,
             for_update: bool = False) -> dict[str, int]:
    """Cached balances by account code (0 for an account without entries yet); with
    for_update the accounts stay locked until commit, for a decision made on the balance."""
    codes = sorted(ref.code for ref in refs)
    stmt = select(Account.code, Account.balance).where(Account.code.in_(codes))
    if for_update:
        stmt = stmt.order_by(Account.code).with_for_update()
    found = dict(session.execute(stmt).tuples().all())
    return {code: found.get(code, 0) for code in codes}


@dataclass
class TrialBalance:
    total_debits: int
    total_credits: int
    accounts: list[dict[str, Any]] = field(default_factory=list)
    unbalanced_transactions: list[str] = field(default_factory=list)

    @property
    def mismatched_accounts(self) -> list[str]:
        return [a["code"] for a in self.accounts if a["balance"] != a["entries_balance"]]

    @property
    def balanced(self) -> bool:
        return (self.total_debits == self.total_credits and not self.mismatched_accounts
                and not self.unbalanced_transactions)


def trial_balance(session: Session) -> TrialBalance:
    """Debits against credits, each account's cached balance against its entries, and every
    transaction's entries summing to zero: each a GROUP BY over the entries."""
    debits = session.scalar(select(func.coalesce(func.sum(LedgerEntry.amount), 0))
                            .where(LedgerEntry.amount > 0)) or 0
    credits = -(session.scalar(select(func.coalesce(func.sum(LedgerEntry.amount), 0))
                               .where(LedgerEntry.amount < 0)) or 0)
    sums = dict(session.execute(select(LedgerEntry.account_id, func.sum(LedgerEntry.amount))
                                .group_by(LedgerEntry.account_id)).tuples().all())
    accounts = [{"code": a.code, "kind": a.kind, "party_id": a.party_id,
                 "balance": a.balance, "entries_balance": int(sums.get(a.id, 0))}
                for a in session.scalars(select(Account).order_by(Account.code))]
    unbalanced = list(session.scalars(
        select(LedgerTransaction.key).join(LedgerEntry,
                                           LedgerEntry.transaction_id == LedgerTransaction.id)
        .group_by(LedgerTransaction.key).having(func.sum(LedgerEntry.amount) != 0)))
    return TrialBalance(int(debits), int(credits), accounts, unbalanced)
