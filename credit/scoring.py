"""The credit score: a deterministic function of a party's effective events and the time.

    score = BASE_SCORE
          + Σ negative points * decay(age)        (revoked and repaired events count 0)
          + min(Σ positive points of the last year, POSITIVE_CAP)
    clamped to [0, 1000]

decay(age) = 1 under one year, 1/2 under two, 1/4 under three, 0 after (integer
arithmetic, rounded toward zero). Levels: A ≥ 750, B ≥ 650, C ≥ 500, D below.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

BASE_SCORE = 800
POSITIVE_CAP = 100
POSITIVE_WINDOW = timedelta(days=365)
MIN_SCORE, MAX_SCORE = 0, 1000
_YEAR = timedelta(days=365)
# Negative points keep this share (numerator, denominator) in each year of age.
_DECAY = ((1, 1), (1, 2), (1, 4))


class Level(enum.StrEnum):
    A = "A"
    B = "B"
    C = "C"
    D = "D"


LEVEL_FLOORS = ((Level.A, 750), (Level.B, 650), (Level.C, 500))


@dataclass(frozen=True)
class ScoredEvent:
    points: int
    occurred_at: datetime


def decayed(points: int, occurred_at: datetime, at: datetime) -> int:
    years = int((at - occurred_at) / _YEAR) if at > occurred_at else 0
    if years >= len(_DECAY):
        return 0
    numerator, denominator = _DECAY[years]
    return int(points * numerator / denominator)


def score(events: Iterable[ScoredEvent], at: datetime) -> int:
    """The score at `at` of a party whose effective events are given."""
    negative = positive = 0
    for event in events:
        if event.occurred_at > at:
            continue
        if event.points < 0:
            negative += decayed(event.points, event.occurred_at, at)
        elif at - event.occurred_at < POSITIVE_WINDOW:
            positive += event.points
    return max(MIN_SCORE, min(MAX_SCORE, BASE_SCORE + negative + min(positive, POSITIVE_CAP)))


def level(value: int) -> Level:
    for candidate, floor in LEVEL_FLOORS:
        if value >= floor:
            return candidate
    return Level.D
