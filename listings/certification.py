"""Certifications (第三方认证评级), quality reports, and the operation evaluation of listings."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session, selectinload

from app import audit, clock
from app.errors import DomainError
from app.parties.models import Actor, Party
from credit import services as credit
from listings.errors import ListingNotFound
from listings.models import (
    Certification,
    CertificationScope,
    Classification,
    Listing,
    ListingStatus,
    QualityReport,
    Rating,
)

# What sensitive and important data must hold to be listed.
REQUIRED_SCOPE = CertificationScope.COMPLIANCE
REQUIRED_RATING = Rating.A
# A listing is flagged for review when its buyers' reports average below this...
POOR_QUALITY_AVERAGE = 2.5
# ...over at least this many reports.
POOR_QUALITY_MIN_REPORTS = 3
_GOOD_RATINGS = [rating for rating in Rating if rating.at_least(REQUIRED_RATING)]


class ExpiredCertification(DomainError):
    status, code, title = 422, "validation_error", "valid_until must be in the future"


def certification_satisfied(session: Session, listing_id: uuid.UUID, at: datetime) -> bool:
    """True when the listing holds a valid compliance certification rated A or better."""
    candidates = session.scalars(select(Certification).where(
        Certification.listing_id == listing_id,
        Certification.valid_until > at,
        Certification.rating.in_(_GOOD_RATINGS)))
    return any(c.satisfies(REQUIRED_SCOPE, REQUIRED_RATING, at) for c in candidates)


def certify_listing(session: Session, *, listing_id: uuid.UUID, certifier: Party,
                    body: dict[str, Any]) -> Certification:
    """A certification body rates a listing for some scopes until a date."""
    listing = session.get(Listing, listing_id)
    if listing is None or listing.status is ListingStatus.DRAFT:
        raise ListingNotFound()
    if body["valid_until"] <= clock.now():
        raise ExpiredCertification(errors={"valid_until": ["Must be in the future."]})
    certification = Certification(
        listing_id=listing.id, certifier_id=certifier.id, rating=body["rating"],
        scopes=sorted({scope.value for scope in body["scopes"]}),
        valid_until=body["valid_until"], report_ref=body["report_ref"])
    session.add(certification)
    session.flush()
    credit.record_system_event(
        session, party_id=listing.merchant_id, kind="certification_obtained",
        description=f"{certification.rating.value} certification of {listing.title}",
        evidence_ref=f"certification:{certification.id}")
    audit.record(session, actor_id=certifier.id, action="listing.certified", subject=listing,
                 details={"certification_id": str(certification.id),
                          "rating": certification.rating.value, "scopes": certification.scopes,
                          "valid_until": certification.valid_until.isoformat()})
    return certification


def report_quality(session: Session, *, listing_id: uuid.UUID, buyer: Party, score: int,
                   issue: str | None) -> QualityReport:
    """A buyer's quality feedback; the listing's running totals move in the same statement."""
    listing = session.get(Listing, listing_id)
    if listing is None or listing.status is not ListingStatus.LISTED:
        raise ListingNotFound()
    report = QualityReport(listing_id=listing.id, buyer_id=buyer.id, score=score, issue=issue)
    session.add(report)
    # A counter update, not a merchant edit: it must not bump the listing's version.
    session.execute(
        update(Listing).where(Listing.id == listing.id).values(
            quality_reports_count=Listing.quality_reports_count + 1,
            quality_score_total=Listing.quality_score_total + score)
        .execution_options(synchronize_session=False))
    session.flush()
    session.refresh(listing, ["quality_reports_count", "quality_score_total"])
    audit.record(session, actor_id=buyer.id, action="listing.quality_reported", subject=listing,
                 details={"report_id": str(report.id), "score": score})
    return report


def evaluate_listings(session: Session, *, actor: Actor, at: datetime) -> dict[str, int]:
    """Operation evaluation: suspend listings whose required certification lapsed, and flag
    listings with poor quality reports for review. Running it twice changes nothing more."""
    suspended = flagged = 0
    needing = select(Listing).where(
        Listing.status == ListingStatus.LISTED,
        Listing.classification.in_([c for c in Classification if c.needs_certification]),
    ).options(selectinload(Listing.certifications))
    for listing in session.scalars(needing):
        if not any(c.satisfies(REQUIRED_SCOPE, REQUIRED_RATING, at)
                   for c in listing.certifications):
            listing.move("suspend", reason="Certification expired: no valid compliance "
                                           "certification rated A or better.")
            audit.record(session, actor_id=actor.id, action="listing.suspended", subject=listing,
                         details={"status": listing.status.value, "reason": listing.status_reason,
                                  "by": "evaluation"})
            suspended += 1
    poor = select(Listing).where(
        Listing.status == ListingStatus.LISTED,
        Listing.review_flag.is_(None),
        Listing.quality_reports_count >= POOR_QUALITY_MIN_REPORTS,
        Listing.quality_score_total < POOR_QUALITY_AVERAGE * Listing.quality_reports_count)
    for listing in session.scalars(poor):
        listing.review_flag = (f"Poor quality: average {listing.quality.average} over "
                               f"{listing.quality_reports_count} buyer reports.")
        audit.record(session, actor_id=actor.id, action="listing.flagged", subject=listing,
                     details={"status": listing.status.value, "flag": listing.review_flag})
        flagged += 1
    session.flush()
    return {"suspended": suspended, "flagged": flagged}
