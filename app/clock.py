"""The one clock the service reads for "now", which tests can move."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

_offset = timedelta()


def now() -> datetime:
    """The current time, timezone-aware UTC, shifted by any offset a test has set."""
    return datetime.now(UTC) + _offset


def advance(delta: timedelta) -> None:
    """Move the clock forward (tests only: expiry and publicity periods without sleeping)."""
    global _offset
    _offset += delta


def reset() -> None:
    """Return to real time."""
    global _offset
    _offset = timedelta()
