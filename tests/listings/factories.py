"""Listing bodies and helpers for the listings tests."""

from __future__ import annotations

import copy
import uuid
from datetime import timedelta
from typing import Any

from flask.testing import FlaskClient
from sqlalchemy import select

from app import clock
from app.db import unit_of_work
from app.parties.models import Party
from listings import consents
from listings.rights_models import Consent, ConsentStatus
from tests.factories import Member


def listing_body(merchant: Member, **overrides: Any) -> dict[str, Any]:
    """A complete, admissible listing body owned and operated by the merchant."""
    body: dict[str, Any] = {
        "title": "Shanghai road traffic flows 上海道路交通流量",
        "description": "Hourly vehicle counts on 1,200 arterial road segments, anonymized.",
        "category": "transport",
        "tags": ["traffic", "交通", "hourly"],
        "classification": "general",
        "contains_personal_info": False,
        "anonymized": False,
        "consent_basis": None,
        "source": {"origin": "collected", "description": "Roadside sensors we operate",
                   "legal_basis": "Road sensor operating licence 2024-17"},
        "rights": {"holder_id": merchant.id, "processor_ids": [], "operator_id": merchant.id},
        "usage_scope": {"purposes": ["research", "logistics_planning"], "term_days": 365,
                        "territory": "domestic", "resale": False, "derivatives": True},
        "delivery_mode": "api",
        "price_model": "subscription",
        "unit_price": 120_000,
        "currency": "CNY",
        "licenses_available": 10,
        "revenue_shares": [],
    }
    merged = copy.deepcopy(body)
    merged.update(overrides)
    return merged


def accept_consents(client: FlaskClient, listing_id: str) -> int:
    """Every pending consent of the listing accepted by the party asked, as its
    POST /consents/{id}/decide would (through the service: the test holds no key of theirs);
    how many. For tests about something else than consents."""
    with client.application.app_context(), unit_of_work() as session:
        pending = session.scalars(select(Consent).where(
            Consent.listing_id == uuid.UUID(listing_id),
            Consent.status == ConsentStatus.PENDING)).all()
        for consent in pending:
            party = session.get(Party, consent.party_id)
            assert party is not None
            consents.decide_consent(session, consent_id=consent.id, party=party, accept=True,
                                    note=None)
        return len(pending)


def public_data(merchant: Member, authority: Member, *, valid_days: float = 365,
                weight: float = 30) -> dict[str, Any]:
    """Overrides of `listing_body` for public data under authorized operation (公共数据授权运营):
    the authority's authorization and its revenue share (`weight` of 100, the merchant's
    processing the rest)."""
    return {
        "source": {"origin": "public_authorized", "description": "City traffic open data",
                   "legal_basis": "Authorized operation agreement 2025-03 with the city",
                   "authorization": {
                       "authority_id": authority.id, "document_ref": "SH-PD-2025-03",
                       "valid_until": (clock.now() + timedelta(days=valid_days)).isoformat()}},
        "revenue_shares": [
            {"party_id": authority.id, "role": "public_authority", "basis": "contribution",
             "weight": weight},
            {"party_id": merchant.id, "role": "processor", "basis": "investment",
             "weight": 100 - weight}],
    }
