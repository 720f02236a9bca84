"""Licences, their access tokens, reported usage and renewals.

A licence is what an order grants: issued `pending` when the order is placed, `active` from
delivery for the frozen term, then `expired`; operators and regulators suspend, reinstate and
revoke it, and an order that ends without being honoured (cancelled, expired unpaid, refunded
in full) revokes it. The licence keeps the facts it needs of its order (ids of the order,
listing and parties, the frozen scope): nothing here reads the orders' tables.
"""

from __future__ import annotations

import enum
import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, created_at, str_enum, uuid_pk
from app.errors import InvalidTransition
from listings.models import DeliveryMode, PriceModel, Territory


class LicenseStatus(enum.StrEnum):
    PENDING = "pending"
    ACTIVE = "active"
    EXPIRED = "expired"
    SUSPENDED = "suspended"
    REVOKED = "revoked"


class RenewalStatus(enum.StrEnum):
    PENDING = "pending"  # its order is not completed yet
    APPLIED = "applied"  # the licence was extended
    VOID = "void"  # its order ended unpaid, cancelled or refunded (or the licence was revoked)


class FaultParty(enum.StrEnum):
    BUYER = "buyer"
    MERCHANT = "merchant"
    NONE = "none"


# The predicate of the expiry job's partial index, repeated as written by its query.
ACTIVE_LICENSE = "status = 'active'"


class License(Base):
    """The rights one order grants: who holds them, for what, until when, how many calls."""

    __tablename__ = "licenses"

    id: Mapped[uuid_pk]
    order_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("orders.id"), unique=True)
    listing_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("listings.id"), index=True)
    buyer_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("parties.id"))
    merchant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("parties.id"))
    # Public agencies a joint purchase serves (统采分用): they hold the licence with the buyer.
    beneficiaries: Mapped[list[str]] = mapped_column(JSON)
    quantity: Mapped[int] = mapped_column(Integer)
    # The purpose the buyer declared, within the listing's purposes at purchase.
    purpose: Mapped[str] = mapped_column(String(64))
    purposes: Mapped[list[str]] = mapped_column(JSON)
    territory: Mapped[Territory] = mapped_column(str_enum(Territory, "license_territory"))
    resale: Mapped[bool] = mapped_column(Boolean)
    derivatives: Mapped[bool] = mapped_column(Boolean)
    delivery_mode: Mapped[DeliveryMode] = mapped_column(
        str_enum(DeliveryMode, "license_delivery_mode"))
    price_model: Mapped[PriceModel] = mapped_column(str_enum(PriceModel, "license_price_model"))
    # None: no end (the listing set no term).
    term_days: Mapped[int | None] = mapped_column(Integer)
    status: Mapped[LicenseStatus] = mapped_column(str_enum(LicenseStatus, "license_status"),
                                                  default=LicenseStatus.PENDING)
    valid_from: Mapped[datetime | None]
    valid_until: Mapped[datetime | None]
    # Known at delivery: true when the exchange holds the delivered data and checked its hash.
    verified_delivery: Mapped[bool | None] = mapped_column(Boolean)
    # The data file delivered, when the exchange holds it: what a download serves.
    artifact_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("artifacts.id"))
    # Per-call products: the calls bought (the order's quantity) and those not yet reported.
    calls_total: Mapped[int | None] = mapped_column(Integer)
    calls_remaining: Mapped[int | None] = mapped_column(Integer)
    # Why it is suspended, revoked or expired, and since when.
    status_reason: Mapped[str | None] = mapped_column(Text)
    status_changed_at: Mapped[datetime | None]
    created_at: Mapped[created_at]

    __table_args__ = (
        Index("ix_licenses_buyer_created", "buyer_id", "created_at"),
        Index("ix_licenses_merchant_created", "merchant_id", "created_at"),
        # The expiry job: active licences by end, nothing else.
        Index("ix_licenses_active_until", "valid_until", postgresql_where=text(ACTIVE_LICENSE),
              sqlite_where=text(ACTIVE_LICENSE)),
    )

    def holders(self) -> set[str]:
        """Ids (text) of the parties that use the licence: its buyer and beneficiaries."""
        return {str(self.buyer_id), *self.beneficiaries}

    def _move(self, allowed: set[LicenseStatus], to: LicenseStatus, at: datetime,
              reason: str | None, doing: str) -> None:
        if self.status not in allowed:
            raise InvalidTransition(f"A {self.status.value} licence cannot be {doing}.",
                                    status=self.status.value)
        self.status, self.status_reason, self.status_changed_at = to, reason, at

    def activate(self, at: datetime, *, artifact_id: uuid.UUID | None) -> None:
        """Delivered (an artifact the exchange holds, verified; or data delivered outside it,
        unverified): the term starts now."""
        self._move({LicenseStatus.PENDING}, LicenseStatus.ACTIVE, at, None, "activated")
        self.valid_from, self.artifact_id = at, artifact_id
        self.verified_delivery = artifact_id is not None
        self.valid_until = at + timedelta(days=self.term_days) if self.term_days else None

    def expire(self, at: datetime) -> None:
        self._move({LicenseStatus.ACTIVE}, LicenseStatus.EXPIRED, at, "term ended", "expired")

    def suspend(self, at: datetime, reason: str) -> None:
        self._move({LicenseStatus.ACTIVE}, LicenseStatus.SUSPENDED, at, reason, "suspended")

    def reinstate(self, at: datetime, reason: str) -> None:
        self._move({LicenseStatus.SUSPENDED}, LicenseStatus.ACTIVE, at, reason, "reinstated")

    def revoke(self, at: datetime, reason: str) -> None:
        self._move({LicenseStatus.PENDING, LicenseStatus.ACTIVE, LicenseStatus.SUSPENDED,
                    LicenseStatus.EXPIRED}, LicenseStatus.REVOKED, at, reason, "revoked")

    def extend(self, days: int, at: datetime) -> None:
        """One more term from the current end (a renewal); a licence that lapsed meanwhile is
        active again if the new end is still ahead."""
        assert self.valid_until is not None
        self.valid_until += timedelta(days=days)
        if self.status is LicenseStatus.EXPIRED and self.valid_until > at:
            self._move({LicenseStatus.EXPIRED}, LicenseStatus.ACTIVE, at, "renewed", "renewed")

    def in_force(self, at: datetime) -> bool:
        """Active and within its term (the expiry job may not have run yet)."""
        return self.status is LicenseStatus.ACTIVE and (
            self.valid_until is None or self.valid_until > at)

    def usable(self, at: datetime) -> bool:
        """In force with calls left (per-call licences)."""
        return self.in_force(at) and (self.calls_remaining is None or self.calls_remaining > 0)

    def scope(self) -> dict[str, Any]:
        return {"purpose": self.purpose, "purposes": list(self.purposes),
                "territory": self.territory.value, "resale": self.resale,
                "derivatives": self.derivatives}


class LicenseToken(Base):
    """A short-lived access token to a merchant's API under one licence; only its SHA-256 is
    stored, the token itself is shown once."""

    __tablename__ = "license_tokens"

    id: Mapped[uuid_pk]
    license_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("licenses.id"), index=True)
    # Introspection finds the token by this (unique) index alone.
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    issued_to: Mapped[uuid.UUID] = mapped_column(ForeignKey("parties.id"))
    expires_at: Mapped[datetime] = mapped_column(index=True)
    revoked_at: Mapped[datetime | None]
    created_at: Mapped[created_at]


class LicenseUsage(Base):
    """Calls a merchant reported for a period under a per-call licence."""

    __tablename__ = "license_usage"

    id: Mapped[uuid_pk]
    license_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("licenses.id"), index=True)
    calls: Mapped[int] = mapped_column(Integer)
    period_start: Mapped[datetime]
    period_end: Mapped[datetime]
    calls_remaining: Mapped[int] = mapped_column(Integer)  # after this report
    reported_by: Mapped[uuid.UUID] = mapped_column(ForeignKey("parties.id"))
    created_at: Mapped[created_at]


class LicenseRenewal(Base):
    """A renewal order of a subscription: once it completes, the licence runs one more term
    (the term in force when it was ordered) from its end then."""

    __tablename__ = "license_renewals"

    order_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("orders.id"), primary_key=True)
    license_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("licenses.id"), index=True)
    term_days: Mapped[int] = mapped_column(Integer)
    status: Mapped[RenewalStatus] = mapped_column(str_enum(RenewalStatus, "renewal_status"),
                                                  default=RenewalStatus.PENDING)
    extended_from: Mapped[datetime | None]
    extended_to: Mapped[datetime | None]
    closed_at: Mapped[datetime | None]
    created_at: Mapped[created_at]
