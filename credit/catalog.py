"""The catalog of credit events: what each kind of act weighs and what follows from it.

Negative points depend on the severity the recorder finds (minor < general < serious <
severe); the kind decides whether the act can be repaired, whether it belongs to the serious
categories whose publicity lasts at least a year, and which penalties come with a finding.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import timedelta


class Severity(enum.StrEnum):
    MINOR = "minor"
    GENERAL = "general"
    SERIOUS = "serious"
    SEVERE = "severe"
    POSITIVE = "positive"


class PenaltyKind(enum.StrEnum):
    WARNING = "warning"
    TRADE_RESTRICTION = "trade_restriction"
    LISTING_BAN = "listing_ban"
    DEPOSIT = "deposit"
    FINE = "fine"


# Points a finding of each severity takes off the score.
SEVERITY_POINTS = {
    Severity.MINOR: -10,
    Severity.GENERAL: -30,
    Severity.SERIOUS: -80,
    Severity.SEVERE: -200,
}

# Publicity of a blacklisting (NDRC Order No. 58): at least 3 months, 1 year for the serious
# categories, at most 3 years from the decision.
MIN_PUBLICITY = timedelta(days=91)
SERIOUS_CATEGORY_MIN_PUBLICITY = timedelta(days=365)
MAX_PUBLICITY = timedelta(days=3 * 365)


@dataclass(frozen=True)
class PenaltySpec:
    kind: PenaltyKind
    duration: timedelta | None  # None: lasts as long as the blacklisting's publicity


@dataclass(frozen=True)
class EventKind:
    code: str
    description: str
    default_severity: Severity = Severity.GENERAL  # what the service records on its own
    positive: bool = False
    points: int = 0  # positive kinds only; negative points come from the severity
    repairable: bool = True
    serious_category: bool = False
    # Penalties a finding of this kind brings at each severity (severe findings also
    # blacklist, whatever the kind).
    penalties: dict[Severity, tuple[PenaltySpec, ...]] = field(default_factory=dict)


def _warning() -> tuple[PenaltySpec, ...]:
    return (PenaltySpec(PenaltyKind.WARNING, timedelta(days=365)),)


# What a listing on the blacklist brings for its whole publicity, whether a severe finding or
# a drop to level D put the party there: it may neither trade nor list.
BLACKLIST_PENALTIES = (PenaltySpec(PenaltyKind.TRADE_RESTRICTION, None),
                       PenaltySpec(PenaltyKind.LISTING_BAN, None))
_SEVERE_PENALTIES = BLACKLIST_PENALTIES
_STANDARD = {Severity.GENERAL: _warning(), Severity.SERIOUS: _warning(),
             Severity.SEVERE: _SEVERE_PENALTIES}

CATALOG: dict[str, EventKind] = {kind.code: kind for kind in (
    EventKind("late_delivery", "Data delivered after the agreed time", Severity.MINOR,
              penalties=_STANDARD),
    EventKind("non_delivery", "Paid order never delivered", Severity.SERIOUS,
              penalties=_STANDARD),
    EventKind("lost_dispute", "A dispute decided against the party", penalties=_STANDARD),
    EventKind("payment_default", "An order left unpaid until it expired", Severity.MINOR,
              penalties=_STANDARD),
    EventKind("order_abandonment", "Unpaid orders cancelled or left to expire again and again",
              Severity.MINOR, penalties=_STANDARD),
    EventKind("prohibited_listing_attempt", "Tried to list data on the negative list",
              penalties={**_STANDARD, Severity.SERIOUS: (
                  PenaltySpec(PenaltyKind.WARNING, timedelta(days=365)),
                  PenaltySpec(PenaltyKind.LISTING_BAN, timedelta(days=90)))}),
    EventKind("data_tampering", "Delivered data altered or falsified", Severity.SEVERE,
              serious_category=True, penalties=_STANDARD),
    EventKind("resale_beyond_scope", "Resold or used data beyond the licensed scope",
              Severity.SERIOUS, serious_category=True,
              penalties={**_STANDARD, Severity.SERIOUS: (
                  PenaltySpec(PenaltyKind.WARNING, timedelta(days=365)),
                  PenaltySpec(PenaltyKind.TRADE_RESTRICTION, timedelta(days=180)))}),
    EventKind("unfair_competition", "Price collusion, fake deals or other unfair competition",
              Severity.SERIOUS, penalties=_STANDARD),
    EventKind("fraud", "Fraud in trading", Severity.SEVERE, repairable=False,
              serious_category=True, penalties=_STANDARD),
    EventKind("on_time_trade", "An order completed on time", Severity.POSITIVE, positive=True,
              points=2),
    EventKind("certification_obtained", "A product certified by a third party",
              Severity.POSITIVE, positive=True, points=10),
    EventKind("clean_year", "A year of trading without a negative finding", Severity.POSITIVE,
              positive=True, points=20),
)}


def points_for(kind: EventKind, severity: Severity) -> int:
    """The points an event of this kind and severity carries."""
    return kind.points if kind.positive else SEVERITY_POINTS[severity]


def penalties_for(kind: EventKind, severity: Severity) -> tuple[PenaltySpec, ...]:
    if kind.positive:
        return ()
    if severity is Severity.SEVERE:
        return kind.penalties.get(Severity.SEVERE, _SEVERE_PENALTIES)
    return kind.penalties.get(severity, ())


def minimum_publicity(kind: EventKind) -> timedelta:
    """The shortest publicity of a finding of this kind: 1 year for the serious categories."""
    return SERIOUS_CATEGORY_MIN_PUBLICITY if kind.serious_category else MIN_PUBLICITY


def decision_minimum_publicity(kind: EventKind, severity: Severity) -> timedelta:
    """The minimum publicity of a blacklisting decided on a finding: where one decision
    carries several penalties, the longest period applies."""
    fixed = [spec.duration for spec in penalties_for(kind, severity) if spec.duration is not None]
    return max([minimum_publicity(kind), *fixed])
