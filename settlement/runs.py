"""A settlement run from start to finish: open, settle in batches, take back refunds, close,
pay out. Batches commit one by one (many orders each), so a process killed part-way leaves
whole batches behind, and the next run of the same cut-off finishes the work."""

from __future__ import annotations

import logging
import uuid
from datetime import datetime
from typing import Any

from flask import current_app
from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.db import retrying, unit_of_work
from app.faults import crash_point
from app.parties.models import Actor
from settlement import payouts
from settlement.models import SettlementRun
from settlement.services import finish_run, open_run, reverse_refunds, settle_batch

log = logging.getLogger(__name__)

RETRIES = 5


def settle(*, up_to: datetime, actor: Actor | None) -> SettlementRun:
    """Run (or finish) the settlement of `up_to`: batches, then refunds, then close."""
    size = current_app.config["SETTLEMENT_BATCH_SIZE"]
    with unit_of_work() as session:
        run_id = open_run(session, up_to=up_to, actor=actor).id
    _repeat(lambda session: settle_batch(session, run_id, up_to, size),
            crash="settlement.batch_committed")
    _repeat(lambda session: _reverse_counted(session, run_id, size))
    crash_point("settlement.before_finish")
    with unit_of_work() as session:
        finish_run(session, run_id, actor)
    payouts.pay_out(run_id)
    with unit_of_work() as session:
        run = session.get(SettlementRun, run_id)
        assert run is not None
        return run


def _reverse_counted(session: Session, run_id: uuid.UUID, size: int) -> int:
    done = reverse_refunds(session, run_id, size)
    if done:
        session.execute(update(SettlementRun).where(SettlementRun.id == run_id).values(
            refunds_reversed=SettlementRun.refunds_reversed + done))
    return done


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
