"""Process-wide exclusive locks of the database's, held for as long as a piece of work runs.

A lock, not a lease: it cannot lapse while its holder works, and it goes when the holder's
process dies. PostgreSQL: a session-level advisory lock on a connection of its own (the
work commits on other connections). SQLite: an exclusive `flock` on a file beside the
database (a process-wide mutex for an in-memory one, which no other process can open).
Settlement runs and the evidence log's sealer each hold one.
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import OperationalError

from app.extensions import db

log = logging.getLogger(__name__)

_MEMORY_LOCKS: dict[str, threading.Lock] = {}
_MEMORY_LOCKS_GUARD = threading.Lock()
_POLL_SECONDS = 0.05


class LockTaken(Exception):
    """The lock stayed taken for as long as the caller would wait."""


@contextmanager
def exclusive_lock(name: str, key: int, wait_seconds: float | None = None,
                   taken: Callable[[], Exception] = LockTaken) -> Iterator[None]:
    """Hold the lock `name` (advisory lock `key` on PostgreSQL), waiting for it at most
    `wait_seconds` (None: as long as it takes; 0: not at all); raise `taken()` when it stays
    taken."""
    engine = db.engine
    if engine.dialect.name == "postgresql":
        with _advisory_lock(engine, key, wait_seconds, taken):
            yield
        return
    database = engine.url.database
    if not database or database == ":memory:":
        with _MEMORY_LOCKS_GUARD:
            lock = _MEMORY_LOCKS.setdefault(name, threading.Lock())
        if not lock.acquire(timeout=-1 if wait_seconds is None else wait_seconds):
            raise taken()
        try:
            yield
        finally:
            lock.release()
        return
    with _file_lock(f"{database}.{name}-lock", wait_seconds, taken):
        yield


def _take_advisory_lock(connection: Connection, key: int, wait_seconds: float | None,
                        taken: Callable[[], Exception]) -> None:
    execute = connection.execute
    if wait_seconds == 0:
        if not execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": key}).scalar():
            raise taken()
        return
    if wait_seconds is not None:
        # LOCAL: the connection goes back to the pool with its default timeout.
        execute(text(f"SET LOCAL lock_timeout = {max(1, int(wait_seconds * 1000))}"))
    try:
        execute(text("SELECT pg_advisory_lock(:key)"), {"key": key})
    except OperationalError as error:
        if getattr(error.orig, "sqlstate", None) == "55P03":  # lock_not_available
            raise taken() from None
        raise


@contextmanager
def _advisory_lock(engine: Engine, key: int, wait_seconds: float | None,
                   taken: Callable[[], Exception]) -> Iterator[None]:
    connection = engine.connect()
    try:
        _take_advisory_lock(connection, key, wait_seconds, taken)
        connection.commit()  # a session-level lock outlives the transaction that took it
        try:
            yield
        finally:
            try:
                connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})
                connection.commit()
            except Exception:
                # Whatever state the connection is in, closing it releases the lock.
                log.warning("advisory lock not released; closing its connection instead",
                            extra={"key": key})
                connection.invalidate()
    finally:
        connection.close()


@contextmanager
def _file_lock(path: str, wait_seconds: float | None,
               taken: Callable[[], Exception]) -> Iterator[None]:
    handle = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        deadline = None if wait_seconds is None else time.monotonic() + wait_seconds
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if deadline is not None and time.monotonic() >= deadline:
                    raise taken() from None
                time.sleep(_POLL_SECONDS)
        yield  # closing the file releases the lock
    finally:
        os.close(handle)
