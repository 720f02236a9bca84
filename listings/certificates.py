"""The registration certificate (数据产品登记证书) of a listed product: its facts, logged as their
own audit entry (`certificate.issued`) when first asked for, and the evidence log's proof.

A certificate is issued again when its facts change (an edit before relisting, a new or
expired certification, a relisting): the same facts are the same certificate, found by their
digest. A first issue looks up and records under the evidence log's issuing lock, so
concurrent first requests issue one.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app import audit, clock
from app.db import unit_of_work
from app.errors import InvalidTransition
from app.log import evidence, printing
from app.log.printing import Line
from app.parties.models import Actor, Party
from listings.models import Listing, ListingStatus
from listings.services import get_listing

CERTIFICATE = evidence.DocumentKind(kind="registration_certificate",
                                    number_field="certificate_no", prefix="RC-",
                                    action="certificate.issued")
ACTION = CERTIFICATE.action


def _party(party: Party | None, party_id: Any) -> dict[str, Any]:
    return {"id": str(party_id), "name": party.name if party else None,
            "credit_code": party.credit_code if party else None}


def certificate_facts(session: Session, listing: Listing) -> dict[str, Any]:
    """What the certificate attests, as the listing stands now."""
    rights = listing.rights
    ids = [rights.holder_id, rights.operator_id, *map(uuid.UUID, rights.processor_ids)]
    parties = {party.id: party for party in
               session.scalars(select(Party).where(Party.id.in_(ids)))}
    now = clock.now()
    scope = listing.usage_scope
    return {
        "listing_id": str(listing.id), "title": listing.title, "category": listing.category,
        "classification": listing.classification.value,
        "source": {"origin": listing.source.origin.value,
                   "description": listing.source.description,
                   "legal_basis": listing.source.legal_basis},
        "rights": {"holder": _party(parties.get(rights.holder_id), rights.holder_id),
                   "processors": [_party(parties.get(uuid.UUID(p)), p)
                                  for p in rights.processor_ids],
                   "operator": _party(parties.get(rights.operator_id), rights.operator_id)},
        "usage_scope": {"purposes": list(scope.purposes), "term_days": scope.term_days,
                        "territory": scope.territory.value, "resale": scope.resale,
                        "derivatives": scope.derivatives},
        "delivery_mode": listing.delivery_mode.value,
        "certifications": [
            {"id": str(c.id), "certifier_id": str(c.certifier_id), "rating": c.rating.value,
             "scopes": list(c.scopes), "valid_until": c.valid_until.isoformat()}
            for c in sorted(listing.certifications, key=lambda c: str(c.id))
            if c.is_valid(now)],
        "listed_at": listing.listed_at.isoformat() if listing.listed_at else None,
    }


def issue_certificate(session: Session, *, listing_id: uuid.UUID, viewer: Actor,
                      record: bool) -> tuple[dict[str, Any], bool]:
    """The listing's certificate facts and whether a certificate of them was issued; if not
    and `record`, their entry is recorded (written at commit)."""
    listing = get_listing(session, listing_id=listing_id, viewer=viewer)
    if listing.status is not ListingStatus.LISTED:
        raise InvalidTransition(f"The listing is {listing.status.value}: a registration "
                                f"certificate is issued while it is listed.")
    facts = certificate_facts(session, listing)
    if _issued(session, listing, facts):
        return facts, True
    if record:
        audit.record(session, actor_id=viewer.id, action=ACTION, subject=listing,
                     details=facts)
    return facts, False


def _issued(session: Session, listing: Listing, facts: dict[str, Any]) -> bool:
    return evidence.issued_entry(session, action=ACTION, subject_type=Listing.__tablename__,
                                 subject_id=str(listing.id), facts=facts) is not None


def certificate(*, listing_id: uuid.UUID, viewer: Actor) -> dict[str, Any]:
    """The product's registration certificate with the evidence that the log holds its
    facts (the log is sealed now if the entry is not in it yet)."""
    with unit_of_work() as session:
        facts, issued = issue_certificate(session, listing_id=listing_id, viewer=viewer,
                                          record=False)
    if not issued:
        with evidence.issuing(), unit_of_work() as session:
            facts, _ = issue_certificate(session, listing_id=listing_id, viewer=viewer,
                                         record=True)
    return CERTIFICATE.document(*evidence.proved(
        action=ACTION, subject_type=Listing.__tablename__, subject_id=str(listing_id),
        facts=facts))


def certificate_by_number(number: str) -> dict[str, Any] | None:
    """The certificate numbered so; None when no certificate has that number (one issued
    again has a new number, and the old one still verifies)."""
    return CERTIFICATE.by_number(number)


def certificate_pdf(document: dict[str, Any]) -> bytes:
    """The certificate on paper: its facts under Chinese and English labels, and its
    evidence."""
    facts = document["facts"]
    source = facts.get("source") or {}
    rights = facts.get("rights") or {}
    scope = facts.get("usage_scope") or {}
    certifications = [
        f"{c.get('rating')} {', '.join(c.get('scopes') or [])} "
        f"({printing.text(c.get('valid_until'))}; {c.get('certifier_id')})"
        for c in facts.get("certifications") or []]
    lines = [
        Line("数据产品", "Data product", printing.text(facts.get("title"))),
        Line("产品编号", "Listing", printing.text(facts.get("listing_id"))),
        Line("类别", "Category", printing.text(facts.get("category"))),
        Line("数据分级", "Classification", printing.text(facts.get("classification"))),
        Line("数据来源", "Source",
             f"{printing.text(source.get('origin'))}: {printing.text(source.get('description'))}"),
        Line("合法依据", "Legal basis", printing.text(source.get("legal_basis"))),
        Line("数据资源持有者", "Holder of the data resource",
             printing.party(rights.get("holder"))),
        Line("数据加工使用者", "Processors", printing.parties(rights.get("processors"))),
        Line("数据产品经营者", "Operator of the data product",
             printing.party(rights.get("operator"))),
        *printing.usage_lines(scope),
        Line("许可期限天数", "Licence term (days)", printing.text(scope.get("term_days"))),
        Line("交付方式", "Delivery mode", printing.text(facts.get("delivery_mode"))),
        Line("有效认证", "Valid certifications", "; ".join(certifications) or "—"),
        Line("上架时间", "Listed at", printing.text(facts.get("listed_at"))),
    ]
    return printing.document_pdf(title_zh="数据产品登记证书",
                                 title_en="Data Product Registration Certificate",
                                 number=document["certificate_no"], lines=lines,
                                 evidence=document["evidence"])
