"""Who may list and who may certify what: merchants' qualifications, certifiers' accreditations.

An operator grants a merchant a qualification (数据产品开发利用资格) up to a classification, and a
certification body an accreditation for some scopes up to a classification, each until a date
and on the evidence named. Sensitive and important data is submitted only by a merchant whose
qualification covers its classification when it is submitted; a certification is issued only
by a body whose accreditations cover each of its scopes at the listing's classification.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from app import audit, clock
from app.errors import Forbidden, ValidationFailed
from app.parties.models import Actor, Party, Role
from listings.errors import NotAccredited, NotQualified, PartyNotFound, RoleRequired
from listings.models import CertificationScope, Classification, Listing
from listings.rights_models import Accreditation, Qualification

# The classifications only a qualified merchant lists.
QUALIFIED_ONLY = (Classification.SENSITIVE, Classification.IMPORTANT)


def _grantee(session: Session, party_id: uuid.UUID, role: Role) -> Party:
    party = session.get(Party, party_id)
    if party is None:
        raise PartyNotFound()
    if not party.has_role(role):
        raise RoleRequired(f"The party does not hold the {role.value} role.",
                           errors={"party_id": [f"Must be a {role.value}."]})
    return party


def _ensure_future(body: dict[str, Any]) -> None:
    if body["valid_until"] <= clock.now():
        raise ValidationFailed(errors={"valid_until": ["Must be in the future."]})


def grant_qualification(session: Session, *, party_id: uuid.UUID, actor: Actor,
                        body: dict[str, Any]) -> Qualification:
    """An operator qualifies a merchant to list data up to a classification, until a date."""
    party = _grantee(session, party_id, Role.MERCHANT)
    _ensure_future(body)
    qualification = Qualification(party_id=party.id, granted_by=actor.id, **body)
    session.add(qualification)
    session.flush()
    audit.record(session, actor_id=actor.id, action="party.qualified", subject=qualification,
                 details={"party_id": str(party.id),
                          "max_classification": qualification.max_classification.value,
                          "valid_until": qualification.valid_until.isoformat(),
                          "evidence_ref": qualification.evidence_ref})
    return qualification


def grant_accreditation(session: Session, *, party_id: uuid.UUID, actor: Actor,
                        body: dict[str, Any]) -> Accreditation:
    """An operator accredits a certifier for scopes up to a classification, until a date."""
    party = _grantee(session, party_id, Role.CERTIFIER)
    _ensure_future(body)
    accreditation = Accreditation(
        party_id=party.id, granted_by=actor.id,
        scopes=sorted({scope.value for scope in body["scopes"]}),
        max_classification=body["max_classification"], valid_until=body["valid_until"],
        evidence_ref=body["evidence_ref"])
    session.add(accreditation)
    session.flush()
    audit.record(session, actor_id=actor.id, action="certifier.accredited",
                 subject=accreditation,
                 details={"party_id": str(party.id), "scopes": accreditation.scopes,
                          "max_classification": accreditation.max_classification.value,
                          "valid_until": accreditation.valid_until.isoformat(),
                          "evidence_ref": accreditation.evidence_ref})
    return accreditation


def qualifications_of(session: Session, *, party_id: uuid.UUID, viewer: Actor) -> Select:
    """A party's qualifications, newest first: for itself, operators and regulators."""
    # The viewer first, as GET /parties/{id} does: an outsider learns nothing of the id.
    if party_id != viewer.id and not viewer.has_role(Role.OPERATOR, Role.REGULATOR):
        raise Forbidden("Only the party itself, operators and regulators see its "
                        "qualifications.")
    if session.get(Party, party_id) is None:
        raise PartyNotFound()
    return (select(Qualification).where(Qualification.party_id == party_id)
            .order_by(Qualification.granted_at.desc(), Qualification.id.desc()))


def accreditations_of(session: Session, *, party_id: uuid.UUID) -> Select:
    """A certification body's accreditations, newest first (public: merchants choose whom
    to ask for a certification)."""
    if session.get(Party, party_id) is None:
        raise PartyNotFound()
    return (select(Accreditation).where(Accreditation.party_id == party_id)
            .order_by(Accreditation.granted_at.desc(), Accreditation.id.desc()))


def ensure_qualified(session: Session, listing: Listing) -> None:
    """Refuse (422 not_qualified) sensitive or important data from a merchant holding no
    qualification that covers its classification now."""
    if listing.classification not in QUALIFIED_ONLY:
        return
    now = clock.now()
    held = session.scalars(select(Qualification).where(
        Qualification.party_id == listing.merchant_id, Qualification.valid_until > now))
    if not any(q.covers(listing.classification, now) for q in held):
        raise NotQualified(
            f"{listing.classification.value.capitalize()} data is listed only by a merchant "
            f"qualified for it: you hold no qualification valid now covering "
            f"{listing.classification.value} data (an operator grants it).",
            errors={"classification": ["No qualification of yours covers it."]})


def ensure_accredited(session: Session, *, certifier: Party, listing: Listing,
                      scopes: list[CertificationScope]) -> None:
    """Refuse (403 not_accredited) a certification of a scope or classification that none
    of the certifier's accreditations valid now covers."""
    now = clock.now()
    held = list(session.scalars(select(Accreditation).where(
        Accreditation.party_id == certifier.id, Accreditation.valid_until > now)))
    uncovered = [scope.value for scope in scopes
                 if not any(a.covers(scope, listing.classification, now) for a in held)]
    if uncovered:
        raise NotAccredited(
            f"You hold no accreditation valid now for {', '.join(uncovered)} at the "
            f"{listing.classification.value} classification.", uncovered_scopes=uncovered)
