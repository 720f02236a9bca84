"""Certifications (第三方认证评级), quality reports, and the operation evaluation of listings."""

from __future__ import annotations

import enum
import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, ScalarSelect, case, exists, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from app import audit, clock
from app.db import rows_matched
from app.parties.models import Actor, Party, Role
from credit import services as credit
from listings import qualifications
from listings.errors import (
    CertificationNotFound,
    ExpiredCertification,
    ListingNotFound,
    OwnListing,
    QualityAlreadyReported,
)
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
# A certification earns the merchant credit only while the product is on its way to the
# market or on it: certifying a rejected, suspended or delisted product proves nothing to buyers.
_CREDITABLE = (ListingStatus.PENDING_REVIEW, ListingStatus.LISTED)
_NEEDING_CERTIFICATION = [c for c in Classification if c.needs_certification]


def _satisfying(certifications: Iterable[Certification], at: datetime) -> bool:
    return any(c.satisfies(REQUIRED_SCOPE, REQUIRED_RATING, at) for c in certifications)


def certification_satisfied(session: Session, listing_id: uuid.UUID, at: datetime) -> bool:
    """True when the listing holds a valid compliance certification rated A or better."""
    # The rule is applied once, in Python (Certification.satisfies): scopes are a JSON list,
    # which SQLite and PostgreSQL query differently, and a listing has only a few certificates.
    # Queried, not read from listing.certifications: that view-only collection is not
    # refreshed when a certification is added later in the same session.
    return _satisfying(session.scalars(
        select(Certification).where(Certification.listing_id == listing_id)), at)


def best_rating_of(listing_id: Any, at: datetime) -> ScalarSelect[int]:
    """SQL: the rank (see `rating_of_rank`) of the best rating valid at `at` of the listing
    in `listing_id` (a column), NULL without one: scores a query's listings in that query."""
    rank = case(*[(Certification.rating == rating, n) for n, rating in enumerate(Rating)])
    return select(func.min(rank)).where(Certification.listing_id == listing_id,
                                        Certification.valid_until > at,
                                        Certification.revoked_at.is_(None)).scalar_subquery()


def rating_of_rank(rank: int | None) -> Rating | None:
    return None if rank is None else list(Rating)[rank]


def best_rating(session: Session, listing_id: uuid.UUID, at: datetime) -> Rating | None:
    """The best rating (any scope) of one listing valid at `at`, None without one."""
    return rating_of_rank(session.scalar(select(best_rating_of(listing_id, at))))


def certify_listing(session: Session, *, listing_id: uuid.UUID, certifier: Party,
                    body: dict[str, Any]) -> Certification:
    """A certification body rates a listing for some scopes until a date (its accreditations
    must cover each scope at the listing's classification)."""
    listing = session.get(Listing, listing_id)
    if listing is None or listing.status is ListingStatus.DRAFT:
        raise ListingNotFound()
    if listing.merchant_id == certifier.id:
        # A party holding both roles would otherwise vouch for its own product (and earn
        # credit for it): certification is a third party's judgement.
        raise OwnListing("A certifier cannot certify its own listing.")
    qualifications.ensure_accredited(session, certifier=certifier, listing=listing,
                                     scopes=list(body["scopes"]))
    if body["valid_until"] <= clock.now():
        raise ExpiredCertification(errors={"valid_until": ["Must be in the future."]})
    certification = Certification(
        listing_id=listing.id, certifier_id=certifier.id, rating=body["rating"],
        scopes=sorted({scope.value for scope in body["scopes"]}),
        valid_until=body["valid_until"], report_ref=body["report_ref"])
    session.add(certification)
    session.flush()
    credited = (certification.rating.at_least(REQUIRED_RATING)
                and _claim_certification_credit(session, listing.id))
    if credited:
        credit.record_system_event(
            session, party_id=listing.merchant_id, kind="certification_obtained",
            description=f"{certification.rating.value} certification of {listing.title}",
            evidence_ref=f"certification:{certification.id}")
    audit.record(session, actor_id=certifier.id, action="listing.certified", subject=listing,
                 details={"certification_id": str(certification.id),
                          "rating": certification.rating.value, "scopes": certification.scopes,
                          "valid_until": certification.valid_until.isoformat(),
                          "credited": credited})
    return certification


def revoke_certification(session: Session, *, certification_id: uuid.UUID, actor: Actor,
                         reason: str) -> Certification:
    """The issuing certifier or an operator withdraws a certification. A listed product that
    relied on it (its classification needs a certification, and no other valid one satisfies
    the requirement now) is suspended, the reason naming the certification."""
    certification = session.get(Certification, certification_id, with_for_update=True,
                                populate_existing=True)
    if certification is None or not (certification.certifier_id == actor.id
                                     or actor.has_role(Role.OPERATOR)):
        raise CertificationNotFound()  # another body's certification: not revealed
    now = clock.now()
    certification.revoke(by=actor.id, reason=reason, at=now)
    session.flush()
    listing = session.get(Listing, certification.listing_id, with_for_update=True,
                          populate_existing=True)
    assert listing is not None
    audit.record(session, actor_id=actor.id, action="listing.certification_revoked",
                 subject=listing, details={"status": listing.status.value,
                                           "certification_id": str(certification.id),
                                           "certifier_id": str(certification.certifier_id),
                                           "reason": reason})
    if (listing.status is ListingStatus.LISTED and listing.classification.needs_certification
            and not certification_satisfied(session, listing.id, now)):
        listing.move("suspend", reason=f"Certification {certification.id} revoked: {reason}")
        session.flush()
        audit.record(session, actor_id=actor.id, action="listing.suspended", subject=listing,
                     details={"status": listing.status.value, "reason": listing.status_reason,
                              "by": "certification_revoked",
                              "certification_id": str(certification.id)})
    return certification


def _claim_certification_credit(session: Session, listing_id: uuid.UUID) -> bool:
    """True for the one certification that earns the listing's credit event.

    A conditional UPDATE, not read-then-write: of two concurrent certifications only one
    matches `certification_credited_at IS NULL`, and the status is the one in the database.
    Not an ORM change either, so the merchant's version (ETag) stays.
    """
    claimed = rows_matched(session, (
        update(Listing)
        .where(Listing.id == listing_id, Listing.certification_credited_at.is_(None),
               Listing.status.in_(_CREDITABLE))
        .values(certification_credited_at=clock.now())
        .execution_options(synchronize_session=False)))
    return bool(claimed)


def report_quality(session: Session, *, listing_id: uuid.UUID, buyer: Party, score: int,
                   issue: str | None) -> QualityReport:
    """A buyer's quality feedback, once per listing; the running totals move with it."""
    listing = session.get(Listing, listing_id)
    if listing is None or listing.status is not ListingStatus.LISTED:
        raise ListingNotFound()
    if listing.merchant_id == buyer.id:
        # A merchant that also buys could polish its own average.
        raise OwnListing("A merchant cannot report on the quality of its own listing.")
    if session.scalar(select(exists().where(QualityReport.listing_id == listing.id,
                                            QualityReport.buyer_id == buyer.id))):
        raise QualityAlreadyReported("You have already reported on this listing.")
    report = QualityReport(listing_id=listing.id, buyer_id=buyer.id, score=score, issue=issue)
    session.add(report)
    try:
        with session.begin_nested():
            session.flush()
    except IntegrityError:  # a concurrent report of the same buyer's won the race
        raise QualityAlreadyReported("You have already reported on this listing.") from None
    # A counter update, not a merchant edit: it must not bump the listing's version.
    session.execute(
        update(Listing).where(Listing.id == listing.id).values(
            quality_reports_count=Listing.quality_reports_count + 1,
            quality_score_total=Listing.quality_score_total + score)
        .execution_options(synchronize_session=False))
    session.refresh(listing, ["quality_reports_count", "quality_score_total"])
    audit.record(session, actor_id=buyer.id, action="listing.quality_reported", subject=listing,
                 details={"report_id": str(report.id), "score": score})
    return report


def clear_review_flag(session: Session, *, listing_id: uuid.UUID, actor: Actor,
                      reason: str) -> Listing:
    """An operator clears a quality flag after looking into it (409 when there is none)."""
    # Locked and re-read: the report count remembered must be the one the operator cleared.
    listing = session.get(Listing, listing_id, with_for_update=True, populate_existing=True)
    if listing is None:
        raise ListingNotFound()
    cleared = listing.clear_review_flag()
    session.flush()
    audit.record(session, actor_id=actor.id, action="listing.flag_cleared", subject=listing,
                 details={"status": listing.status.value, "flag": cleared, "reason": reason})
    return listing


# --- operation evaluation (运营评估) ---------------------------------------------------------

class Evaluation(enum.StrEnum):
    """What evaluating one listing did."""

    SUSPENDED = "suspended"
    FLAGGED = "flagged"
    UNCHANGED = "unchanged"
    SKIPPED = "skipped"  # locked by a concurrent change: the next run takes it


def _needs_valid_certification() -> list[ColumnElement[bool]]:
    return [Listing.status == ListingStatus.LISTED,
            Listing.classification.in_(_NEEDING_CERTIFICATION)]


def _poorly_rated() -> list[ColumnElement[bool]]:
    """Listed, not flagged, and rated poorly over enough reports since any cleared flag."""
    return [Listing.status == ListingStatus.LISTED,
            Listing.review_flag.is_(None),
            Listing.quality_reports_count >= POOR_QUALITY_MIN_REPORTS,
            Listing.quality_score_total < POOR_QUALITY_AVERAGE * Listing.quality_reports_count,
            or_(Listing.flag_cleared_at_count.is_(None),
                Listing.quality_reports_count > Listing.flag_cleared_at_count)]


def evaluation_candidates(session: Session, *, at: datetime) -> list[uuid.UUID]:
    """Listings the evaluation may have to act on: lapsed certification or poor quality.

    A read only; each candidate is re-checked under its own lock by `evaluate_listing`.
    """
    needing = session.scalars(select(Listing).where(*_needs_valid_certification())
                              .options(selectinload(Listing.certifications)))
    lapsed = [listing.id for listing in needing
              if not _satisfying(listing.certifications, at)]
    poor = session.scalars(select(Listing.id).where(*_poorly_rated()))
    return list(dict.fromkeys([*lapsed, *poor]))


def evaluate_listing(session: Session, *, listing_id: uuid.UUID, actor: Actor,
                     at: datetime) -> Evaluation:
    """Suspend the listing if its required certification lapsed, else flag it if its buyers
    rate it poorly. Re-checked under a row lock, so running it twice changes nothing more."""
    # SKIP LOCKED (PostgreSQL; SQLite has one writer anyway): a listing an operator or
    # another evaluator is changing right now is left for the next run instead of waiting.
    listing = session.scalars(
        select(Listing).where(Listing.id == listing_id)
        .with_for_update(skip_locked=True)
        .execution_options(populate_existing=True)).one_or_none()
    if listing is None:
        return Evaluation.SKIPPED
    if (listing.status is ListingStatus.LISTED and listing.classification.needs_certification
            and not certification_satisfied(session, listing.id, at)):
        listing.move("suspend", reason="Certification expired: no valid compliance "
                                       "certification rated A or better.")
        session.flush()
        audit.record(session, actor_id=actor.id, action="listing.suspended", subject=listing,
                     details={"status": listing.status.value, "reason": listing.status_reason,
                              "by": "evaluation"})
        return Evaluation.SUSPENDED
    if session.scalar(select(exists().where(Listing.id == listing.id, *_poorly_rated()))):
        listing.flag_for_review(f"Poor quality: average {listing.quality.average} over "
                                f"{listing.quality_reports_count} buyer reports.")
        session.flush()
        audit.record(session, actor_id=actor.id, action="listing.flagged", subject=listing,
                     details={"status": listing.status.value, "flag": listing.review_flag})
        return Evaluation.FLAGGED
    return Evaluation.UNCHANGED
