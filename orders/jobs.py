"""Scheduled jobs of the orders domain."""

from __future__ import annotations

import logging

from app import clock
from app.db import unit_of_work
from app.parties.models import SYSTEM
from app.scheduler import scheduled_job
from orders import demands, services

log = logging.getLogger(__name__)


@scheduled_job("expire_unpaid_orders", "interval", minutes=1)
def expire_unpaid_orders_job() -> None:
    """Unpaid orders past ORDER_PAYMENT_TTL_MINUTES expire and release their licenses."""
    with unit_of_work() as session:
        expired = services.expire_unpaid_orders(session, at=clock.now(), actor=SYSTEM)
    log.info("unpaid orders expired", extra={"expired": expired})


@scheduled_job("auto_accept_orders", "interval", minutes=30)
def auto_accept_orders_job() -> None:
    """Delivered orders are accepted after ORDER_AUTO_ACCEPT_DAYS without a dispute."""
    with unit_of_work() as session:
        accepted = services.auto_accept_delivered_orders(session, at=clock.now(), actor=SYSTEM)
    log.info("delivered orders auto-accepted", extra={"accepted": accepted})


@scheduled_job("match_open_demands", "interval", minutes=5)
def match_open_demands_job() -> None:
    """Expire demands past their date; order for open auto-order demands that now match."""
    with unit_of_work() as session:
        expired = demands.expire_demands(session, at=clock.now())
    ordered = 0
    with unit_of_work() as session:
        due = demands.open_auto_demands(session, clock.now())
    for demand_id in due:
        # One transaction per demand: one buyer's failure does not undo another's order.
        with unit_of_work() as session:
            ordered += demands.serve_open_demand(session, demand_id, clock.now()) is not None
    log.info("demands matched", extra={"expired": expired, "ordered": ordered})
