"""Scheduled jobs of the licences domain."""

from __future__ import annotations

import logging

from app import clock
from app.db import unit_of_work
from app.parties.models import SYSTEM
from app.scheduler import scheduled_job
from licenses import services, tokens

log = logging.getLogger(__name__)

# Licences expired per transaction: a backlog (the first run after a long stop) is worked
# off in several, each holding its rows only while it runs.
EXPIRY_BATCH_SIZE = 500


@scheduled_job("expire_licenses", "interval", minutes=1)
def expire_licenses_job() -> None:
    """Active licences past valid_until expire; access tokens past their expiry are purged."""
    expired = 0
    while True:
        with unit_of_work() as session:
            batch = services.expire_due_licenses(session, at=clock.now(), actor=SYSTEM,
                                                 limit=EXPIRY_BATCH_SIZE)
        expired += batch
        if batch < EXPIRY_BATCH_SIZE:
            break
    with unit_of_work() as session:
        purged = tokens.purge_expired_tokens(session, before=clock.now())
    log.info("licences expired", extra={"expired": expired, "tokens_purged": purged})
