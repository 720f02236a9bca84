"""Background work that loses a deadlock on PostgreSQL runs again from a clean transaction."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from app.db import lost_a_race, retrying
from app.extensions import db
from app.parties.models import Party, Role
from tests.factories import make_member


class _DatabaseError(Exception):
    def __init__(self, sqlstate: str) -> None:
        super().__init__(sqlstate)
        self.sqlstate = sqlstate


@pytest.mark.postgres_only
def test_two_transactions_locking_in_opposite_orders_both_finish(app: Flask) -> None:
    with app.app_context():
        first, second = make_member(Role.MERCHANT).id, make_member(Role.MERCHANT).id
        db.session.remove()
    both_hold_one = threading.Barrier(2, timeout=10)
    attempts: list[str] = []
    errors: list[BaseException] = []

    def rename_in_order(name: str, order: list[Any]) -> None:
        def work(session: Session) -> None:
            attempts.append(name)
            for n, party_id in enumerate(order):
                session.execute(select(Party).where(Party.id == party_id).with_for_update())
                if n == 0 and attempts.count(name) == 1:
                    both_hold_one.wait()  # each holds its first row: the next lock is a cycle
                session.execute(update(Party).where(Party.id == party_id)
                                .values(name=f"{name} Co."))

        with app.app_context():
            try:
                retrying(work)
            except BaseException as error:  # reported below, in the test's thread
                errors.append(error)
            finally:
                db.session.remove()

    threads = [threading.Thread(target=rename_in_order, args=("Forward", [first, second])),
               threading.Thread(target=rename_in_order, args=("Backward", [second, first]))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert errors == []
    assert len(attempts) == 3  # PostgreSQL broke the cycle by failing one: it ran again
    loser = next(name for name in attempts if attempts.count(name) == 2)
    with app.app_context():
        names = set(db.session.scalars(select(Party.name).where(
            Party.id.in_([first, second]))))
        db.session.remove()
    assert names == {f"{loser} Co."}  # the one that ran again wrote last, wholly


def test_other_database_errors_are_not_retried(app: Flask) -> None:
    runs: list[int] = []

    def work(session: Session) -> None:
        runs.append(1)
        raise OperationalError("SELECT 1", {}, _DatabaseError("57P01"))  # admin shutdown

    with app.app_context(), pytest.raises(OperationalError):
        retrying(work)
    assert runs == [1]
    assert lost_a_race(OperationalError("SELECT 1", {}, _DatabaseError("40P01")))
    assert lost_a_race(OperationalError("SELECT 1", {}, _DatabaseError("40001")))


def test_a_race_lost_every_time_gives_up_after_the_last_attempt(app: Flask) -> None:
    runs: list[int] = []

    def work(session: Session) -> None:
        runs.append(1)
        raise OperationalError("SELECT 1", {}, _DatabaseError("40P01"))

    with app.app_context(), pytest.raises(OperationalError):
        retrying(work, attempts=3)
    assert runs == [1, 1, 1]
