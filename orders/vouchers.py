"""The transaction voucher (交易凭证) of a completed order: its facts, logged once as their own
audit entry (`voucher.issued`) when the voucher is first asked for, and the evidence log's
proof of that entry.

Issued once per order: a first issue looks the entry up again and records it under the
evidence log's issuing lock, so concurrent first requests queue there and the later ones find
the entry the first committed. The voucher shows the facts as issued, from the entry.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app import audit
from app.db import unit_of_work
from app.errors import InvalidTransition
from app.log import evidence, printing
from app.log.printing import Line
from app.parties.models import Actor, Party
from licenses import services as licenses
from listings.models import Listing
from orders.errors import OrderNotFound
from orders.models import Order, OrderStatus
from orders.services import can_see

VOUCHER = evidence.DocumentKind(kind="transaction_voucher", number_field="voucher_no",
                                prefix="TV-", action="voucher.issued")
ACTION = VOUCHER.action


def _party(party: Party) -> dict[str, Any]:
    return {"id": str(party.id), "name": party.name, "credit_code": party.credit_code}


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def voucher_facts(session: Session, order: Order) -> dict[str, Any]:
    """What the voucher attests, from the order and its frozen licence."""
    listing = session.get(Listing, order.listing_id)
    parties = {party.id: party for party in session.scalars(
        select(Party).where(Party.id.in_([order.buyer_id, order.merchant_id,
                                          *map(uuid.UUID, order.beneficiaries)])))}
    license = order.license or {}
    # The term as the licence runs it: from delivery (an order made before licences were
    # records has none: its frozen end stands).
    record = licenses.license_of_order(session, order.id)
    valid_from = _iso(record.valid_from) if record else (
        license.get("valid_from") or _iso(order.delivered_at))
    valid_until = _iso(record.valid_until) if record else license.get("valid_until")
    return {
        "order_id": str(order.id),
        "listing": {"id": str(order.listing_id),
                    "title": license.get("title") or (listing.title if listing else None)},
        "merchant": _party(parties[order.merchant_id]),
        "buyer": _party(parties[order.buyer_id]),
        "beneficiaries": [_party(parties[uuid.UUID(b)]) for b in order.beneficiaries],
        "license": {"purposes": license.get("purposes", [order.purpose]),
                    "territory": license.get("territory"), "resale": license.get("resale"),
                    "derivatives": license.get("derivatives"),
                    "valid_from": valid_from, "valid_until": valid_until},
        "quantity": order.quantity, "unit_price": order.unit_price,
        "total_amount": order.total_amount, "currency": order.currency,
        "paid_at": _iso(order.paid_at), "completed_at": _iso(order.completed_at),
    }


def _may_see(order: Order, viewer: Actor) -> bool:
    return can_see(order, viewer) or str(viewer.id) in order.beneficiaries


def issue_voucher(session: Session, *, order_id: uuid.UUID, viewer: Actor,
                  record: bool) -> bool:
    """Whether the order's voucher was issued; if not and `record`, its entry is recorded
    (written at commit)."""
    order = session.get(Order, order_id)
    if order is None or not _may_see(order, viewer):
        raise OrderNotFound()
    if order.status is not OrderStatus.COMPLETED:
        raise InvalidTransition(f"The order is {order.status.value}: a voucher is issued once "
                                f"it is completed.")
    if _issued(session, order.id):
        return True
    if record:
        audit.record(session, actor_id=viewer.id, action=ACTION, subject=order,
                     listing_id=order.listing_id, details=voucher_facts(session, order))
    return False


def _issued(session: Session, order_id: uuid.UUID) -> bool:
    return evidence.issued_entry(session, action=ACTION, subject_type=Order.__tablename__,
                                 subject_id=str(order_id)) is not None


def voucher(*, order_id: uuid.UUID, viewer: Actor) -> dict[str, Any]:
    """The order's voucher, issued now if it was not, with the evidence that the log holds
    its facts (the log is sealed now if the entry is not in it yet)."""
    with unit_of_work() as session:
        issued = issue_voucher(session, order_id=order_id, viewer=viewer, record=False)
    if not issued:
        with evidence.issuing(), unit_of_work() as session:
            issue_voucher(session, order_id=order_id, viewer=viewer, record=True)
    return VOUCHER.document(*evidence.proved(action=ACTION, subject_type=Order.__tablename__,
                                             subject_id=str(order_id)))


def voucher_by_number(number: str) -> dict[str, Any] | None:
    """The voucher numbered so, as its parties are served it; None when no voucher has that
    number. Not for showing: the public page that asks shows only its checks."""
    return VOUCHER.by_number(number)


def voucher_pdf(document: dict[str, Any]) -> bytes:
    """The voucher on paper: its facts under Chinese and English labels, and its evidence."""
    facts = document["facts"]
    license = facts.get("license") or {}
    listing = facts.get("listing") or {}
    lines = [
        Line("订单编号", "Order", facts.get("order_id") or "—"),
        Line("数据产品", "Data product", f"{listing.get('title') or '—'} ({listing.get('id')})"),
        Line("卖方", "Merchant", printing.party(facts.get("merchant"))),
        Line("买方", "Buyer", printing.party(facts.get("buyer"))),
        Line("受益方", "Beneficiaries", printing.parties(facts.get("beneficiaries"))),
        *printing.usage_lines(license),
        Line("许可起始", "Licence valid from", printing.text(license.get("valid_from"))),
        Line("许可截止", "Licence valid until", printing.text(license.get("valid_until"))),
        Line("数量", "Quantity", printing.text(facts.get("quantity"))),
        Line("单价", "Unit price", printing.money(facts.get("unit_price"), facts.get("currency"))),
        Line("总金额", "Total amount",
             printing.money(facts.get("total_amount"), facts.get("currency"))),
        Line("支付时间", "Paid at", printing.text(facts.get("paid_at"))),
        Line("完成时间", "Completed at", printing.text(facts.get("completed_at"))),
    ]
    return printing.document_pdf(title_zh="交易凭证", title_en="Transaction Voucher",
                                 number=document["voucher_no"], lines=lines,
                                 evidence=document["evidence"])
