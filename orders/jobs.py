"""Scheduled jobs of the orders domain."""

from __future__ import annotations

import logging
from datetime import datetime

from app import clock
from app.db import unit_of_work
from app.parties.models import SYSTEM, Actor
from app.scheduler import scheduled_job
from orders import demands, remedies, services

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


def refund_undelivered_orders(*, at: datetime, actor: Actor) -> dict[str, int]:
    """Refund every paid order still undelivered ORDER_DELIVERY_DAYS after payment, batch
    after batch, each in a unit of work of its own; counts by outcome.

    One transaction per order: each holds a call to its payment provider, so the order's row
    is locked for its own refund only, and an order whose refund fails (the provider down)
    rolls back alone, is logged, and is taken again by the next run with the same
    idempotency key. Reruns change nothing more (each refund re-checks under the row lock).
    Call it outside any open unit of work, or the units would join that one.
    """
    outcome = {"refunded": 0, "skipped": 0, "failed": 0}
    after = None
    while True:
        with unit_of_work() as session:
            due = remedies.undelivered_orders_due(session, at=at, after=after)
        for _, order_id in due:
            try:
                with unit_of_work() as session:
                    done = remedies.refund_for_non_delivery(session, order_id=order_id, at=at,
                                                           actor=actor)
            except Exception:
                log.exception("refund of an undelivered order failed",
                              extra={"order_id": str(order_id)})
                outcome["failed"] += 1
                continue
            outcome["refunded" if done else "skipped"] += 1
        if len(due) < remedies.REFUND_BATCH_SIZE:
            return outcome
        after = due[-1]


@scheduled_job("refund_undelivered_orders", "interval", minutes=30)
def refund_undelivered_orders_job() -> None:
    """Paid orders still undelivered ORDER_DELIVERY_DAYS after payment are refunded in full
    and recorded as non_delivery against their merchants."""
    outcome = refund_undelivered_orders(at=clock.now(), actor=SYSTEM)
    log.info("undelivered orders refunded", extra=outcome)


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
