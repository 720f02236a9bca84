"""Scheduled jobs of the shared plumbing (the domains keep theirs in their own jobs.py)."""

from __future__ import annotations

import logging

from app.db import unit_of_work
from app.idempotency import purge_expired_keys
from app.scheduler import scheduled_job

log = logging.getLogger(__name__)


@scheduled_job("purge_idempotency_keys", "interval", hours=1)
def purge_idempotency_keys() -> None:
    """Forget Idempotency-Keys older than their TTL."""
    with unit_of_work() as session:
        purged = purge_expired_keys(session)
    log.info("idempotency keys purged", extra={"purged": purged})
