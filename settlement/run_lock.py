"""One settlement run at a time, whatever its cut-off.

Runs of different cut-offs share the same orders, refunds and payees: a run paying out while
another has settled an order but not yet taken its refund back pays money the refund will
claw back. So every run holds one lock from its first batch to its last payout. It is a lock
of the database's, not a lease: it cannot lapse while its run goes on, and it goes when the
process holding it dies.

PostgreSQL: a session-level advisory lock on a connection of its own (the run's batches
commit on other connections). SQLite: an exclusive `flock` on a file beside the database
(a process-wide mutex for an in-memory one, which no other process can open).
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError

from app.errors import Conflict
from app.extensions import db

log = logging.getLogger(__name__)

_ADVISORY_KEY = 0x736574746C65  # "settle": names the settlement runs' advisory lock
_MEMORY_LOCK = threading.Lock()
_POLL_SECONDS = 0.05


class RunInProgress(Conflict):
    code, title = "settlement_run_in_progress", "Another settlement run is in progress"

    def __init__(self) -> None:
        super().__init__("Another settlement run is running; this one did not start. "
                         "Retry when it has finished.")


@contextmanager
def run_lock(wait_seconds: float | None = None) -> Iterator[None]:
    """Hold the settlement runs' lock, waiting for it at most `wait_seconds` (None: as long
    as it takes); RunInProgress when it stays taken."""
    engine = db.engine
    if engine.dialect.name == "postgresql":
        with _advisory_lock(engine, wait_seconds):
            yield
        return
    database = engine.url.database
    if not database or database == ":memory:":
        if not _MEMORY_LOCK.acquire(timeout=-1 if wait_seconds is None else wait_seconds):
            raise RunInProgress()
        try:
            yield
        finally:
            _MEMORY_LOCK.release()
        return
    with _file_lock(f"{database}.settlement-lock", wait_seconds):
        yield


@contextmanager
def _advisory_lock(engine: Engine, wait_seconds: float | None) -> Iterator[None]:
    connection = engine.connect()
    try:
        if wait_seconds is not None:
            # LOCAL: the connection goes back to the pool with its default timeout.
            connection.execute(text(f"SET LOCAL lock_timeout = {max(1, int(wait_seconds * 1000))}"))
        try:
            connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": _ADVISORY_KEY})
        except OperationalError as error:
            if getattr(error.orig, "sqlstate", None) == "55P03":  # lock_not_available
                raise RunInProgress() from None
            raise
        connection.commit()  # a session-level lock outlives the transaction that took it
        try:
            yield
        finally:
            try:
                connection.execute(text("SELECT pg_advisory_unlock(:key)"),
                                   {"key": _ADVISORY_KEY})
                connection.commit()
            except Exception:
                # Whatever state the connection is in, closing it releases the lock.
                log.warning("settlement lock not released; closing its connection instead")
                connection.invalidate()
    finally:
        connection.close()


@contextmanager
def _file_lock(path: str, wait_seconds: float | None) -> Iterator[None]:
    handle = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        deadline = None if wait_seconds is None else time.monotonic() + wait_seconds
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if deadline is not None and time.monotonic() >= deadline:
                    raise RunInProgress() from None
                time.sleep(_POLL_SECONDS)
        yield  # closing the file releases the lock
    finally:
        os.close(handle)
