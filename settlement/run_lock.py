"""One settlement run at a time, whatever its cut-off.

Runs of different cut-offs share the same orders, refunds and payees: a run paying out while
another has settled an order but not yet taken its refund back pays money the refund will
claw back. So every run holds one lock from its first batch to its last payout. It is a lock
of the database's, not a lease: it cannot lapse while its run goes on, and it goes when the
process holding it dies.

The lock is `app.locks.exclusive_lock`: a PostgreSQL session-level advisory lock, or a
`flock` beside a SQLite database.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from app.errors import Conflict
from app.locks import exclusive_lock

_ADVISORY_KEY = 0x736574746C65  # "settle": names the settlement runs' advisory lock


class RunInProgress(Conflict):
    code, title = "settlement_run_in_progress", "Another settlement run is in progress"

    def __init__(self) -> None:
        super().__init__("Another settlement run is running; this one did not start. "
                         "Retry when it has finished.")


@contextmanager
def run_lock(wait_seconds: float | None = None) -> Iterator[None]:
    """Hold the settlement runs' lock, waiting for it at most `wait_seconds` (None: as long
    as it takes); RunInProgress when it stays taken."""
    with exclusive_lock("settlement", _ADVISORY_KEY, wait_seconds, RunInProgress):
        yield
