"""The sealer as a scheduled job, every LOG_SEAL_INTERVAL_SECONDS (a quarter of
LOG_MAX_MERGE_DELAY_SECONDS unless set).

The sealer's own lock keeps it one at a time; the lease only spares a second scheduler the
work, so it is short: a process that dies holding it stops sealing for 30 seconds at most.
"""

from __future__ import annotations

from datetime import timedelta

from flask import current_app

from app.log.sealer import seal
from app.scheduler import scheduled_job


@scheduled_job("seal_log", "interval", lease_ttl=timedelta(seconds=30),
               seconds_from="LOG_SEAL_INTERVAL_SECONDS")
def seal_log() -> None:
    """Integrate the entries committed since the last batch and sign a checkpoint."""
    seal(current_app.config["LOG_ORIGIN"])
