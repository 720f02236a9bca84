"""Scheduled jobs of the listings domain."""

from __future__ import annotations

import logging

from app import clock
from app.db import unit_of_work
from app.parties.models import SYSTEM
from app.scheduler import scheduled_job
from listings.certification import evaluate_listings

log = logging.getLogger(__name__)


@scheduled_job("evaluate_listings", "cron", hour=2, minute=15)
def evaluate_listings_job() -> None:
    """Daily operation evaluation (运营评估): lapsed certifications, poor quality."""
    with unit_of_work() as session:
        outcome = evaluate_listings(session, actor=SYSTEM, at=clock.now())
    log.info("listings evaluated", extra=outcome)
