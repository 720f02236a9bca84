"""Scheduled jobs of settlement."""

from __future__ import annotations

import logging
from datetime import datetime
from zoneinfo import ZoneInfo

from flask import current_app

from app import clock
from app.scheduler import scheduled_job
from settlement import runs

log = logging.getLogger(__name__)


def todays_cutoff(at: datetime) -> datetime:
    """Midnight of the day `at` falls on, in the exchange's time zone: one run per day, so a
    second scheduler (or a rerun after a crash) resumes the same run."""
    zone = ZoneInfo(current_app.config["SCHEDULER_TIMEZONE"])
    return at.astimezone(zone).replace(hour=0, minute=0, second=0, microsecond=0)


@scheduled_job("settle_completed_orders", "cron", crontab_from="SETTLEMENT_CRON")
def settle_completed_orders_job() -> None:
    """Settle every order completed before today (SETTLEMENT_CRON, daily by default)."""
    run = runs.settle(up_to=todays_cutoff(clock.now()), actor=None)
    log.info("settlement run", extra={"run_id": str(run.id),
                                      "orders_settled": run.orders_settled})
