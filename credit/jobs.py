"""Scheduled jobs of the credit domain."""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta

from app import clock
from app.db import unit_of_work
from app.scheduler import scheduled_job
from credit import blacklisting, recompute

log = logging.getLogger(__name__)


@scheduled_job("end_expired_publicity", "cron", hour=0, minute=30)
def end_expired_publicity_job() -> None:
    """Blacklist publicity ends by itself at its maximum (3 years)."""
    with unit_of_work() as session:
        ended = blacklisting.end_expired_publicity(session, at=clock.now())
    log.info("blacklist publicity ended", extra={"ended": ended})


# A pass over every party's entries outlasts the default lease on a large exchange; a second
# runner after expiry would still be harmless (each batch locks its profiles).
@scheduled_job("recompute_credit_scores", "cron", hour=3, minute=0, lease_ttl=timedelta(hours=1))
def recompute_credit_scores_job() -> None:
    """Check every cached score against the ledger, then refresh it at the present."""
    differences: list[dict] = []
    refreshed = 0
    after: uuid.UUID | None = None
    while True:
        # One transaction per batch: its profiles stay locked only while it runs.
        with unit_of_work() as session:
            batch = recompute.recompute_and_refresh_batch(
                session, after=after, batch_size=recompute.BATCH_SIZE)
        differences += batch.differences
        refreshed += batch.refreshed
        if batch.last_party_id is None:
            break
        after = batch.last_party_id
    if differences:
        log.error("cached credit scores differ from the ledger",
                  extra={"differences": differences})
    else:
        log.info("cached credit scores agree with the ledger")
    log.info("credit profiles refreshed", extra={"refreshed": refreshed})
