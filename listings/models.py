"""Listings, their certifications and quality reports, and the admission rules."""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    Uuid,
    text,
)
from sqlalchemy.orm import Mapped, composite, mapped_column, relationship

from app import clock
from app.db import Base, UTCDateTime, created_at, str_enum, substring_index, uuid_pk
from app.errors import InvalidTransition
from listings.errors import NotFlagged

# The lowest unit price, in fen. Every order is paid (it is placed `pending_payment` and
# paid through a provider), and a zero total would have no payment to take, no ledger
# movement to post and nothing to split at settlement: a product is priced, not free.
MIN_UNIT_PRICE = 1


class Classification(enum.StrEnum):
    """GB/T 43697-2024 grades, lowest first; core data is never traded."""

    OPEN = "open"
    GENERAL = "general"
    SENSITIVE = "sensitive"
    IMPORTANT = "important"
    CORE = "core"

    @property
    def rank(self) -> int:
        return list(Classification).index(self)

    @property
    def needs_certification(self) -> bool:
        return self in (Classification.SENSITIVE, Classification.IMPORTANT)


class SourceOrigin(enum.StrEnum):
    COLLECTED = "collected"
    PUBLIC_AUTHORIZED = "public_authorized"
    PURCHASED = "purchased"
    DERIVED = "derived"


class Territory(enum.StrEnum):
    DOMESTIC = "domestic"
    CROSS_BORDER = "cross_border"


class DeliveryMode(enum.StrEnum):
    DOWNLOAD = "download"
    API = "api"
    SANDBOX = "sandbox"  # usable but not visible: raw data never leaves the domain


class PriceModel(enum.StrEnum):
    ONE_TIME = "one_time"
    SUBSCRIPTION = "subscription"
    PER_CALL = "per_call"


class ListingStatus(enum.StrEnum):
    DRAFT = "draft"
    PENDING_REVIEW = "pending_review"
    LISTED = "listed"
    REJECTED = "rejected"
    SUSPENDED = "suspended"
    DELISTED = "delisted"


class ShareRole(enum.StrEnum):
    COLLECTOR = "collector"
    PROCESSOR = "processor"
    HOLDER = "holder"
    BROKER = "broker"
    PUBLIC_AUTHORITY = "public_authority"


class ShareBasis(enum.StrEnum):
    INVESTMENT = "investment"
    CONTRIBUTION = "contribution"


class Rating(enum.StrEnum):
    """Certification ratings, best first."""

    AAA = "AAA"
    AA = "AA"
    A = "A"
    B = "B"
    C = "C"

    def at_least(self, other: Rating) -> bool:
        order = list(Rating)
        return order.index(self) <= order.index(other)


class CertificationScope(enum.StrEnum):
    COMPLIANCE = "compliance"
    QUALITY = "quality"
    SECURITY = "security"


class AdmissionList(enum.StrEnum):
    POSITIVE = "positive"  # 正面引导清单: encouraged
    NEGATIVE = "negative"  # 负面禁止清单: prohibited


@dataclass
class Authorization:
    """Public data under authorized operation (公共数据授权运营): who authorized it, by which
    document, until when."""

    authority_id: uuid.UUID
    document_ref: str
    valid_until: datetime


@dataclass
class Source:
    origin: SourceOrigin
    description: str
    legal_basis: str
    # The authorization, flattened into columns (a composite maps one column per field).
    authority_id: uuid.UUID | None = None
    authorization_document_ref: str | None = None
    authorization_valid_until: datetime | None = None

    @property
    def authorization(self) -> Authorization | None:
        if self.authority_id is None:
            return None
        assert self.authorization_document_ref is not None
        assert self.authorization_valid_until is not None
        return Authorization(self.authority_id, self.authorization_document_ref,
                             self.authorization_valid_until)


@dataclass
class Rights:
    """The three split rights: holding, processing-use, product-operation."""

    holder_id: uuid.UUID
    processor_ids: list[str]
    operator_id: uuid.UUID


@dataclass
class UsageScope:
    purposes: list[str]
    term_days: int | None
    territory: Territory
    resale: bool
    derivatives: bool
    # The outbound data security assessment (数据出境安全评估) that personal information
    # leaving the territory rests on.
    cross_border_assessment_ref: str | None = None


@dataclass
class QualitySummary:
    count: int
    average: float | None = field(default=None)

    @classmethod
    def of(cls, count: int, score_total: int) -> QualitySummary:
        return cls(count, round(score_total / count, 2)) if count else cls(0)


# Which transitions each lifecycle step allows, in one place.
_TRANSITIONS: dict[str, tuple[set[ListingStatus], ListingStatus | None]] = {
    "edit": ({ListingStatus.DRAFT, ListingStatus.REJECTED}, None),
    "submit": ({ListingStatus.DRAFT, ListingStatus.REJECTED}, None),
    "approve": ({ListingStatus.PENDING_REVIEW}, ListingStatus.LISTED),
    "reject": ({ListingStatus.PENDING_REVIEW}, ListingStatus.REJECTED),
    "suspend": ({ListingStatus.LISTED}, ListingStatus.SUSPENDED),
    "delist": ({ListingStatus.LISTED, ListingStatus.SUSPENDED, ListingStatus.PENDING_REVIEW},
               ListingStatus.DELISTED),
    # Only a suspension is undone: a delisting is the product's exit (a merchant's withdrawal
    # or an operator's removal), final for everyone; the product comes back as a new listing.
    "relist": ({ListingStatus.SUSPENDED}, ListingStatus.LISTED),
}


class Listing(Base):
    """A data product offered on the exchange, with its rights, scope and lifecycle."""

    __tablename__ = "listings"

    id: Mapped[uuid_pk]
    merchant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("parties.id"))
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text)
    category: Mapped[str] = mapped_column(String(64))
    tags: Mapped[list[str]] = mapped_column(JSON)
    classification: Mapped[Classification] = mapped_column(
        str_enum(Classification, "classification"))
    contains_personal_info: Mapped[bool] = mapped_column(Boolean)
    anonymized: Mapped[bool] = mapped_column(Boolean)
    consent_basis: Mapped[str | None] = mapped_column(String(500))

    source: Mapped[Source] = composite(
        mapped_column("source_origin", str_enum(SourceOrigin, "source_origin"), nullable=False),
        mapped_column("source_description", Text, nullable=False),
        mapped_column("source_legal_basis", String(500), nullable=False),
        mapped_column("source_authority_id", Uuid, ForeignKey("parties.id"), nullable=True),
        mapped_column("source_authorization_ref", String(200), nullable=True),
        mapped_column("source_authorization_valid_until", UTCDateTime(), nullable=True),
    )
    rights: Mapped[Rights] = composite(
        mapped_column("rights_holder_id", Uuid, ForeignKey("parties.id"), nullable=False),
        mapped_column("rights_processor_ids", JSON, nullable=False),
        mapped_column("rights_operator_id", Uuid, ForeignKey("parties.id"), nullable=False),
    )
    usage_scope: Mapped[UsageScope] = composite(
        mapped_column("usage_purposes", JSON, nullable=False),
        mapped_column("usage_term_days", Integer, nullable=True),
        mapped_column("usage_territory", str_enum(Territory, "usage_territory"), nullable=False),
        mapped_column("usage_resale", Boolean, nullable=False),
        mapped_column("usage_derivatives", Boolean, nullable=False),
        mapped_column("usage_cross_border_assessment_ref", String(200), nullable=True),
    )
    delivery_mode: Mapped[DeliveryMode] = mapped_column(str_enum(DeliveryMode, "delivery_mode"))
    price_model: Mapped[PriceModel] = mapped_column(str_enum(PriceModel, "price_model"))
    unit_price: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    licenses_available: Mapped[int | None] = mapped_column(Integer)
    revenue_shares: Mapped[list[dict[str, Any]]] = mapped_column(JSON)

    status: Mapped[ListingStatus] = mapped_column(
        str_enum(ListingStatus, "listing_status"), default=ListingStatus.DRAFT)
    status_reason: Mapped[str | None] = mapped_column(Text)
    admission: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    review_flag: Mapped[str | None] = mapped_column(String(200))
    # quality_reports_count when an operator last cleared the flag: the evaluation flags the
    # listing again only on reports that came after that decision.
    flag_cleared_at_count: Mapped[int | None] = mapped_column(Integer)
    # When a certification first earned the merchant its credit event: once per listing, so
    # repeated certifications of one product cannot inflate the merchant's score.
    certification_credited_at: Mapped[datetime | None]
    quality_reports_count: Mapped[int] = mapped_column(Integer, default=0)
    quality_score_total: Mapped[int] = mapped_column(Integer, default=0)
    # Set at submission when the price is outside a non-binding guide band (a warning only).
    price_warning: Mapped[str | None] = mapped_column(Text)
    version: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[created_at]
    updated_at: Mapped[datetime] = mapped_column(default=clock.now, onupdate=clock.now)
    listed_at: Mapped[datetime | None]

    certifications: Mapped[list[Certification]] = relationship(
        order_by="Certification.issued_at", viewonly=True)

    __mapper_args__ = {"version_id_col": version}
    __table_args__ = (
        # The catalog search: listed products by category, then price.
        Index("ix_listings_status_category_price", "status", "category", "unit_price"),
        Index("ix_listings_merchant_status", "merchant_id", "status"),
        # The catalog's default order (newest first) reads this backwards and stops early.
        Index("ix_listings_created_at_id", "created_at", "id"),
        # The catalog's word search (title or description contains each word).
        substring_index("ix_listings_title_trgm", "title"),
        substring_index("ix_listings_description_trgm", "description"),
        # Two-character words: the character pairs of the text (listings.text_search). The
        # expression as PostgreSQL prints it back, so the migrations check compares equal.
        Index("ix_listings_text_bigrams",
              text("text_bigrams(lower((title::text || ' '::text) || description))"),
              postgresql_using="gin").ddl_if(dialect="postgresql"),
    )
    # Every order updates its listing's licenses: PostgreSQL keeps a fifth of each page free
    # (fillfactor 80, migration 0022), so the new row version fits beside the old (a HOT
    # update) and the indexes, three of them GIN, are not written each time.

    @property
    def quality(self) -> QualitySummary:
        return QualitySummary.of(self.quality_reports_count, self.quality_score_total)

    @property
    def valid_certifications(self) -> list[Certification]:
        """The certifications not yet expired (the detail shows only these)."""
        now = clock.now()
        return [c for c in self.certifications if c.is_valid(now)]

    def ensure_can(self, step: str) -> None:
        """Raise InvalidTransition unless the lifecycle step is allowed from this status."""
        allowed_from, _ = _TRANSITIONS[step]
        if self.status not in allowed_from:
            raise InvalidTransition(
                f"A {self.status.value} listing cannot be {_PAST[step]}.",
                status=self.status.value)

    def move(self, step: str, *, reason: str | None = None) -> None:
        """Apply a lifecycle step with a fixed target status."""
        self.ensure_can(step)
        target = _TRANSITIONS[step][1]
        assert target is not None
        self.set_status(target, reason)

    def set_status(self, status: ListingStatus, reason: str | None = None) -> None:
        self.status = status
        self.status_reason = reason
        if status is ListingStatus.LISTED:
            self.listed_at = clock.now()

    def add_quality_report(self, score: int) -> None:
        self.quality_reports_count += 1
        self.quality_score_total += score

    def flag_for_review(self, flag: str) -> None:
        """Mark the listing for an operator's look (it stays on the market meanwhile)."""
        self.review_flag = flag

    def clear_review_flag(self) -> str:
        """An operator's decision that the flag needs no action; returns the flag cleared.

        The reports seen so far are remembered, so only newer reports can flag it again.
        """
        if self.review_flag is None:
            raise NotFlagged("The listing is not flagged for review.")
        cleared, self.review_flag = self.review_flag, None
        self.flag_cleared_at_count = self.quality_reports_count
        return cleared


_PAST = {"edit": "edited", "submit": "submitted", "approve": "approved", "reject": "rejected",
         "suspend": "suspended", "delist": "delisted", "relist": "relisted"}


class Certification(Base):
    """A third-party certification body's scoped, expiring rating of a listing."""

    __tablename__ = "certifications"

    id: Mapped[uuid_pk]
    listing_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("listings.id"), index=True)
    certifier_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("parties.id"))
    rating: Mapped[Rating] = mapped_column(str_enum(Rating, "rating"))
    scopes: Mapped[list[str]] = mapped_column(JSON)
    valid_until: Mapped[datetime]
    report_ref: Mapped[str] = mapped_column(String(200))
    issued_at: Mapped[created_at]
    # Withdrawn by its certifier or an operator: no longer valid, whatever its date.
    revoked_at: Mapped[datetime | None]
    revoked_by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("parties.id"))
    revocation_reason: Mapped[str | None] = mapped_column(Text)

    def is_valid(self, at: datetime) -> bool:
        return self.revoked_at is None and self.valid_until > at

    def revoke(self, *, by: uuid.UUID | None, reason: str, at: datetime) -> None:
        """Withdraw the certification; once (again → InvalidTransition)."""
        if self.revoked_at is not None:
            raise InvalidTransition("The certification is already revoked.")
        self.revoked_at, self.revoked_by, self.revocation_reason = at, by, reason

    def satisfies(self, scope: CertificationScope, minimum: Rating, at: datetime) -> bool:
        return self.is_valid(at) and scope.value in self.scopes and self.rating.at_least(minimum)


class QualityReport(Base):
    """A buyer's quality feedback on a listing: one per buyer and listing."""

    __tablename__ = "quality_reports"

    id: Mapped[uuid_pk]
    # No index of its own: the unique constraint's index leads with listing_id.
    listing_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("listings.id"))
    buyer_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("parties.id"))
    score: Mapped[int] = mapped_column(Integer)
    issue: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[created_at]

    # One voice per buyer: repeated reports would let one party drag an average down (or up)
    # and get a competitor's product flagged. The database holds it against concurrent posts.
    __table_args__ = (UniqueConstraint("listing_id", "buyer_id"),)


class AdmissionRule(Base):
    """One version of a positive or negative admission rule; versions are immutable.

    A new version supersedes the old (same rule_key, version + 1) and the old is retired;
    rules are retired, never deleted, so every past decision can be explained.
    """

    __tablename__ = "admission_rules"

    id: Mapped[uuid_pk]
    rule_key: Mapped[uuid.UUID]
    version: Mapped[int] = mapped_column(Integer)
    admission_list: Mapped[AdmissionList] = mapped_column(
        "list", str_enum(AdmissionList, "admission_list"))
    name: Mapped[str] = mapped_column(String(200))
    reason: Mapped[str] = mapped_column(Text)
    categories: Mapped[list[str]] = mapped_column(JSON)
    keywords: Mapped[list[str]] = mapped_column(JSON)
    classifications: Mapped[list[str]] = mapped_column(JSON)
    contains_personal_info: Mapped[bool | None] = mapped_column(Boolean)
    territory: Mapped[Territory | None] = mapped_column(str_enum(Territory, "rule_territory"))
    effective_from: Mapped[datetime]
    effective_to: Mapped[datetime | None]
    retired_at: Mapped[datetime | None]
    created_by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("parties.id"))
    created_at: Mapped[created_at]

    __table_args__ = (UniqueConstraint("rule_key", "version"),)

    def in_force(self, at: datetime) -> bool:
        return (self.retired_at is None and self.effective_from <= at
                and (self.effective_to is None or at < self.effective_to))

    def retire(self, at: datetime) -> None:
        if self.retired_at is None:
            self.retired_at = at


class GuidePrice(Base):
    """A guide price (指导价) for a scope: a reference price and a floor/ceiling band.

    The scope is a category, optionally narrowed to one classification and one price model.
    A newer guide price for the same scope supersedes the one in force from its own effective
    date; superseded rows stay, so the history can be read. A binding band is enforced.
    """

    __tablename__ = "guide_prices"

    id: Mapped[uuid_pk]
    category: Mapped[str] = mapped_column(String(64))
    classification: Mapped[Classification | None] = mapped_column(
        str_enum(Classification, "guide_classification"))
    price_model: Mapped[PriceModel | None] = mapped_column(
        str_enum(PriceModel, "guide_price_model"))
    reference_price: Mapped[int] = mapped_column(BigInteger)
    floor_pct: Mapped[int] = mapped_column(Integer)
    ceiling_pct: Mapped[int] = mapped_column(Integer)
    binding: Mapped[bool] = mapped_column(Boolean)
    currency: Mapped[str] = mapped_column(String(3))
    effective_from: Mapped[datetime]
    effective_to: Mapped[datetime | None]
    superseded_at: Mapped[datetime | None]
    superseded_by: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    set_by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("parties.id"))
    created_at: Mapped[created_at]

    __table_args__ = (Index("ix_guide_prices_category_from", "category", "effective_from"),)

    @property
    def floor_price(self) -> int:
        """The reference less floor_pct, rounded up: the floor itself is inside the band."""
        return -(-self.reference_price * (100 - self.floor_pct) // 100)

    @property
    def ceiling_price(self) -> int:
        """The reference plus ceiling_pct, rounded down."""
        return self.reference_price * (100 + self.ceiling_pct) // 100

    @property
    def ends_at(self) -> datetime | None:
        """When it stops being in force: its own end or its supersession, whichever is first."""
        ends = [t for t in (self.effective_to, self.superseded_at) if t is not None]
        return min(ends) if ends else None

    def in_force(self, at: datetime) -> bool:
        ends = self.ends_at
        return self.effective_from <= at and (ends is None or at < ends)

    def contains(self, unit_price: int) -> bool:
        return self.floor_price <= unit_price <= self.ceiling_price

    def applies_to(self, classification: Classification, price_model: PriceModel) -> bool:
        return ((self.classification is None or self.classification is classification)
                and (self.price_model is None or self.price_model is price_model))

    @property
    def specificity(self) -> int:
        """A narrower scope wins over a broader one: classification counts most."""
        return 2 * (self.classification is not None) + (self.price_model is not None)

    def describe(self) -> str:
        scope = " / ".join(v.value for v in (self.classification, self.price_model) if v)
        return (f"{'binding' if self.binding else 'non-binding'} band {self.floor_price}-"
                f"{self.ceiling_price} {self.currency} for {self.category}"
                + (f" ({scope})" if scope else ""))
