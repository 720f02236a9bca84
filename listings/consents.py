"""Consents (三权确认): every party a listing names, other than its merchant, agrees to it.

A listing names parties in its rights (the holder, the processors), in its revenue shares
(the payees) and, for public data, in its authorization (the authority). Naming a party is a
claim about it, so the claim becomes a fact only when the party accepts: the first submission
asks each of them (one request per party and role), and the listing cannot pass its
submission until every request is accepted. A decline blocks it, with the party's reason,
until the merchant changes what it names; any change to what the parties were asked about
supersedes every request in force, and the next submission asks again.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app import audit, clock
from app.parties.models import Actor
from listings.errors import ConsentDeclined, ConsentNotFound, ConsentPending
from listings.models import Listing
from listings.rights_models import (
    OPEN_STATUSES,
    Consent,
    ConsentRole,
    ConsentStatus,
    reason_of,
)

Request = tuple[uuid.UUID, ConsentRole]


def asked_of(listing: Listing) -> dict[Request, dict[str, Any]]:
    """Whom the listing names besides its merchant, in which role, and the terms each is
    asked to agree to (what the listing says about it)."""
    merchant_id = listing.merchant_id
    rights = listing.rights
    rights_terms = {"holder_id": str(rights.holder_id),
                    "processor_ids": [str(p) for p in rights.processor_ids],
                    "operator_id": str(rights.operator_id)}
    asks: dict[Request, dict[str, Any]] = {}
    if rights.holder_id != merchant_id:
        asks[rights.holder_id, ConsentRole.HOLDER] = {"rights": rights_terms}
    for processor in rights.processor_ids:
        if uuid.UUID(processor) != merchant_id:
            asks[uuid.UUID(processor), ConsentRole.PROCESSOR] = {"rights": rights_terms}
    authorization = listing.source.authorization
    if authorization is not None and authorization.authority_id != merchant_id:
        asks[authorization.authority_id, ConsentRole.AUTHORITY] = {"authorization": {
            "authority_id": str(authorization.authority_id),
            "document_ref": authorization.document_ref,
            "valid_until": authorization.valid_until.isoformat()}}
    for share in listing.revenue_shares:
        payee = uuid.UUID(share["party_id"])
        if payee != merchant_id:
            terms = asks.setdefault((payee, ConsentRole.PAYEE), {"revenue_shares": []})
            terms["revenue_shares"].append(dict(share))
    return asks


def _in_force(session: Session, listing_id: uuid.UUID) -> list[Consent]:
    return list(session.scalars(select(Consent).where(
        Consent.listing_id == listing_id, Consent.status.in_(OPEN_STATUSES))
        .order_by(Consent.requested_at, Consent.id)))


def _summary(consent: Consent) -> dict[str, Any]:
    return {"id": str(consent.id), "party_id": str(consent.party_id),
            "role": consent.role.value, "status": consent.status.value}


def _record(session: Session, actor: Actor, action: str, consent: Consent,
            **details: Any) -> None:
    audit.record(session, actor_id=actor.id, action=action, subject=consent,
                 listing_id=consent.listing_id,
                 details={"listing_id": str(consent.listing_id),
                          "party_id": str(consent.party_id), "role": consent.role.value,
                          "status": consent.status.value, **details})


def _existing(session: Session, listing: Listing,
              wanted: dict[Request, dict[str, Any]]) -> dict[Request, Consent]:
    return {(c.party_id, c.role): c for c in _in_force(session, listing.id)
            if (c.party_id, c.role) in wanted}


def _ask_missing(session: Session, listing: Listing, actor: Actor,
                 wanted: dict[Request, dict[str, Any]],
                 existing: dict[Request, Consent]) -> list[Consent]:
    asked = [Consent(listing_id=listing.id, party_id=party_id, role=role, terms=terms,
                     requested_by=actor.id)
             for (party_id, role), terms in wanted.items() if (party_id, role) not in existing]
    try:
        with session.begin_nested():
            session.add_all(asked)
            session.flush()
    except IntegrityError:
        # A concurrent submission asked them first (SQLite, which takes no row lock).
        raise ConsentPending("The listing stays a draft until every party it names accepts: "
                             "they have just been asked.") from None
    for consent in asked:
        _record(session, actor, "consent.requested", consent, terms=consent.terms)
    return asked


def ask(session: Session, *, listing: Listing, actor: Actor) -> list[Consent]:
    """The listing's requests in force, those not made yet asked now (and audited)."""
    wanted = asked_of(listing)
    existing = _existing(session, listing, wanted)
    return [*existing.values(), *_ask_missing(session, listing, actor, wanted, existing)]


def ensure_consented(session: Session, *, listing: Listing, actor: Actor) -> None:
    """The submission's consent gate: passes when every party named has accepted.

    Otherwise it asks those not asked yet and raises ConsentPending (409; the requests are
    kept), or ConsentDeclined (422) with the reasons when one declined. The caller holds the
    listing's row lock, so two submissions cannot both ask.
    """
    wanted = asked_of(listing)
    if not wanted:
        return
    existing = _existing(session, listing, wanted)
    declined = [c for c in existing.values() if c.status is ConsentStatus.DECLINED]
    if declined:
        raise ConsentDeclined(
            "; ".join(reason_of(c) for c in declined) + ". Change what the listing names "
            "(rights, revenue shares or authorization) and submit again.",
            consents=[{**_summary(c), "note": c.note} for c in declined])
    asked = _ask_missing(session, listing, actor, wanted, existing)
    pending = [c for c in [*existing.values(), *asked] if c.status is ConsentStatus.PENDING]
    if pending:
        named = ", ".join(c.describe() for c in pending)
        raise ConsentPending(
            f"The listing stays a draft until every party it names accepts: waiting for "
            f"{named}.", consents=[_summary(c) for c in pending])


def supersede_if_changed(session: Session, *, listing: Listing, actor: Actor,
                         before: dict[Request, dict[str, Any]]) -> int:
    """After an edit: when what the parties are asked about changed (`before` is
    `asked_of(listing)` before it), every request in force is superseded; the next
    submission asks again. How many were superseded."""
    if asked_of(listing) == before:
        return 0
    superseded = _in_force(session, listing.id)
    if not superseded:
        return 0
    now = clock.now()
    for consent in superseded:
        previous = consent.status.value
        consent.status, consent.superseded_at = ConsentStatus.SUPERSEDED, now
        _record(session, actor, "consent.superseded", consent, previous_status=previous)
    session.flush()
    return len(superseded)


def decide_consent(session: Session, *, consent_id: uuid.UUID, party: Actor, accept: bool,
                   note: str | None) -> Consent:
    """The party asked accepts or declines, once (a request of another party: 404)."""
    # Locked: two decisions (or a decision and the merchant's edit) are serialized, so the
    # second sees the first's outcome.
    consent = session.get(Consent, consent_id, with_for_update=True, populate_existing=True)
    if consent is None or consent.party_id != party.id:
        raise ConsentNotFound()
    consent.decide(accept=accept, note=note, at=clock.now())
    session.flush()
    _record(session, party, f"consent.{consent.status.value}", consent, note=note)
    return consent


def consents_asked_of(*, party: Actor, status: ConsentStatus | None = None) -> Select:
    """The requests made of the party, newest first."""
    stmt = select(Consent).where(Consent.party_id == party.id)
    if status is not None:
        stmt = stmt.where(Consent.status == status)
    return stmt.order_by(Consent.requested_at.desc(), Consent.id.desc())


def consents_of_listing(*, listing_id: uuid.UUID,
                        status: ConsentStatus | None = None) -> Select:
    """Every request a listing made (superseded ones included), oldest first."""
    stmt = select(Consent).where(Consent.listing_id == listing_id)
    if status is not None:
        stmt = stmt.where(Consent.status == status)
    return stmt.order_by(Consent.requested_at, Consent.id)
