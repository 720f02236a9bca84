"""Fault injection for crash tests: with CRASH_AT="<point>:<n>" in the environment, the
process kills itself (SIGKILL: no cleanup, no rollback handler) the n-th time it reaches
`crash_point("<point>")`. Unset, as in production, it does nothing."""

from __future__ import annotations

import os
import signal
from collections import Counter

_reached: Counter[str] = Counter()


def crash_point(name: str) -> None:
    spec = os.environ.get("CRASH_AT")
    if not spec:
        return
    point, _, nth = spec.partition(":")
    if point != name:
        return
    _reached[name] += 1
    if _reached[name] == int(nth or 1):
        os.kill(os.getpid(), signal.SIGKILL)
