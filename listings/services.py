"""Use cases of listings: create, edit, submit through admission, review, lifecycle, search."""

from __future__ import annotations

import uuid
from typing import Any

from flask import current_app
from sqlalchemy import Select, and_, bindparam, or_, select, update
from sqlalchemy.orm import Session, joinedload

from app import audit, clock
from app.audit import AuditEntry
from app.db import rows_matched
from app.errors import VersionConflict
from app.log.services import TracedEntry, traced_entries
from app.parties.models import OVERSEERS, Actor, Party, Role
from credit import services as credit
from credit.scoring import Level
from listings import admission, consents, pricing, public_data, qualifications, text_search
from listings.certification import certification_satisfied
from listings.errors import (
    AdmissionProhibited,
    AdmissionProhibitedNow,
    CertificationRequired,
    InvalidRevenuePlan,
    ListingNotFound,
    OperationRightRequired,
    PreconditionFailed,
    UnknownParties,
)
from listings.models import (
    Listing,
    ListingStatus,
    Rights,
    ShareRole,
    Source,
    SourceOrigin,
    UsageScope,
)
from listings.signals import listing_listed


def _composites(body: dict[str, Any]) -> dict[str, Any]:
    """Schema-loaded nested objects → the model's composite values."""
    values = dict(body)
    if "source" in values:
        source = dict(values["source"])
        authorization = source.pop("authorization", None) or {}
        values["source"] = Source(
            **source, authority_id=authorization.get("authority_id"),
            authorization_document_ref=authorization.get("document_ref"),
            authorization_valid_until=authorization.get("valid_until"))
    if "rights" in values:
        rights = values["rights"]
        values["rights"] = Rights(rights["holder_id"], [str(p) for p in rights["processor_ids"]],
                                  rights["operator_id"])
    if "usage_scope" in values:
        values["usage_scope"] = UsageScope(**values["usage_scope"])
    if "revenue_shares" in values:
        values["revenue_shares"] = [{**share, "party_id": str(share["party_id"]),
                                     "role": share["role"].value, "basis": share["basis"].value}
                                    for share in values["revenue_shares"]]
    return values


def _check_parties(session: Session, listing: Listing) -> None:
    """The seller holds the operation right, and every party named exists."""
    if listing.rights.operator_id != listing.merchant_id:
        raise OperationRightRequired(
            "rights.operator_id must be the merchant: only the holder of the product-operation "
            "right (数据产品经营权) may sell the product.",
            errors={"rights.operator_id": ["Must be your own party id."]})
    named = {listing.rights.holder_id, listing.rights.operator_id,
             *(uuid.UUID(p) for p in listing.rights.processor_ids),
             *(uuid.UUID(s["party_id"]) for s in listing.revenue_shares)}
    if listing.source.authority_id is not None:
        named.add(listing.source.authority_id)
    # No autoflush: an edited listing naming an unknown party must not be written (its
    # foreign keys would fail with an IntegrityError) before this check can refuse it.
    with session.no_autoflush:
        found = set(session.scalars(select(Party.id).where(Party.id.in_(named))))
    missing = sorted(str(party_id) for party_id in named - found)
    if missing:
        raise UnknownParties(f"No party with id {', '.join(missing)}.", missing=missing)


def _check_revenue_plan(listing: Listing) -> None:
    """Who shares the proceeds must add up: brokers' commissions and the platform's fee
    leave something to share, and the holder of the operation right (the merchant) is named
    at most once — or not at all, when it is the default payee of the pool."""
    shares = listing.revenue_shares
    broker_pct = sum(float(s["weight"]) for s in shares if s["role"] == ShareRole.BROKER)
    fee_pct = current_app.config["PLATFORM_FEE_BPS"] / 100
    problems = []
    if broker_pct + fee_pct >= 100:
        problems.append(f"Brokers' commissions ({broker_pct:g} %) and the platform fee "
                        f"({fee_pct:g} %) leave nothing to share.")
    merchant_lines = [s for s in shares if s["role"] != ShareRole.BROKER
                      and s["party_id"] == str(listing.merchant_id)]
    if len(merchant_lines) > 1:
        problems.append("The merchant (holder of the operation right) is named more than once.")
    if len({(s["party_id"], s["role"]) for s in shares}) < len(shares):
        problems.append("A party is named twice in the same role.")
    if problems:
        raise InvalidRevenuePlan(" ".join(problems), errors={"revenue_shares": problems})


def _record(session: Session, actor: Actor, action: str, listing: Listing,
            **details: Any) -> None:
    audit.record(session, actor_id=actor.id, action=action, subject=listing,
                 details={"status": listing.status.value, **details})


def create_listing(session: Session, *, merchant: Party, body: dict[str, Any]) -> Listing:
    """A new draft listing of the merchant's (not under a listing ban)."""
    credit.ensure_may_list(session, merchant.id)
    listing = Listing(merchant_id=merchant.id, **_composites(body))
    _check_parties(session, listing)
    _check_revenue_plan(listing)
    session.add(listing)
    session.flush()
    _record(session, merchant, "listing.created", listing, title=listing.title)
    return listing


def _lookup(session: Session, listing_id: uuid.UUID, *, lock: bool = False) -> Listing:
    listing = (session.get(Listing, listing_id, with_for_update=True, populate_existing=True)
               if lock else session.get(Listing, listing_id))
    if listing is None:
        raise ListingNotFound()
    return listing


def can_see(listing: Listing, viewer: Actor) -> bool:
    """Listed products are public to every party; the rest to their merchant and overseers."""
    return (listing.status is ListingStatus.LISTED or listing.merchant_id == viewer.id
            or viewer.has_role(*OVERSEERS))


def may_see_review_flag(listing: Listing, viewer: Actor | None) -> bool:
    """A quality flag awaits an operator's look: shown to the merchant and the overseers, not
    to the market, where an unreviewed flag would brand the product (others see null)."""
    return viewer is not None and (listing.merchant_id == viewer.id
                                   or viewer.has_role(*OVERSEERS))


# Built once (the hot read of the catalog); certifications joined in the same query.
_LISTING_WITH_CERTIFICATIONS = select(Listing).where(
    Listing.id == bindparam("listing_id")).options(joinedload(Listing.certifications))


def get_listing(session: Session, *, listing_id: uuid.UUID, viewer: Actor) -> Listing:
    """A listing the viewer may see (others get 404: existence of drafts is not revealed)."""
    listing = session.scalars(_LISTING_WITH_CERTIFICATIONS,
                              {"listing_id": listing_id}).unique().one_or_none()
    if listing is None or not can_see(listing, viewer):
        raise ListingNotFound()
    return listing


def _owned(session: Session, listing_id: uuid.UUID, actor: Actor, *,
           lock: bool = False) -> Listing:
    listing = _lookup(session, listing_id, lock=lock)
    if listing.merchant_id != actor.id:
        raise ListingNotFound()  # another merchant's listing: not revealed
    return listing


def update_listing(session: Session, *, listing_id: uuid.UUID, actor: Actor,
                   changes: dict[str, Any], if_match: int | None = None) -> Listing:
    """Edit a draft or rejected listing; a rejected one returns to draft.

    `if_match` (If-Match header) or `changes["version"]` name the version the client edited:
    a stale one is refused, and concurrent writes are caught by the version column.
    """
    listing = _owned(session, listing_id, actor)
    expected = changes.pop("version", None)
    if if_match is not None and if_match != listing.version:
        raise PreconditionFailed(f"The listing is at version {listing.version}.",
                                 current_version=listing.version)
    if expected is not None and expected != listing.version:
        raise VersionConflict(f"The listing is at version {listing.version}, not {expected}.",
                              current_version=listing.version)
    listing.ensure_can("edit")
    asked_before = consents.asked_of(listing)
    for name, value in _composites(changes).items():
        setattr(listing, name, value)
    if listing.status is ListingStatus.REJECTED:
        listing.set_status(ListingStatus.DRAFT)
    _check_parties(session, listing)
    _check_revenue_plan(listing)
    session.flush()
    _record(session, actor, "listing.updated", listing, fields=sorted(changes))
    consents.supersede_if_changed(session, listing=listing, actor=actor, before=asked_before)
    return listing


def submit_listing(session: Session, *, listing_id: uuid.UUID, actor: Actor) -> Listing:
    """Run admission: prohibited → rejected (422, kept on record); then the consent of every
    party the listing names (409 until all accept, 422 on a decline); encouraged with nothing
    left for a human → listed (fast track); otherwise pending review."""
    listing = _owned(session, listing_id, actor, lock=True)
    listing.ensure_can("submit")
    credit.ensure_may_list(session, listing.merchant_id)
    _check_parties(session, listing)
    _check_revenue_plan(listing)
    now = clock.now()
    public_data.ensure_authorized(session, listing, now)
    qualifications.ensure_qualified(session, listing)
    result = admission.evaluate(admission.facts_of_listing(listing),
                                admission.rules_in_force(session, now))
    if result.decision is admission.Decision.PROHIBITED:
        listing.admission = result.as_record()
        listing.set_status(ListingStatus.REJECTED, result.explanation)
        session.flush()
        _record(session, actor, "listing.admission_prohibited", listing, **listing.admission)
        # The attempt itself is a credit finding (it survives the 422: keeps_changes).
        credit.record_system_event(session, party_id=listing.merchant_id,
                                   kind="prohibited_listing_attempt",
                                   description=result.explanation,
                                   evidence_ref=f"listing:{listing.id}")
        raise AdmissionProhibited(result.explanation,
                                  matched_rules=listing.admission["matched_rules"])
    price_warning = pricing.ensure_in_band(session, listing, now)
    # Last, once the merchant's own part is in order: the parties named are asked only
    # about a listing that could pass. The listing itself is left as it was until they agree.
    consents.ensure_consented(session, listing=listing, actor=actor)
    listing.admission = result.as_record()
    listing.price_warning = price_warning
    needs_human = _reasons_for_review(session, listing, result)
    if needs_human:
        listing.set_status(ListingStatus.PENDING_REVIEW, "; ".join(needs_human) + ".")
    else:
        listing.set_status(ListingStatus.LISTED, "Fast track: " + result.explanation)
    session.flush()
    _record(session, actor, "listing.submitted", listing, **listing.admission)
    if listing.status is ListingStatus.LISTED:
        listing_listed.send(session, listing=listing)
    return listing


def _reasons_for_review(session: Session, listing: Listing,
                        result: admission.AdmissionResult) -> list[str]:
    reasons = []
    if result.decision is not admission.Decision.ENCOURAGED:
        reasons.append("No positive-list rule matches: operator review")
    merchant_level = credit.credit_level(session, listing.merchant_id)
    if merchant_level is not Level.A:
        reasons.append(f"Fast track is for credit level A; the merchant is at "
                       f"{merchant_level.value}")
    missing = _missing_certification(session, listing)
    if missing:
        reasons.append(missing)
    if listing.source.origin is SourceOrigin.PUBLIC_AUTHORIZED and not pricing.has_binding_guide(
            session, listing, clock.now()):
        reasons.append("Public data under authorized operation has no binding guide price "
                       f"for {listing.category!r}")
    return reasons


def _missing_certification(session: Session, listing: Listing) -> str | None:
    """Why the listing cannot be listed for want of a certification, or None."""
    if not listing.classification.needs_certification or certification_satisfied(
            session, listing.id, clock.now()):
        return None
    return (f"{listing.classification.value.capitalize()} data needs a valid compliance "
            "certification rated A or better")


def _ensure_listable_now(session: Session, listing: Listing) -> admission.AdmissionResult:
    """What an operator's approval or relisting must check again, as of now.

    The submission's decision is not enough: since then the merchant may have come under a
    listing ban, a public data authorization may have expired, or the lists may have changed
    (a negative rule added for this very kind of product), and nothing may reach the market
    that admission would refuse today.
    """
    credit.ensure_may_list(session, listing.merchant_id)
    public_data.ensure_authorized(session, listing, clock.now())
    result = admission.evaluate(admission.facts_of_listing(listing),
                                admission.rules_in_force(session, clock.now()))
    if result.decision is admission.Decision.PROHIBITED:
        # Rolled back (keeps_changes is False): the listing stays as it was, for the
        # operator to reject, suspend or delist with a reason of their own.
        raise AdmissionProhibitedNow(result.explanation,
                                     matched_rules=result.as_record()["matched_rules"])
    missing = _missing_certification(session, listing)
    if missing:
        raise CertificationRequired(f"{missing} before it can be listed.")
    listing.price_warning = pricing.ensure_in_band(session, listing, clock.now())
    return result


def review_listing(session: Session, *, listing_id: uuid.UUID, actor: Actor, decision: str,
                   reason: str) -> Listing:
    """An operator approves a pending listing (→ listed, if admission, the merchant's credit
    and certification still allow it) or rejects it, with a reason."""
    listing = _lookup(session, listing_id)
    details: dict[str, Any] = {}
    if decision == "approve":
        listing.ensure_can("approve")
        listing.admission = _ensure_listable_now(session, listing).as_record()
        details["admission"] = listing.admission
        listing.move("approve", reason=reason)
    else:
        listing.move("reject", reason=reason)
    session.flush()
    _record(session, actor, "listing.reviewed", listing, decision=decision, reason=reason,
            **details)
    if listing.status is ListingStatus.LISTED:
        listing_listed.send(session, listing=listing)
    return listing


def suspend_listing(session: Session, *, listing_id: uuid.UUID, actor: Actor,
                    reason: str) -> Listing:
    """An operator takes a listed product off the market for now."""
    listing = _lookup(session, listing_id)
    listing.move("suspend", reason=reason)
    session.flush()
    _record(session, actor, "listing.suspended", listing, reason=reason)
    return listing


def relist_listing(session: Session, *, listing_id: uuid.UUID, actor: Actor,
                   reason: str) -> Listing:
    """An operator puts a suspended product back on the market (admission, the merchant's
    credit and certification permitting); a delisted product stays delisted."""
    listing = _lookup(session, listing_id)
    listing.ensure_can("relist")
    listing.admission = _ensure_listable_now(session, listing).as_record()
    listing.move("relist", reason=reason)
    session.flush()
    _record(session, actor, "listing.relisted", listing, reason=reason,
            admission=listing.admission)
    listing_listed.send(session, listing=listing)
    return listing


def delist_listing(session: Session, *, listing_id: uuid.UUID, actor: Actor,
                   reason: str) -> Listing:
    """The merchant or an operator withdraws the product (exit)."""
    listing = (_lookup(session, listing_id) if actor.has_role(Role.OPERATOR)
               else _owned(session, listing_id, actor))
    listing.move("delist", reason=reason)
    session.flush()
    _record(session, actor, "listing.delisted", listing, reason=reason)
    return listing


def search_listings(*, viewer: Actor, filters: dict[str, Any]) -> Select:
    """Listings matching the filters that the viewer may see, newest first."""
    stmt = select(Listing)
    if viewer.has_role(Role.MERCHANT) and not viewer.has_role(*OVERSEERS):
        stmt = stmt.where(or_(Listing.status == ListingStatus.LISTED,
                              Listing.merchant_id == viewer.id))
    elif not viewer.has_role(*OVERSEERS):
        stmt = stmt.where(Listing.status == ListingStatus.LISTED)
    equal = {"category": Listing.category, "classification": Listing.classification,
             "status": Listing.status, "merchant_id": Listing.merchant_id}
    for name, column in equal.items():
        if filters.get(name) is not None:
            stmt = stmt.where(column == filters[name])
    if filters.get("min_price") is not None:
        stmt = stmt.where(Listing.unit_price >= filters["min_price"])
    if filters.get("max_price") is not None:
        stmt = stmt.where(Listing.unit_price <= filters["max_price"])
    if filters.get("flagged") is not None:
        flagged = Listing.review_flag.is_not(None)
        stmt = stmt.where(flagged if filters["flagged"] else ~flagged)
        if not viewer.has_role(*OVERSEERS):
            # Flags are not the market's to see (may_see_review_flag): filtering on them
            # reaches only the viewer's own listings, or it would reveal them anyway.
            stmt = stmt.where(Listing.merchant_id == viewer.id)
    if filters.get("q"):
        stmt = stmt.where(text_search.text_matches(filters["q"]))
    return stmt.order_by(Listing.created_at.desc(), Listing.id.desc())


def take_licenses(session: Session, *, listing: Listing, quantity: int) -> bool:
    """Take licenses of the listing for an order; False when fewer are left. The conditional
    UPDATE is the guard under any concurrency; an unlimited listing always has enough."""
    if listing.licenses_available is None:
        return True
    return bool(rows_matched(session, (
        update(Listing)
        .where(Listing.id == listing.id, Listing.licenses_available >= quantity)
        .values(licenses_available=Listing.licenses_available - quantity)
        .execution_options(synchronize_session=False))))


def release_licenses(session: Session, *, listing_id: uuid.UUID, quantity: int) -> None:
    """Give back the licenses of an order that will not be paid (cancelled, expired)."""
    session.execute(
        update(Listing)
        .where(Listing.id == listing_id, Listing.licenses_available.is_not(None))
        .values(licenses_available=Listing.licenses_available + quantity)
        .execution_options(synchronize_session=False))


def ensure_may_trace(session: Session, *, listing_id: uuid.UUID, viewer: Actor) -> Listing:
    """The listing, for its merchant and the overseers, who may read its history (others:
    404, whatever its status)."""
    listing = _lookup(session, listing_id)
    if listing.merchant_id != viewer.id and not viewer.has_role(*OVERSEERS):
        raise ListingNotFound()
    return listing


def listing_trace(session: Session, *, listing_id: uuid.UUID,
                  viewer: Actor) -> list[TracedEntry]:
    """Every audited event of the product's life, in order: the listing's own entries and
    those of its orders, their settlement and payouts (which name it by `listing_id`), read
    in one statement however many orders it has."""
    listing = ensure_may_trace(session, listing_id=listing_id, viewer=viewer)
    return traced_entries(session, or_(and_(AuditEntry.subject_type == Listing.__tablename__,
                                            AuditEntry.subject_id == str(listing.id)),
                                       AuditEntry.listing_id == listing.id))
