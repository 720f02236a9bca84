"""A settlement run from start to finish: open, settle in batches, take back refunds, close,
pay out, all under the one lock of settlement runs (`settlement.run_lock`). Batches commit
one by one (many orders each), so a process killed part-way leaves whole batches behind, and
the next run (of any cut-off) finishes the work."""

from __future__ import annotations

import logging
import uuid
from datetime import datetime
from typing import Any

from flask import current_app
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.db import retrying, unit_of_work
from app.faults import crash_point
from app.parties.models import Actor
from settlement import payouts
from settlement.models import RunStatus, SettlementRun
from settlement.run_lock import run_lock
from settlement.services import finish_run, open_run, reverse_refunds, settle_batch

log = logging.getLogger(__name__)

RETRIES = 5


def settle(*, up_to: datetime, actor: Actor | None,
           wait_seconds: float | None = None) -> SettlementRun:
    """Run (or finish) the settlement of `up_to`: batches, then refunds, then close, then
    pay out. One run at a time, whatever the cut-offs: the run waits for the lock at most
    `wait_seconds` (None: as long as it takes), else RunInProgress. Holding it, it first
    finishes any run that another left `running` (its process died, or it failed), so no
    run stays half done and none pays out while another is half done."""
    with run_lock(wait_seconds):
        for left in _left_running(up_to):
            _settle(left, actor)
        return _settle(up_to, actor)


def _left_running(up_to: datetime) -> list[datetime]:
    with unit_of_work() as session:
        return list(session.scalars(select(SettlementRun.up_to).where(
            SettlementRun.status == RunStatus.RUNNING, SettlementRun.up_to != up_to)
            .order_by(SettlementRun.up_to)))


def _settle(up_to: datetime, actor: Actor | None) -> SettlementRun:
    size = current_app.config["SETTLEMENT_BATCH_SIZE"]
    with unit_of_work() as session:
        run_id = open_run(session, up_to=up_to, actor=actor).id
    _repeat(lambda session: settle_batch(session, run_id, up_to, size, actor),
            crash="settlement.batch_committed")
    _repeat(lambda session: _reverse_counted(session, run_id, size, actor))
    crash_point("settlement.before_finish")
    with unit_of_work() as session:
        finish_run(session, run_id, actor)
    payouts.pay_out(run_id)
    with unit_of_work() as session:
        run = session.get(SettlementRun, run_id)
        assert run is not None
        return run


def _reverse_counted(session: Session, run_id: uuid.UUID, size: int,
                     actor: Actor | None) -> int:
    found, done = reverse_refunds(session, run_id, size, actor)
    if done:
        session.execute(update(SettlementRun).where(SettlementRun.id == run_id).values(
            refunds_reversed=SettlementRun.refunds_reversed + done))
    return found


def _repeat(batch: Any, crash: str | None = None) -> None:
    """Run transactions of `batch` until one finds nothing left; a batch that collided with
    another run's (the same order settled meanwhile) rolls back and is tried again, as one
    that lost a deadlock is (a refund reversal locks payees in refund order, a payout in
    party order)."""
    collisions = 0
    while True:
        try:
            if not retrying(batch):
                return
            if crash:
                crash_point(crash)
        except IntegrityError:
            collisions += 1
            if collisions > RETRIES:
                raise
            log.warning("settlement batch collided with another run; retrying")
