"""Scheduled jobs of the credit domain."""

from __future__ import annotations

import logging

from app import clock
from app.db import unit_of_work
from app.scheduler import scheduled_job
from credit import services

log = logging.getLogger(__name__)


@scheduled_job("end_expired_publicity", "cron", hour=0, minute=30)
def end_expired_publicity_job() -> None:
    """Blacklist publicity ends by itself at its maximum (3 years)."""
    with unit_of_work() as session:
        ended = services.end_expired_publicity(session, at=clock.now())
    log.info("blacklist publicity ended", extra={"ended": ended})


@scheduled_job("recompute_credit_scores", "cron", hour=3, minute=0)
def recompute_credit_scores_job() -> None:
    """Recompute every cached score from the chain and report any difference."""
    with unit_of_work() as session:
        differences = services.recompute_all(session)
    if differences:
        log.error("cached credit scores differ from the chain",
                  extra={"differences": differences})
    else:
        log.info("cached credit scores agree with the chain")
