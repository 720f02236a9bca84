"""Per-call licences: merchants report the calls they served, idempotently; calls_remaining
never goes below zero, and a licence out of calls stops its tokens."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from app.extensions import db
from app.parties.models import Role
from licenses.models import LicenseUsage
from tests.factories import make_member
from tests.licenses.helpers import API, PER_CALL, Licensing, keyed
from tests.orders.factories import Market
from tests.support import ok, problem, race

INTROSPECT = f"{API}/oauth/introspect"
JUNE = {"period_start": "2026-06-01T00:00:00+08:00", "period_end": "2026-06-02T00:00:00+08:00"}


@pytest.fixture
def trade(market: Market) -> Licensing:
    return Licensing(market)


def report(trade: Licensing, license_id: str, calls: int, key: str | None = None,
           member=None, **period: str):
    member = member or trade.market.merchant
    return trade.client.post(f"{API}/licenses/{license_id}/usage", headers=keyed(member, key),
                             json={"calls": calls, **JUNE, **period})


def usage_rows() -> int:
    with db.engine.connect() as connection:
        return connection.scalar(sa.select(sa.func.count()).select_from(LicenseUsage))


def introspected(trade: Licensing, token: str) -> dict:
    return ok(trade.client.post(INTROSPECT, headers=trade.market.merchant.headers,
                                data={"token": token}))


def test_calls_are_counted_down_to_zero_and_introspection_then_turns_inactive(trade):
    _, licence = trade.delivered(trade.listing(**PER_CALL), quantity=5)
    token = ok(trade.post(licence["id"], "tokens", trade.market.buyer), 201)["access_token"]
    assert introspected(trade, token)["calls_remaining"] == 5

    first = ok(report(trade, licence["id"], 3), 201)
    assert (first["calls"], first["calls_remaining"], first["license_id"]) == (
        3, 2, licence["id"])
    assert first["period_start"] == "2026-05-31T16:00:00+00:00"
    seen = introspected(trade, token)
    assert (seen["active"], seen["calls_remaining"]) == (True, 2)

    assert ok(report(trade, licence["id"], 2), 201)["calls_remaining"] == 0
    assert trade.license(licence["id"])["calls_remaining"] == 0
    assert introspected(trade, token) == {"active": False}
    refused = problem(trade.post(licence["id"], "tokens", trade.market.buyer), 403,
                      "license_inactive")
    assert "calls" in refused["detail"]

    exhausted = problem(report(trade, licence["id"], 1), 422, "calls_exhausted")
    assert exhausted["calls_remaining"] == 0
    assert usage_rows() == 2
    assert trade.license(licence["id"])["calls_remaining"] == 0


def test_a_report_of_more_calls_than_are_left_changes_nothing(trade):
    _, licence = trade.delivered(trade.listing(**PER_CALL), quantity=10)
    ok(report(trade, licence["id"], 4), 201)
    refused = problem(report(trade, licence["id"], 7), 422, "calls_exhausted")
    assert refused["calls_remaining"] == 6
    assert trade.license(licence["id"])["calls_remaining"] == 6
    assert usage_rows() == 1
    assert ok(report(trade, licence["id"], 6), 201)["calls_remaining"] == 0


def test_a_repeated_report_counts_once(trade):
    _, licence = trade.delivered(trade.listing(**PER_CALL), quantity=10)
    first = report(trade, licence["id"], 4, key="june-1")
    again = report(trade, licence["id"], 4, key="june-1")
    assert ok(again, 201) == ok(first, 201)
    assert again.headers["Idempotent-Replayed"] == "true"
    assert trade.license(licence["id"])["calls_remaining"] == 6
    problem(report(trade, licence["id"], 5, key="june-1"), 409, "idempotency_key_reused")
    assert usage_rows() == 1


def test_only_the_licences_merchant_reports_calls_of_a_delivered_per_call_licence(trade):
    m = trade.market
    _, licence = trade.delivered(trade.listing(**PER_CALL), quantity=10)
    problem(report(trade, licence["id"], 1, member=make_member(Role.MERCHANT)), 404,
            "license_not_found")
    for member in (m.buyer, m.operator):
        problem(report(trade, licence["id"], 1, member=member), 403)
    pending = trade.order(trade.listing(**PER_CALL), quantity=10)
    problem(report(trade, pending["license_id"], 1), 409, "invalid_transition")
    _, subscription = trade.delivered()
    problem(report(trade, subscription["id"], 1), 422, "not_per_call")
    backwards = problem(report(trade, licence["id"], 1, period_end="2026-05-01T00:00:00Z"),
                        422)
    assert "period_end" in backwards["errors"]
    for calls in (0, -1, "3", 1.5):
        problem(trade.client.post(f"{API}/licenses/{licence['id']}/usage",
                                  headers=keyed(m.merchant), json={"calls": calls, **JUNE}), 422)
    assert usage_rows() == 0
    assert trade.license(licence["id"])["calls_remaining"] == 10


def test_usage_reports_are_audited_in_the_listing_trace(trade):
    listing = trade.listing(**PER_CALL)
    _, licence = trade.delivered(listing, quantity=10)
    ok(report(trade, licence["id"], 4), 201)
    trace = ok(trade.client.get(f"{API}/listings/{listing['id']}/trace",
                                headers=trade.market.merchant.headers))
    [entry] = [entry for entry in trace if entry["action"] == "license.usage_reported"]
    assert (entry["subject_id"], entry["actor_id"]) == (licence["id"], trade.market.merchant.id)
    assert (entry["details"]["calls"], entry["details"]["calls_remaining"]) == (4, 6)


@pytest.mark.postgres_only
def test_concurrent_usage_reports_never_drive_calls_remaining_below_zero(app, trade):
    calls, reports = 8, 24
    _, licence = trade.delivered(trade.listing(**PER_CALL), quantity=calls)
    merchant = trade.market.merchant

    answers = race(app, reports, lambda client, n: client.post(
        f"{API}/licenses/{licence['id']}/usage", headers=keyed(merchant, f"race-{n}"),
        json={"calls": 1, **JUNE}))

    statuses = sorted(answer.status_code for answer in answers)
    assert statuses == [201] * calls + [422] * (reports - calls), statuses
    assert all(answer.get_json()["code"] == "calls_exhausted"
               for answer in answers if answer.status_code == 422)
    remaining = sorted(answer.get_json()["calls_remaining"] for answer in answers
                       if answer.status_code == 201)
    assert remaining == list(range(calls))  # each report saw its own count
    assert trade.license(licence["id"])["calls_remaining"] == 0
    assert usage_rows() == calls
