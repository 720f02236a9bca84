"""The suggested price of a listing: a basis, named bounded factors, and the binding band.

The basis is the reference price of the guide price that applies; without one, the median
unit price of recent deals in the category; without those, the listing's own price. Each
factor moves the price by a share of the basis, in basis points (1/100 of a percent), and
reports its effect in fen (rounded so that the effects so far add up to the rounded share of
their summed basis points); the effects are added, not compounded, so the basis plus the
effects is exactly the suggested price:

- certification (best valid rating): AAA +10 %, AA +6 %, A +3 %, B 0, C -5 %, none 0;
- quality_reports (average of buyers' scores): (average - 3) x 2.5 %, so -5 % .. +5 %;
- scarcity (open demands against listed supply in the category): (demands - supply) / supply
  x 10 %, within -10 % .. +10 %;
- exclusivity: a single license offered +15 %;
- resale allowed +10 %; derivatives allowed +5 %;
- term: perpetual +5 %, 365 days or more 0, shorter down to -10 % (in proportion);
- territory: cross_border +5 %;
- delivery_mode: download +3 %, api 0, sandbox -3 %;
- recent_deals (count and median unit price of orders completed in the category within
  DEAL_WINDOW_DAYS): moves toward the median by min(count, 10) x 5 % of the gap, within
  -20 % .. +20 % of the basis; 0 when the median is itself the basis;
- band: what clamping into a binding band adds or takes away (0 without one).

Every factor is monotone in its input: a better rating, better reports, more demand, less
supply, a wider license or a higher median never lower the suggestion, and clamping keeps it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from listings.models import DeliveryMode, Rating, Territory

CERTIFICATION_BPS = {Rating.AAA: 1000, Rating.AA: 600, Rating.A: 300, Rating.B: 0,
                     Rating.C: -500}
DELIVERY_BPS = {DeliveryMode.DOWNLOAD: 300, DeliveryMode.API: 0, DeliveryMode.SANDBOX: -300}
SCARCITY_LIMIT_BPS = 1000
DEALS_LIMIT_BPS = 2000
DEALS_FULL_WEIGHT = 10  # deals at which recent prices pull hardest (half the gap)


@dataclass(frozen=True)
class Band:
    floor_price: int
    ceiling_price: int
    binding: bool


@dataclass(frozen=True)
class MarketFacts:
    """Everything the suggestion depends on: the same facts give the same price."""

    unit_price: int
    reference_price: int | None
    band: Band | None
    rating: Rating | None
    quality_count: int
    quality_average: float | None
    open_demands: int
    listed_supply: int
    licenses_available: int | None
    resale: bool
    derivatives: bool
    term_days: int | None
    territory: Territory
    delivery_mode: DeliveryMode
    deal_count: int
    deal_median: int | None


@dataclass(frozen=True)
class Factor:
    name: str
    value: str
    effect: int


@dataclass(frozen=True)
class Guidance:
    basis: str
    reference_price: int
    suggested_price: int
    factors: list[Factor] = field(default_factory=list)


def _share(basis: int, bps: int) -> int:
    """bps/10000 of the basis, rounded half up (monotone in bps)."""
    return (basis * bps + 5000) // 10000


def _running_share(basis: int) -> Callable[[int], int]:
    """Shares of the basis taken one after another, each rounded so that those so far add up
    to the rounded share of their total. Rounded one by one, several negative shares could
    each lose a fen when the basis grows by one fen, so a higher deals median (when it is the
    basis) could lower the suggestion; this way the sum of the shares, and the suggestion,
    are monotone in the basis and in every factor's bps."""
    total = 0

    def share(bps: int) -> int:
        nonlocal total
        before = _share(basis, total)
        total += bps
        return _share(basis, total) - before

    return share


def _scarcity_bps(demands: int, supply: int) -> int:
    raw = (demands - supply) * 1000 // max(supply, 1)
    return max(-SCARCITY_LIMIT_BPS, min(SCARCITY_LIMIT_BPS, raw))


def _term_bps(term_days: int | None) -> int:
    if term_days is None:
        return 500
    return 0 if term_days >= 365 else -((365 - term_days) * 1000 // 365)


def _deals_effect(basis: int, count: int, median: int | None) -> int:
    if not count or median is None:
        return 0
    pull = (median - basis) * min(count, DEALS_FULL_WEIGHT) * 5 // 100
    limit = _share(basis, DEALS_LIMIT_BPS)
    return max(-limit, min(limit, pull))


def suggest(facts: MarketFacts) -> Guidance:
    """The suggested unit price with every factor's effect (see the module's table)."""
    if facts.reference_price is not None:
        basis_name, basis = "guide_price", facts.reference_price
    elif facts.deal_median is not None:
        basis_name, basis = "recent_deals", facts.deal_median
    else:
        basis_name, basis = "listing_price", facts.unit_price

    quality_bps = 0 if facts.quality_average is None else round(
        (facts.quality_average - 3) * 250)
    share = _running_share(basis)  # in the order of the factors below
    factors = [
        Factor("certification", facts.rating.value if facts.rating else "none",
               share(CERTIFICATION_BPS[facts.rating] if facts.rating else 0)),
        Factor("quality_reports",
               f"{facts.quality_average}/5 from {facts.quality_count}"
               if facts.quality_average is not None else "none",
               share(quality_bps)),
        Factor("scarcity", f"{facts.open_demands} open demands / {facts.listed_supply} listed",
               share(_scarcity_bps(facts.open_demands, facts.listed_supply))),
        Factor("exclusivity", "single license" if facts.licenses_available == 1
               else "unlimited licenses" if facts.licenses_available is None
               else f"{facts.licenses_available} licenses left",
               share(1500 if facts.licenses_available == 1 else 0)),
        Factor("resale", "allowed" if facts.resale else "not allowed",
               share(1000 if facts.resale else 0)),
        Factor("derivatives", "allowed" if facts.derivatives else "not allowed",
               share(500 if facts.derivatives else 0)),
        Factor("term", "perpetual" if facts.term_days is None else f"{facts.term_days} days",
               share(_term_bps(facts.term_days))),
        Factor("territory", facts.territory.value,
               share(500 if facts.territory is Territory.CROSS_BORDER else 0)),
        Factor("delivery_mode", facts.delivery_mode.value,
               share(DELIVERY_BPS[facts.delivery_mode])),
        Factor("recent_deals",
               f"{facts.deal_count} deals, median {facts.deal_median}" if facts.deal_count
               else "no recent deals",
               0 if basis_name == "recent_deals"
               else _deals_effect(basis, facts.deal_count, facts.deal_median)),
    ]
    # The negative shares add up to at most -53 %: the unclamped price stays positive.
    unclamped = basis + sum(f.effect for f in factors)
    suggested = unclamped
    band = facts.band
    if band is not None and band.binding:
        suggested = max(band.floor_price, min(band.ceiling_price, unclamped))
    factors.append(Factor("band", f"binding {band.floor_price}-{band.ceiling_price}"
                          if band is not None and band.binding else "no binding band",
                          suggested - unclamped))
    return Guidance(basis=basis_name, reference_price=basis, suggested_price=suggested,
                    factors=factors)
