"""The matching engine (供需匹配): which listings meet a demand, and in what order.

Hard constraints — a listing failing any one is never a match — are one SQL query on
indexed columns (status, category, then price):
- the listing is `listed`, in the demand's category, priced in its currency, not the buyer's;
- its classification is not above the demand's `max_classification`;
- its delivery mode is one of the demand's `delivery_modes`;
- the demand's purpose is among its usage-scope purposes;
- territory: a `cross_border` demand needs a listing whose scope allows cross-border use;
  a `domestic` demand accepts either (a cross-border license covers domestic use too);
- its unit price is at most the demand's `max_unit_price`, and inside the binding guide band
  that applies to it, if any (`listings.pricing`);
- it has at least the demand's quantity of licenses left (or unlimited);
- neither the merchant nor the buyer is under a trade restriction.

Ranking: a score out of 100, the sum of five parts, each explained in `reasons`:
- price (up to 40): 40 * (budget - price) / budget, the further under budget the better;
- merchant credit (up to 10): `credit.RANKING_BOOST` by level (A 10, B 5, C and D 0);
- certification (up to 20): the best valid rating, AAA 20, AA 15, A 10, B 5, C 0, none 0;
- quality (up to 15): 15 * (average - 1) / 4 over buyers' quality reports, none 0;
- keywords (up to 15): 15 * the share of the demand's keywords found in the listing's title,
  description or tags (ignoring case); a demand without keywords scores 0 here for all.
Each part is rounded to whole points. Ties go to the lower price, then the listing listed
first, then the lower id, so the same data always ranks the same way.

Only the `MATCH_CANDIDATES` cheapest listings that pass every hard constraint are scored
(read in index order), so one demand costs the same against 10,000 listings or 100,000.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from flask import current_app
from sqlalchemy import Row, Select, select, text
from sqlalchemy.orm import Session

from app.db import JsonArrayContains
from credit import services as credit
from credit.scoring import Level
from listings import pricing
from listings.certification import best_rating_of, rating_of_rank
from listings.models import (
    Classification,
    Listing,
    ListingStatus,
    QualitySummary,
    Rating,
    Territory,
)
from orders.models import Demand, DemandStatus

PRICE_POINTS = 40
CERTIFICATION_POINTS = {Rating.AAA: 20, Rating.AA: 15, Rating.A: 10, Rating.B: 5, Rating.C: 0}
QUALITY_POINTS = 15
KEYWORD_POINTS = 15

_listing = Listing.__table__.c
_CUSTOM_PLANS = text("SET LOCAL plan_cache_mode = force_custom_plan")


@dataclass(frozen=True)
class Match:
    """A listing that meets every hard constraint of a demand, with its score explained."""

    listing_id: uuid.UUID
    merchant_id: uuid.UUID
    title: str
    unit_price: int
    currency: str
    score: int
    reasons: list[str] = field(default_factory=list)
    listed_at: datetime | None = None


def classifications_up_to(maximum: Classification) -> list[Classification]:
    return [c for c in Classification if c.rank <= maximum.rank]


# What scoring reads of a candidate: not whole listings (their JSON and composite columns
# would cost more to load than the scoring itself).
_CANDIDATE_COLUMNS = (Listing.id, Listing.merchant_id, Listing.title, Listing.description,
                      Listing.tags, Listing.unit_price, Listing.currency, Listing.listed_at,
                      Listing.quality_reports_count, Listing.quality_score_total)


def candidates(session: Session, demand: Demand, at: datetime, limit: int) -> Select:
    """The cheapest `limit` listings that meet every hard constraint of the demand, each
    with its merchant's credit level and its best valid rating (rank) for scoring."""
    stmt = select(*_CANDIDATE_COLUMNS,
                  credit.credit_level_of(Listing.merchant_id).label("merchant_level"),
                  best_rating_of(Listing.id, at).label("best_rating_rank")).where(
        *pricing.within_binding_bands(session, demand.category, at),
        Listing.status == ListingStatus.LISTED,
        Listing.category == demand.category,
        Listing.currency == demand.currency,
        Listing.merchant_id != demand.buyer_id,
        Listing.classification.in_(classifications_up_to(demand.max_classification)),
        Listing.delivery_mode.in_(demand.delivery_modes),
        JsonArrayContains(_listing.usage_purposes, demand.purpose),
        Listing.unit_price <= demand.max_unit_price,
        (Listing.licenses_available.is_(None)
         | (Listing.licenses_available >= demand.quantity)),
        ~credit.trade_restricted(Listing.merchant_id, at),
        ~credit.trade_restricted(demand.buyer_id, at),
    )
    if demand.territory is Territory.CROSS_BORDER:
        stmt = stmt.where(_listing.usage_territory == Territory.CROSS_BORDER.value)
    return stmt.order_by(Listing.unit_price, Listing.listed_at, Listing.id).limit(limit)


def score(demand: Demand, listing: Row, level: Level,
          rating: Rating | None) -> tuple[int, list[str]]:
    """The listing's score for the demand (0-100) and the reason for each part; `listing` is
    a candidate row (or a Listing)."""
    parts: list[tuple[int, str]] = []

    budget = demand.max_unit_price
    price = round(PRICE_POINTS * (budget - listing.unit_price) / budget) if budget else 0
    parts.append((price, f"price {listing.unit_price} of a budget of {budget}"))

    boost = credit.RANKING_BOOST[level]
    parts.append((boost, f"merchant credit level {level.value}"))

    if rating is None:
        parts.append((0, "no valid certification"))
    else:
        parts.append((CERTIFICATION_POINTS[rating], f"certified {rating.value}"))

    quality = QualitySummary.of(listing.quality_reports_count, listing.quality_score_total)
    if quality.average is None:
        parts.append((0, "no quality reports yet"))
    else:
        points = round(QUALITY_POINTS * (quality.average - 1) / 4)
        parts.append((points, f"quality {quality.average}/5 from {quality.count} report(s)"))

    if demand.keywords:
        found = keywords_found(demand.keywords, listing)
        points = round(KEYWORD_POINTS * len(found) / len(demand.keywords))
        parts.append((points, f"keywords {len(found)}/{len(demand.keywords)}"
                      + (f": {', '.join(found)}" if found else "")))
    else:
        parts.append((0, "no keywords asked"))

    return sum(p for p, _ in parts), [f"{text} (+{points})" for points, text in parts]


def keywords_found(keywords: Sequence[str], listing: Row) -> list[str]:
    text = " ".join([listing.title, listing.description, *listing.tags]).casefold()
    return [word for word in keywords if word.casefold() in text]


def rank(demand: Demand, listings: Sequence[Row], at: datetime) -> list[Match]:
    """Score the candidate rows for the demand, best first (ties broken as documented)."""
    matches = []
    for listing in listings:
        points, reasons = score(demand, listing, credit.level_or_base(listing.merchant_level),
                                rating_of_rank(listing.best_rating_rank))
        matches.append(Match(listing_id=listing.id, merchant_id=listing.merchant_id,
                             title=listing.title, unit_price=listing.unit_price,
                             currency=listing.currency, score=points, reasons=reasons,
                             listed_at=listing.listed_at))
    return sorted(matches, key=lambda m: (-m.score, m.unit_price, m.listed_at or at,
                                          m.listing_id))


def matches_for(session: Session, demand: Demand, at: datetime) -> list[Match]:
    """The listings meeting every hard constraint of the demand, ranked best first."""
    limit = current_app.config["MATCH_CANDIDATES"]
    if session.get_bind().dialect.name == "postgresql":
        # Planned for this demand's values, not once for any: a generic plan cannot tell how
        # many listings a category, budget and purpose keep, guesses a handful, and reads and
        # sorts every listing of the category under the budget instead of the cheapest few
        # hundred in index order (2x slower at 100,000 listings).
        session.execute(_CUSTOM_PLANS)
    return rank(demand, list(session.execute(candidates(session, demand, at, limit))), at)


def fitting_demands(listing: Listing, at: datetime) -> Select:
    """Open demands the listing meets every hard constraint of, oldest first."""
    scope = listing.usage_scope
    stmt = select(Demand).where(
        Demand.status == DemandStatus.OPEN,
        Demand.expires_at > at,
        Demand.category == listing.category,
        Demand.currency == listing.currency,
        Demand.buyer_id != listing.merchant_id,
        Demand.max_classification.in_(
            [c for c in Classification if c.rank >= listing.classification.rank]),
        JsonArrayContains(Demand.delivery_modes, listing.delivery_mode.value),
        Demand.purpose.in_(scope.purposes),
        Demand.max_unit_price >= listing.unit_price,
        ~credit.trade_restricted(Demand.buyer_id, at),
    )
    if scope.territory is Territory.DOMESTIC:
        stmt = stmt.where(Demand.territory == Territory.DOMESTIC)
    if listing.licenses_available is not None:
        stmt = stmt.where(Demand.quantity <= listing.licenses_available)
    return stmt.order_by(Demand.created_at, Demand.id)
