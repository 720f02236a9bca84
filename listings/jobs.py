"""Scheduled jobs of the listings domain."""

from __future__ import annotations

import logging
from collections import Counter
from datetime import datetime

from app import clock
from app.db import unit_of_work
from app.parties.models import SYSTEM, Actor
from app.scheduler import scheduled_job
from listings.certification import Evaluation, evaluate_listing, evaluation_candidates

log = logging.getLogger(__name__)


def evaluate_listings(*, actor: Actor, at: datetime) -> dict[str, int]:
    """Evaluate every candidate listing, each in its own unit of work; counts by outcome.

    One transaction per listing: a listing that fails (a concurrent change, a broken row)
    rolls back alone and is logged, the others keep what was done to them, and the next run
    takes it again (each evaluation re-checks under its lock, so reruns change nothing more).
    Call it outside any open unit of work, or the units would join that one.
    """
    with unit_of_work() as session:
        candidates = evaluation_candidates(session, at=at)
    outcome: Counter[str] = Counter()
    for listing_id in candidates:
        try:
            with unit_of_work() as session:
                done = evaluate_listing(session, listing_id=listing_id, actor=actor, at=at)
        except Exception:
            log.exception("listing evaluation failed", extra={"listing_id": str(listing_id)})
            outcome["failed"] += 1
            continue
        outcome[done.value] += 1
    return {"suspended": outcome[Evaluation.SUSPENDED.value],
            "flagged": outcome[Evaluation.FLAGGED.value],
            "skipped": outcome[Evaluation.SKIPPED.value],
            "failed": outcome["failed"]}


@scheduled_job("evaluate_listings", "cron", hour=2, minute=15)
def evaluate_listings_job() -> None:
    """Daily operation evaluation (运营评估): lapsed certifications, poor quality."""
    outcome = evaluate_listings(actor=SYSTEM, at=clock.now())
    log.info("listings evaluated", extra=outcome)
