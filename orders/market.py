"""What the market says about a listing's price: recent deals, open demands, listed supply.

The facts are gathered here, where orders and demands live, and the suggestion itself is the
listings domain's (`listings.guidance`). Each fact is one query on an index: deals on
`ix_orders_deals` (category, status, completed_at, unit_price), demands on
`ix_demands_status_category`, supply on the catalog's (status, category, unit_price).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app import clock
from app.parties.models import Actor
from listings import pricing
from listings import services as listings
from listings.certification import best_rating
from listings.guidance import Band, Guidance, MarketFacts, suggest
from listings.models import GuidePrice, Listing, ListingStatus
from orders.models import Demand, DemandStatus, Order, OrderStatus


@dataclass(frozen=True)
class RecentDeals:
    count: int
    median_unit_price: int | None


@dataclass(frozen=True)
class PriceGuidance:
    """The response of GET /listings/{id}/price-guidance."""

    listing_id: uuid.UUID
    currency: str
    guide: GuidePrice | None
    guidance: Guidance
    recent_deals: RecentDeals

    @property
    def reference_price(self) -> int:
        return self.guidance.reference_price

    @property
    def floor_price(self) -> int | None:
        return self.guide.floor_price if self.guide else None

    @property
    def ceiling_price(self) -> int | None:
        return self.guide.ceiling_price if self.guide else None

    @property
    def binding(self) -> bool:
        return bool(self.guide and self.guide.binding)

    @property
    def guide_price_id(self) -> uuid.UUID | None:
        return self.guide.id if self.guide else None

    @property
    def basis(self) -> str:
        return self.guidance.basis

    @property
    def suggested_price(self) -> int:
        return self.guidance.suggested_price

    @property
    def factors(self) -> list:
        return self.guidance.factors


def recent_deals(session: Session, category: str, since: datetime) -> RecentDeals:
    """Count and median unit price of orders completed in the category since `since`."""
    window = (Order.category == category, Order.status == OrderStatus.COMPLETED,
              Order.completed_at >= since)
    count = session.scalar(select(func.count()).select_from(Order).where(*window)) or 0
    if not count:
        return RecentDeals(0, None)
    # The middle one or two prices (the lower median's offset), their mean rounded down.
    middle = list(session.scalars(select(Order.unit_price).where(*window)
                                  .order_by(Order.unit_price)
                                  .offset((count - 1) // 2).limit(2 - count % 2)))
    return RecentDeals(count, sum(middle) // len(middle))


def open_demands(session: Session, category: str, at: datetime) -> int:
    return session.scalar(select(func.count()).select_from(Demand).where(
        Demand.status == DemandStatus.OPEN, Demand.category == category,
        Demand.expires_at > at)) or 0


def listed_supply(session: Session, category: str) -> int:
    return session.scalar(select(func.count()).select_from(Listing).where(
        Listing.status == ListingStatus.LISTED, Listing.category == category)) or 0


def price_guidance(session: Session, *, listing_id: uuid.UUID, viewer: Actor) -> PriceGuidance:
    """The suggested price of a listing the viewer may see, every factor explained."""
    listing = listings.get_listing(session, listing_id=listing_id, viewer=viewer)
    now = clock.now()
    guide = pricing.guide_for_listing(session, listing, now)
    deals = recent_deals(session, listing.category,
                         now - timedelta(days=current_app.config["DEAL_WINDOW_DAYS"]))
    scope = listing.usage_scope
    quality = listing.quality
    facts = MarketFacts(
        unit_price=listing.unit_price,
        reference_price=guide.reference_price if guide else None,
        band=Band(guide.floor_price, guide.ceiling_price, guide.binding) if guide else None,
        rating=best_rating(session, listing.id, now),
        quality_count=quality.count, quality_average=quality.average,
        open_demands=open_demands(session, listing.category, now),
        listed_supply=listed_supply(session, listing.category),
        licenses_available=listing.licenses_available, resale=scope.resale,
        derivatives=scope.derivatives, term_days=scope.term_days, territory=scope.territory,
        delivery_mode=listing.delivery_mode,
        deal_count=deals.count, deal_median=deals.median_unit_price)
    return PriceGuidance(listing_id=listing.id, currency=listing.currency, guide=guide,
                         guidance=suggest(facts), recent_deals=deals)
