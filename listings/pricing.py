"""Guided pricing (指导定价): guide prices, their bands and where the bands are enforced.

A guide price sets, for a category (optionally narrowed to a classification and a price
model), a reference price and a band: floor = reference x (100 - floor_pct) / 100 rounded up,
ceiling = reference x (100 + ceiling_pct) / 100 rounded down; both edges are inside.

Which guide price applies to a listing at a time: of those in force for its category whose
scope admits its classification and price model, the narrowest (classification counts more
than price model), then the latest effective date.

Versions: a guide price without an end (effective_to) is superseded by a newer one for the
same scope from the newer one's effective date; the old row stays for the history. Two guide
prices of one scope, either of them binding, may not overlap otherwise: the same start, or a
start inside the other's period with a set end, is refused (409). Non-binding ones may; the
one set last applies.

A binding band is enforced at submission, review approval and relisting (422
`price_out_of_band`), when an order is priced, and by the matching engine; a non-binding one
only leaves a warning on the listing. Public data under authorized operation needs a binding
guide price for its category, or it goes to an operator's review.

The suggested price lives in `listings.guidance`.
"""

from __future__ import annotations

import zlib
from datetime import datetime
from typing import Any

from sqlalchemy import BindParameter, ColumnElement, Select, bindparam, or_, select, text, update
from sqlalchemy.orm import Session

from app import audit, clock
from app.errors import ValidationFailed
from app.parties.models import Actor
from listings.errors import OverlappingGuidePrice, PriceOutOfBand
from listings.models import Classification, GuidePrice, Listing, ListingStatus, PriceModel


def _in_force(at: datetime | BindParameter[datetime]) -> list[ColumnElement[bool]]:
    return [GuidePrice.effective_from <= at,
            or_(GuidePrice.effective_to.is_(None), GuidePrice.effective_to > at),
            or_(GuidePrice.superseded_at.is_(None), GuidePrice.superseded_at > at)]


def _same_scope(category: str, classification: Classification | None,
                price_model: PriceModel | None) -> list[ColumnElement[bool]]:
    return [GuidePrice.category == category,
            GuidePrice.classification.is_(None) if classification is None
            else GuidePrice.classification == classification,
            GuidePrice.price_model.is_(None) if price_model is None
            else GuidePrice.price_model == price_model]


def _lock_scope(session: Session, category: str) -> None:
    """Serialize guide-price changes of one category (PostgreSQL; SQLite writes one at a
    time anyway), so two concurrent overlapping bands cannot both pass the check."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"),
                        {"key": zlib.crc32(f"guide_prices:{category}".encode())})


def set_guide_price(session: Session, *, actor: Actor, body: dict[str, Any]) -> GuidePrice:
    """Record a new guide price, superseding in time order within its scope."""
    now = clock.now()
    starts = body.pop("effective_from", None) or now
    ends = body.get("effective_to")
    if ends is not None and ends <= starts:
        raise ValidationFailed("effective_to must be after effective_from.",
                               errors={"effective_to": ["Must be after effective_from."]})
    guide = GuidePrice(**body, effective_from=starts, set_by=actor.id, created_at=now)
    _lock_scope(session, guide.category)
    others = list(session.scalars(select(GuidePrice).where(
        *_same_scope(guide.category, guide.classification, guide.price_model),
        or_(GuidePrice.superseded_at.is_(None), GuidePrice.superseded_at > starts))
        .with_for_update()))
    clash = next((other for other in others if _clashes(guide, other)), None)
    if clash is not None:
        raise OverlappingGuidePrice(
            f"Overlaps the {clash.describe()} in force from "
            f"{clash.effective_from.isoformat()}.", guide_price_id=str(clash.id))
    session.add(guide)
    session.flush()
    for older in others:
        if older.effective_from < starts and (older.ends_at is None or older.ends_at > starts):
            _supersede(session, actor, older, by=guide)
    later = [other for other in others if other.effective_from > starts
             and (guide.ends_at is None or guide.ends_at > other.effective_from)]
    if later:
        _supersede(session, actor, guide, by=min(later, key=lambda g: g.effective_from))
    session.flush()
    if guide.binding:
        _warn_listed_outside(session, guide)
    audit.record(session, actor_id=actor.id, action="guide_price.set", subject=guide,
                 details={"category": guide.category, "reference_price": guide.reference_price,
                          "floor_price": guide.floor_price,
                          "ceiling_price": guide.ceiling_price, "binding": guide.binding})
    return guide


def _warn_listed_outside(session: Session, guide: GuidePrice) -> None:
    """Listed products a new binding band excludes stay listed, but cannot be ordered or
    matched from its date: their merchants see why on the listing."""
    stmt = update(Listing).where(
        Listing.status == ListingStatus.LISTED, Listing.category == guide.category,
        ~Listing.unit_price.between(guide.floor_price, guide.ceiling_price))
    if guide.classification is not None:
        stmt = stmt.where(Listing.classification == guide.classification)
    if guide.price_model is not None:
        stmt = stmt.where(Listing.price_model == guide.price_model)
    session.execute(stmt.values(price_warning=(
        f"From {guide.effective_from.isoformat()} the price is outside the {guide.describe()}: "
        "orders and matching refuse it until it is listed again in the band."))
        .execution_options(synchronize_session=False))


def _supersede(session: Session, actor: Actor, guide: GuidePrice, *, by: GuidePrice) -> None:
    guide.superseded_at, guide.superseded_by = by.effective_from, by.id
    session.flush()
    audit.record(session, actor_id=actor.id, action="guide_price.superseded", subject=guide,
                 details={"superseded_by": str(by.id), "at": by.effective_from.isoformat()})


def _clashes(new: GuidePrice, other: GuidePrice) -> bool:
    """Two guide prices of one scope that would both be in force, one of them binding: the
    same start, or a set end past the other's start (an open end is superseded instead)."""
    if not (new.binding or other.binding):
        return False
    if new.effective_from == other.effective_from:
        return True
    first, second = sorted((new, other), key=lambda g: g.effective_from)
    return first.effective_to is not None and first.effective_to > second.effective_from


def guide_prices_query(*, category: str | None = None, in_force_at: datetime | None = None
                       ) -> Select:
    """Guide prices, history included unless in_force_at is given; newest first."""
    stmt = select(GuidePrice)
    if category:
        stmt = stmt.where(GuidePrice.category == category)
    if in_force_at is not None:
        stmt = stmt.where(*_in_force(in_force_at))
    return stmt.order_by(GuidePrice.category, GuidePrice.effective_from.desc(),
                         GuidePrice.id)


# Built once: every order placement and matching request reads it.
_IN_FORCE_FOR_CATEGORY = select(GuidePrice).where(
    GuidePrice.category == bindparam("category"), *_in_force(bindparam("at")))


def in_force_for_category(session: Session, category: str, at: datetime) -> list[GuidePrice]:
    return list(session.scalars(_IN_FORCE_FOR_CATEGORY, {"category": category, "at": at}))


def _pick(guides: list[GuidePrice], classification: Classification,
          price_model: PriceModel) -> GuidePrice | None:
    fitting = [g for g in guides if g.applies_to(classification, price_model)]
    # Ties (two non-binding guides of one scope from one date) go to the one set last.
    return max(fitting, key=lambda g: (g.specificity, g.effective_from, g.created_at, g.id),
               default=None)


def applicable_guide(session: Session, *, category: str, classification: Classification,
                     price_model: PriceModel, at: datetime) -> GuidePrice | None:
    """The guide price that applies to a product of this kind at `at`, if any."""
    return _pick(in_force_for_category(session, category, at), classification, price_model)


def guide_for_listing(session: Session, listing: Listing, at: datetime) -> GuidePrice | None:
    return applicable_guide(session, category=listing.category,
                            classification=listing.classification,
                            price_model=listing.price_model, at=at)


def ensure_in_band(session: Session, listing: Listing, at: datetime) -> str | None:
    """Refuse a price outside the binding band that applies (422 price_out_of_band); return
    a warning when it is outside a non-binding one, else None."""
    guide = guide_for_listing(session, listing, at)
    if guide is None or guide.contains(listing.unit_price):
        return None
    message = f"The unit price {listing.unit_price} is outside the {guide.describe()}."
    if guide.binding:
        raise PriceOutOfBand(message, guide_price_id=str(guide.id),
                             floor_price=guide.floor_price, ceiling_price=guide.ceiling_price,
                             errors={"unit_price": [message]})
    return message


def has_binding_guide(session: Session, listing: Listing, at: datetime) -> bool:
    guide = guide_for_listing(session, listing, at)
    return guide is not None and guide.binding


def within_binding_bands(session: Session, category: str,
                         at: datetime) -> list[ColumnElement[bool]]:
    """SQL conditions a listing of the category meets when its price is inside the binding
    band that applies to it (for the matching engine: one condition per kind of product)."""
    guides = in_force_for_category(session, category, at)
    conditions = []
    for classification in Classification:
        for price_model in PriceModel:
            guide = _pick(guides, classification, price_model)
            if guide is not None and guide.binding:
                conditions.append(or_(
                    Listing.classification != classification,
                    Listing.price_model != price_model,
                    Listing.unit_price.between(guide.floor_price, guide.ceiling_price)))
    return conditions
