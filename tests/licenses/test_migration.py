"""Migration 0021 gives every order made before licences were records its licence."""

from __future__ import annotations

from datetime import datetime, timedelta

from flask_migrate import downgrade, upgrade

from app.extensions import db
from tests.licenses.helpers import API, PER_CALL, Licensing
from tests.orders.factories import give_completed_order
from tests.support import ok


def test_existing_orders_get_licences_from_their_frozen_scope_and_their_state(app, market):
    trade = Licensing(market)
    listing, per_call = trade.listing(), trade.listing(**PER_CALL)
    unpaid = trade.order(listing)
    paid = trade.order(listing)
    trade.pay(paid)
    delivered, _ = trade.delivered(listing)
    completed, _ = trade.delivered(per_call, quantity=40)
    trade.accept(completed)
    cancelled = trade.order(listing)
    trade.cancel(cancelled)
    give_completed_order(trade.client, market.buyer.id, listing["id"])  # frozen as {}

    db.session.remove()  # no transaction of the requests' left open while tables change
    downgrade(revision="0020")
    db.session.remove()
    upgrade()
    db.session.remove()

    licences = {licence["order_id"]: licence for licence in ok(trade.client.get(
        f"{API}/licenses", headers=market.operator.headers, query_string={"page_size": 100}))}
    orders = {order["id"]: order for order in ok(trade.client.get(
        f"{API}/orders", headers=market.operator.headers, query_string={"page_size": 100}))}
    assert set(licences) == set(orders)
    assert all(orders[order_id]["license_id"] == licence["id"]
               for order_id, licence in licences.items())
    assert {order_id: (licence["status"], licence["status_reason"])
            for order_id, licence in licences.items() if order_id in (
                unpaid["id"], paid["id"], delivered["id"], completed["id"], cancelled["id"])} == {
        unpaid["id"]: ("pending", None), paid["id"]: ("pending", None),
        delivered["id"]: ("active", None), completed["id"]: ("active", None),
        cancelled["id"]: ("revoked", "order cancelled")}

    active = licences[delivered["id"]]
    assert active["valid_from"] == delivered["delivered_at"]
    assert datetime.fromisoformat(active["valid_until"]) == (
        datetime.fromisoformat(delivered["delivered_at"]) + timedelta(days=365))
    assert active["verified_delivery"] is False
    assert licences[unpaid["id"]]["verified_delivery"] is None
    assert licences[completed["id"]]["calls_remaining"] == 40
    assert licences[delivered["id"]]["calls_remaining"] is None
    # An order frozen without a scope takes its listing's.
    [bare] = [licence for order_id, licence in licences.items() if order_id not in (
        unpaid["id"], paid["id"], delivered["id"], completed["id"], cancelled["id"])]
    assert (bare["purposes"], bare["price_model"], bare["status"]) == (
        listing["usage_scope"]["purposes"], "subscription", "active")
