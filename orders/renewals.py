"""Renewal of a subscription: a new order of the same listing, for the same purpose and
holders, at the price and band in force; once it completes, the licence runs one more term
from its current end (`licenses.order_completed`)."""

from __future__ import annotations

import uuid

from sqlalchemy.orm import Session

from app.parties.models import Party
from licenses import services as licenses
from orders.models import Order
from orders.services import place_order


def renew_license(session: Session, *, license_id: uuid.UUID, buyer: Party) -> Order:
    """The licence's buyer orders its renewal (the licence row is held until the order is
    placed, so two renewals of one licence are never both in progress)."""
    license = licenses.ensure_renewable(session, license_id=license_id, actor=buyer)
    return place_order(session, buyer=buyer, listing_id=license.listing_id,
                       quantity=license.quantity, purpose=license.purpose,
                       beneficiaries=[uuid.UUID(b) for b in license.beneficiaries],
                       renewal_of=license)
