"""Use cases of demands: post, read, cancel, match, auto-order, expire.

Matching runs when a demand is posted, when a listing comes on the market (its fitting
auto-order demands are served at once, and its merchant can read the demands it fits),
and on a schedule for demands still open.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime, timedelta
from typing import Any

from flask import current_app
from sqlalchemy import Select, false, select
from sqlalchemy.orm import Session

from app import audit, clock
from app.errors import DomainError, Forbidden, ValidationFailed
from app.parties.models import OVERSEERS, SYSTEM, Actor, Party
from credit import services as credit
from listings import pricing
from listings import services as listings
from listings.errors import PriceOutOfBand
from listings.models import Listing, ListingStatus
from listings.signals import listing_listed
from orders import matching, services
from orders.errors import DemandNotFound, ListingNotAvailable, OutOfStock, UnpaidLimitReached
from orders.models import Demand, DemandStatus, Order

log = logging.getLogger(__name__)

# How many open auto-order demands one newly listed product serves in its own transaction;
# the scheduled run serves the rest.
SERVED_ON_LISTING = 20


def _record(session: Session, actor: Actor, action: str, demand: Demand,
            **details: Any) -> None:
    audit.record(session, actor_id=actor.id, action=action, subject=demand,
                 details={"status": demand.status.value, **details})


def post_demand(session: Session, *, buyer: Party, body: dict[str, Any]) -> Demand:
    """Post what the buyer is looking for; with auto_order the best match is ordered now."""
    credit.ensure_may_trade(session, buyer.id)
    now = clock.now()
    expires_at = body.pop("expires_at", None) or now + timedelta(
        days=current_app.config["DEMAND_TTL_DAYS"])
    if expires_at <= now:
        raise ValidationFailed("A demand must expire in the future.",
                               errors={"expires_at": ["Must be in the future."]})
    demand = Demand(buyer_id=buyer.id, expires_at=expires_at, created_at=now,
                    delivery_modes=[mode.value for mode in body.pop("delivery_modes")],
                    keywords=list(dict.fromkeys(body.pop("keywords"))), **body)
    session.add(demand)
    session.flush()
    _record(session, buyer, "demand.posted", demand)
    demand.placed_order = auto_order(session, demand, buyer, now) if demand.auto_order else None
    return demand


def can_see(demand: Demand, viewer: Actor) -> bool:
    return demand.buyer_id == viewer.id or viewer.has_role(*OVERSEERS)


def get_demand(session: Session, *, demand_id: uuid.UUID, viewer: Actor,
               for_update: bool = False) -> Demand:
    """A demand its buyer or an overseer may see (everyone else: 404)."""
    demand = session.get(Demand, demand_id, with_for_update=for_update,
                         populate_existing=for_update)
    if demand is None or not can_see(demand, viewer):
        raise DemandNotFound()
    return demand


def demands_query(*, viewer: Actor, status: DemandStatus | None = None) -> Select:
    stmt = select(Demand)
    if not viewer.has_role(*OVERSEERS):
        stmt = stmt.where(Demand.buyer_id == viewer.id)
    if status is not None:
        stmt = stmt.where(Demand.status == status)
    return stmt.order_by(Demand.created_at.desc(), Demand.id.desc())


def cancel_demand(session: Session, *, demand_id: uuid.UUID, actor: Actor) -> Demand:
    demand = get_demand(session, demand_id=demand_id, viewer=actor, for_update=True)
    if demand.buyer_id != actor.id:
        raise Forbidden("Only the demand's buyer can cancel it.")
    demand.cancel(clock.now())
    session.flush()
    _record(session, actor, "demand.cancelled", demand)
    return demand


def demand_matches(session: Session, *, demand_id: uuid.UUID,
                   viewer: Actor) -> list[matching.Match]:
    """The listings meeting every hard constraint of the demand, ranked."""
    demand = get_demand(session, demand_id=demand_id, viewer=viewer)
    if demand.buyer_id == viewer.id:
        credit.ensure_may_trade(session, viewer.id)
    return matching.matches_for(session, demand, clock.now())


def listing_matches(session: Session, *, listing_id: uuid.UUID, viewer: Actor) -> Select:
    """Open demands the listing meets (for its merchant and overseers), oldest first."""
    listing = listings.get_listing(session, listing_id=listing_id, viewer=viewer)
    if listing.merchant_id != viewer.id and not viewer.has_role(*OVERSEERS):
        raise Forbidden("Only the listing's merchant can read the demands it meets.")
    if listing.merchant_id == viewer.id:
        credit.ensure_may_trade(session, viewer.id)
    now = clock.now()
    stmt = matching.fitting_demands(listing, now)
    if not _on_the_market(session, listing, now):
        stmt = stmt.where(false())
    return stmt


def _on_the_market(session: Session, listing: Listing, at: datetime) -> bool:
    """Listed, and priced inside the binding band that applies to it (if any)."""
    if listing.status is not ListingStatus.LISTED:
        return False
    try:
        pricing.ensure_in_band(session, listing, at)
    except PriceOutOfBand:
        return False
    return True


def auto_order(session: Session, demand: Demand, buyer: Party, at: datetime) -> Order | None:
    """Order the best match still available; the demand is then matched. None if none is."""
    for match in matching.matches_for(session, demand, at):
        try:
            with session.begin_nested():
                order = services.place_order(
                    session, buyer=buyer, listing_id=match.listing_id,
                    quantity=demand.quantity, purpose=demand.purpose, beneficiaries=[])
        except (OutOfStock, ListingNotAvailable, UnpaidLimitReached):
            # Taken or withdrawn since the match was read, or the buyer already holds its
            # share of it unpaid: the next best.
            continue
        demand.fulfil_with(order.id, at)
        session.flush()
        # In the listing's trace too: the order it placed is of that listing.
        audit.record(session, actor_id=SYSTEM.id, action="demand.matched", subject=demand,
                     listing_id=match.listing_id,
                     details={"status": demand.status.value, "order_id": str(order.id),
                              "listing_id": str(match.listing_id), "score": match.score})
        return order
    return None


def serve_open_demand(session: Session, demand_id: uuid.UUID, at: datetime) -> Order | None:
    """Auto-order one open demand, unless another process holds it or closed it meanwhile."""
    demand = session.scalars(select(Demand).where(
        Demand.id == demand_id, Demand.status == DemandStatus.OPEN, Demand.expires_at > at)
        .with_for_update(skip_locked=True)).first()
    if demand is None:
        return None
    buyer = session.get(Party, demand.buyer_id)
    assert buyer is not None
    return auto_order(session, demand, buyer, at)


def open_auto_demands(session: Session, at: datetime) -> list[uuid.UUID]:
    return list(session.scalars(select(Demand.id).where(
        Demand.status == DemandStatus.OPEN, Demand.auto_order.is_(True),
        Demand.expires_at > at).order_by(Demand.created_at, Demand.id)))


def expire_demands(session: Session, *, at: datetime) -> int:
    """Open demands past their expiry close as expired; running twice changes nothing more."""
    due = list(session.scalars(select(Demand).where(
        Demand.status == DemandStatus.OPEN, Demand.expires_at <= at)
        .with_for_update(skip_locked=True)))
    for demand in due:
        demand.expire(at)
        session.flush()
        _record(session, SYSTEM, "demand.expired", demand)
    return len(due)


@listing_listed.connect
def _serve_demands_fitting(session: Session, *, listing: Listing) -> None:
    """A product came on the market: the auto-order demands it fits are served now."""
    now = clock.now()
    try:
        credit.ensure_may_trade(session, listing.merchant_id)
    except DomainError:
        return
    if not _on_the_market(session, listing, now):
        return
    fitting = session.scalars(matching.fitting_demands(listing, now)
                              .where(Demand.auto_order.is_(True))
                              .with_only_columns(Demand.id).limit(SERVED_ON_LISTING))
    for demand_id in list(fitting):
        try:
            with session.begin_nested():
                serve_open_demand(session, demand_id, now)
        except DomainError as error:
            # The listing goes on the market whatever happens to one buyer's order.
            log.warning("auto-order failed", extra={"demand_id": str(demand_id),
                                                    "error": error.code})
