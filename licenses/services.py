"""Use cases of licences: issue, activate, end with their order, read, suspend, reinstate,
revoke, expire, count usage, renew.

Orders call `issue_for_order` (placed), `activate_for_order` (delivered), `order_ended`
(cancelled, expired unpaid, refunded in full) and `order_completed` (a renewal takes effect);
nothing here reads the orders' tables. Every change is audited naming the listing, so it shows
in the listing's trace. Access tokens and introspection live in `licenses.tokens`.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Select, or_, select, text, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from app import audit, clock
from app.db import JsonArrayContains
from app.errors import Forbidden, InvalidTransition, ValidationFailed
from app.parties.models import OVERSEERS, Actor
from credit import services as credit
from credit.catalog import Severity
from licenses.errors import (
    CallsExhausted,
    DeliveryModeMismatch,
    LicenseInactive,
    LicenseNotFound,
    NotPerCall,
    NotRenewable,
    RenewalInProgress,
)
from licenses.models import (
    ACTIVE_LICENSE,
    FaultParty,
    License,
    LicenseRenewal,
    LicenseStatus,
    LicenseToken,
    LicenseUsage,
    RenewalStatus,
)
from listings.models import DeliveryMode, PriceModel, Territory


def record(session: Session, actor: Actor, action: str, license: License,
           **details: Any) -> None:
    """Audit a change of the licence, naming its listing (so it shows in the trace)."""
    audit.record(session, actor_id=actor.id, action=action, subject=license,
                 listing_id=license.listing_id,
                 details={"status": license.status.value, "order_id": str(license.order_id),
                          **details})


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


# --- what orders call -------------------------------------------------------------------------

def issue_for_order(session: Session, *, order_id: uuid.UUID, listing_id: uuid.UUID,
                    buyer_id: uuid.UUID, merchant_id: uuid.UUID, beneficiaries: list[str],
                    purpose: str, quantity: int, scope: Mapping[str, Any],
                    actor: Actor) -> License:
    """The licence of an order just placed (flushed), `pending` until delivery, under the
    scope frozen into the order. A per-call licence holds the calls bought (its quantity).
    Its id is known at once (the order's answer names it)."""
    price_model = PriceModel(scope["price_model"])
    calls = quantity if price_model is PriceModel.PER_CALL else None
    license = License(
        id=uuid.uuid4(), order_id=order_id, listing_id=listing_id, buyer_id=buyer_id,
        merchant_id=merchant_id, beneficiaries=list(beneficiaries), quantity=quantity,
        purpose=purpose, purposes=list(scope["purposes"]), territory=Territory(scope["territory"]),
        resale=scope["resale"], derivatives=scope["derivatives"],
        delivery_mode=DeliveryMode(scope["delivery_mode"]), price_model=price_model,
        term_days=scope.get("term_days"), calls_total=calls, calls_remaining=calls,
        status=LicenseStatus.PENDING)
    session.add(license)
    record(session, actor, "license.issued", license, calls_remaining=calls)
    return license


def license_of_order(session: Session, order_id: uuid.UUID) -> License | None:
    """The licence the order granted (None for a renewal order)."""
    return session.scalars(select(License).where(License.order_id == order_id)).first()


def _of_order(session: Session, order_id: uuid.UUID) -> License | None:
    return session.scalars(select(License).where(License.order_id == order_id)
                           .with_for_update().execution_options(populate_existing=True)).first()


def activate_for_order(session: Session, *, order_id: uuid.UUID, at: datetime,
                       artifact_id: uuid.UUID | None, actor: Actor) -> License | None:
    """The order was delivered: its licence runs from now for its term. `artifact_id`: the
    file the exchange holds and checked the hash of (None for a reference given as text:
    unverified). None for an order that grants no licence of its own (a renewal)."""
    license = _of_order(session, order_id)
    if license is None:
        return None
    license.activate(at, artifact_id=artifact_id)
    record(session, actor, "license.activated", license, valid_from=_iso(license.valid_from),
            valid_until=_iso(license.valid_until), verified_delivery=license.verified_delivery)
    return license


def order_ended(session: Session, *, order_id: uuid.UUID, reason: str, actor: Actor,
                at: datetime | None = None) -> License | None:
    """The order ended without being honoured (cancelled, expired unpaid, refunded in full):
    its licence is revoked for `reason` and its tokens stop, or, for a renewal order, the
    renewal is void and the licence it would have extended stays as it is. Calling it again
    changes nothing. The licence revoked, if any."""
    at = at or clock.now()
    license = _of_order(session, order_id)
    if license is not None:
        if license.status is not LicenseStatus.REVOKED:
            license.revoke(at, reason)
            _stop_tokens(session, license, at)
            record(session, actor, "license.revoked", license, reason=reason,
                    fault_party=FaultParty.NONE.value)
        return license
    renewal = session.get(LicenseRenewal, order_id)
    if renewal is not None and renewal.status is RenewalStatus.PENDING:
        _close_renewal(session, renewal, actor, at, reason)
    return None


def order_completed(session: Session, *, order_id: uuid.UUID, actor: Actor,
                    at: datetime | None = None) -> License | None:
    """The order completed: if it renews a licence, the licence runs one more term from its
    current end (not from now). The licence extended, if any. The caller holds the order's
    row, so a renewal is applied once."""
    renewal = session.get(LicenseRenewal, order_id)
    if renewal is None or renewal.status is not RenewalStatus.PENDING:
        return None
    at = at or clock.now()
    license = session.get(License, renewal.license_id, with_for_update=True,
                          populate_existing=True)
    assert license is not None
    if license.status is LicenseStatus.REVOKED or license.valid_until is None:
        _close_renewal(session, renewal, actor, at, f"the licence is {license.status.value}")
        return None
    renewal.extended_from = license.valid_until
    license.extend(renewal.term_days, at)
    renewal.extended_to, renewal.status, renewal.closed_at = (
        license.valid_until, RenewalStatus.APPLIED, at)
    record(session, actor, "license.renewed", license, renewal_order_id=str(order_id),
            term_days=renewal.term_days, extended_from=_iso(renewal.extended_from),
            valid_until=_iso(license.valid_until))
    return license


def _close_renewal(session: Session, renewal: LicenseRenewal, actor: Actor, at: datetime,
                   reason: str) -> None:
    renewal.status, renewal.closed_at = RenewalStatus.VOID, at
    license = session.get(License, renewal.license_id)
    assert license is not None
    record(session, actor, "license.renewal_void", license,
            renewal_order_id=str(renewal.order_id), reason=reason)


def ensure_renewable(session: Session, *, license_id: uuid.UUID, actor: Actor) -> License:
    """The licence its buyer asks to renew, row-locked until the renewal order is placed:
    a subscription with a term, active or lapsed, with no renewal still in progress."""
    license = get_license(session, license_id=license_id, viewer=actor, for_update=True)
    if license.buyer_id != actor.id:
        raise Forbidden("Only the licence's buyer renews it.")
    if license.price_model is not PriceModel.SUBSCRIPTION or license.term_days is None:
        raise NotRenewable(f"A {license.price_model.value} licence is not renewed: only "
                           "subscriptions with a term are.")
    if license.status not in (LicenseStatus.ACTIVE, LicenseStatus.EXPIRED):
        raise InvalidTransition(f"A {license.status.value} licence cannot be renewed.",
                                status=license.status.value)
    pending = session.scalar(select(LicenseRenewal.order_id).where(
        LicenseRenewal.license_id == license.id,
        LicenseRenewal.status == RenewalStatus.PENDING).limit(1))
    if pending is not None:
        raise RenewalInProgress("The renewal ordered before is not completed or ended yet.",
                                order_id=str(pending))
    return license


def open_renewal(session: Session, *, license: License, order_id: uuid.UUID,
                 scope: Mapping[str, Any], actor: Actor) -> LicenseRenewal:
    """A renewal order was placed (flushed) for the licence, under the listing's terms in
    force (`scope`, frozen into that order): its term is the one the renewal adds."""
    term_days = scope.get("term_days")
    if scope["price_model"] != PriceModel.SUBSCRIPTION.value or not term_days:
        raise NotRenewable("The listing is no longer sold by subscription with a term.")
    renewal = LicenseRenewal(order_id=order_id, license_id=license.id, term_days=term_days,
                             status=RenewalStatus.PENDING)
    session.add(renewal)
    record(session, actor, "license.renewal_ordered", license, renewal_order_id=str(order_id),
            term_days=term_days)
    return renewal


# --- reading ----------------------------------------------------------------------------------

def can_see(license: License, viewer: Actor) -> bool:
    return (viewer.id in (license.buyer_id, license.merchant_id)
            or str(viewer.id) in license.beneficiaries or viewer.has_role(*OVERSEERS))


def get_license(session: Session, *, license_id: uuid.UUID, viewer: Actor,
                for_update: bool = False) -> License:
    """A licence its buyer, beneficiaries, merchant or an overseer may see (others: 404)."""
    license = session.get(License, license_id, with_for_update=for_update,
                          populate_existing=for_update)
    if license is None or not can_see(license, viewer):
        raise LicenseNotFound()
    return license


def licenses_query(*, viewer: Actor, status: LicenseStatus | None = None,
                   listing_id: uuid.UUID | None = None) -> Select:
    """The licences the viewer holds (as buyer or beneficiary) or granted (as merchant);
    every licence for operators and regulators."""
    stmt = select(License)
    if not viewer.has_role(*OVERSEERS):
        stmt = stmt.where(or_(License.buyer_id == viewer.id, License.merchant_id == viewer.id,
                              JsonArrayContains(License.beneficiaries, str(viewer.id))))
    if status is not None:
        stmt = stmt.where(License.status == status)
    if listing_id is not None:
        stmt = stmt.where(License.listing_id == listing_id)
    return stmt.order_by(License.created_at.desc(), License.id.desc())


def license_in_use(session: Session, *, license_id: uuid.UUID, holder: Actor,
                   delivery_mode: DeliveryMode, at: datetime) -> License:
    """The licence its buyer or a beneficiary is about to use (a token, a download), if it is
    delivered that way and in force with calls left: 404 to whoever may not see it, 403 to
    the others who may, 409 delivery_mode_mismatch, 403 license_inactive."""
    license = get_license(session, license_id=license_id, viewer=holder)
    if str(holder.id) not in license.holders():
        raise Forbidden("Only the licence's buyer and beneficiaries use it.")
    if license.delivery_mode is not delivery_mode:
        raise DeliveryModeMismatch(f"The licence is delivered by {license.delivery_mode.value}"
                                   f", not by {delivery_mode.value}.")
    if not license.in_force(at):
        state = "past its end" if license.status is LicenseStatus.ACTIVE else \
            license.status.value
        raise LicenseInactive(f"The licence is {state}.", status=license.status.value)
    if not license.usable(at):
        raise LicenseInactive("No calls are left on the licence.", status=license.status.value)
    return license


# --- the overseers' decisions -----------------------------------------------------------------

def suspend_license(session: Session, *, license_id: uuid.UUID, actor: Actor,
                    reason: str) -> License:
    """An operator or regulator suspends an active licence: its tokens stop at once."""
    return _decide(session, license_id, actor, reason, License.suspend, "license.suspended")


def reinstate_license(session: Session, *, license_id: uuid.UUID, actor: Actor,
                      reason: str) -> License:
    """A suspended licence is active again (its unexpired tokens work again)."""
    return _decide(session, license_id, actor, reason, License.reinstate, "license.reinstated")


def _decide(session: Session, license_id: uuid.UUID, actor: Actor, reason: str,
            move: Callable[[License, datetime, str], None], action: str) -> License:
    license = get_license(session, license_id=license_id, viewer=actor, for_update=True)
    move(license, clock.now(), reason)
    record(session, actor, action, license, reason=reason)
    return license


def revoke_license(session: Session, *, license_id: uuid.UUID, actor: Actor, reason: str,
                   fault_party: FaultParty, kind: str | None = None,
                   severity: Severity | None = None) -> License:
    """Revoke a licence for good: its tokens stop at once, and a party at fault (its buyer
    or merchant) gets a credit finding of `kind` (at the kind's usual severity unless one is
    given)."""
    if fault_party is FaultParty.NONE:
        if kind is not None or severity is not None:
            raise ValidationFailed("A finding needs a party at fault.", errors={
                "kind": ["Only with fault_party buyer or merchant."]})
    else:
        if kind is None:
            raise ValidationFailed("A party at fault needs the kind of its finding.",
                                   errors={"kind": ["Required with a party at fault."]})
        if credit.event_kind(kind).positive:
            raise ValidationFailed(f"{kind} is a positive kind, not a finding.",
                                   errors={"kind": ["Must be a negative kind."]})
    license = get_license(session, license_id=license_id, viewer=actor, for_update=True)
    at = clock.now()
    license.revoke(at, reason)
    _stop_tokens(session, license, at)
    record(session, actor, "license.revoked", license, reason=reason,
            fault_party=fault_party.value, kind=kind)
    if fault_party is not FaultParty.NONE:
        assert kind is not None
        party_id = license.buyer_id if fault_party is FaultParty.BUYER else license.merchant_id
        credit.record_event(
            session, party_id=party_id, kind=kind,
            severity=severity or credit.event_kind(kind).default_severity,
            description=f"Licence {license.id} revoked: {reason}",
            evidence_ref=f"license:{license.id}", actor=actor)
    return license


def _stop_tokens(session: Session, license: License, at: datetime) -> None:
    session.execute(update(LicenseToken).where(
        LicenseToken.license_id == license.id, LicenseToken.revoked_at.is_(None))
        .values(revoked_at=at).execution_options(synchronize_session=False))


# --- the scheduler ----------------------------------------------------------------------------

def expire_due_licenses(session: Session, *, at: datetime, actor: Actor, limit: int) -> int:
    """Active licences past their end expire (at most `limit`, oldest end first; rows another
    run holds are left to it). Running again changes nothing more."""
    due = list(session.scalars(
        select(License).where(text(ACTIVE_LICENSE), License.valid_until <= at)
        .order_by(License.valid_until).limit(limit).with_for_update(skip_locked=True)))
    for license in due:
        license.expire(at)
        record(session, actor, "license.expired", license,
                valid_until=_iso(license.valid_until))
    return len(due)


# --- usage of per-call licences ---------------------------------------------------------------

def report_usage(session: Session, *, license_id: uuid.UUID, actor: Actor, calls: int,
                 period_start: datetime, period_end: datetime) -> LicenseUsage:
    """The licence's merchant reports calls served in a period: calls_remaining goes down by
    as many, never below zero (422 calls_exhausted, nothing counted). One conditional UPDATE
    is the guard, so concurrent reports never overdraw the calls."""
    license = get_license(session, license_id=license_id, viewer=actor)
    if license.merchant_id != actor.id:
        raise Forbidden("Only the licence's merchant reports its usage.")
    if license.price_model is not PriceModel.PER_CALL:
        raise NotPerCall(f"A {license.price_model.value} licence counts no calls.")
    if license.status is LicenseStatus.PENDING:
        raise InvalidTransition("A pending licence has no usage: it is not delivered yet.",
                                status=license.status.value)
    remaining = session.scalar(
        update(License).where(License.id == license.id, License.calls_remaining >= calls)
        .values(calls_remaining=License.calls_remaining - calls)
        .returning(License.calls_remaining).execution_options(synchronize_session=False))
    if remaining is None:
        left = session.scalar(select(License.calls_remaining).where(License.id == license.id))
        raise CallsExhausted(f"{calls} calls reported, {left} left on the licence.",
                             calls_remaining=left)
    set_committed_value(license, "calls_remaining", remaining)
    usage = LicenseUsage(license_id=license.id, calls=calls,
                         period_start=period_start.astimezone(UTC),
                         period_end=period_end.astimezone(UTC), calls_remaining=remaining,
                         reported_by=actor.id)
    session.add(usage)
    record(session, actor, "license.usage_reported", license, calls=calls,
            period_start=usage.period_start.isoformat(),
            period_end=usage.period_end.isoformat(),
            calls_remaining=remaining)
    return usage
