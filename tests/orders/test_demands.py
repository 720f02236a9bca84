"""Demands and the matching engine (供需匹配) through the HTTP API: hard constraints, ranking,
credit restrictions, the merchant's view, auto-order, idempotency, the demand lifecycle and the
scheduled job, visibility, validation and audit."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta, timezone
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select, update
from werkzeug.test import TestResponse

from app import clock
from app.audit import AuditEntry
from app.extensions import db
from app.parties.models import Role
from app.scheduler import run_job
from listings.models import Listing
from orders import demands as demand_use_cases
from orders.models import Demand, Order
from tests.factories import Member, make_member, run_together
from tests.listings.factories import listing_body
from tests.orders.factories import Market, give_completed_order, listed_product
from tests.support import ok, problem

API = "/api/v1"
DEMANDS = f"{API}/demands"
LISTINGS = f"{API}/listings"
MATCH_JOB = "match_open_demands"
BUDGET = 200_000

# The documented ranking (orders/matching.py), restated here to check the engine against.
CERTIFICATION_POINTS = {None: 0, "AAA": 20, "AA": 15, "A": 10, "B": 5, "C": 0}


# --- helpers ---------------------------------------------------------------------------------

@pytest.fixture
def m(app: Flask, client: FlaskClient) -> Market:
    return Market.open(app, client)


def count(model: type, *where: Any) -> int:
    with db.engine.connect() as connection:
        return connection.scalar(select(func.count()).select_from(model).where(*where))


def in_hours(hours: float) -> str:
    return (clock.now() + timedelta(hours=hours)).isoformat()


def scope(**changes: Any) -> dict[str, Any]:
    """The default listing's usage scope, with changes."""
    return {"purposes": ["research", "logistics_planning"], "term_days": 365,
            "territory": "domestic", "resale": False, "derivatives": True, **changes}


def listed(m: Market, merchant: Member | None = None, **overrides: Any) -> dict[str, Any]:
    return listed_product(m.client, merchant or m.merchant, **overrides)


def pending(m: Market, **overrides: Any) -> dict[str, Any]:
    """A listing submitted for review and not yet approved."""
    listing = ok(m.client.post(LISTINGS, json=listing_body(m.merchant, **overrides),
                               headers=m.merchant.headers), 201)
    submitted = ok(m.client.post(f"{LISTINGS}/{listing['id']}/submit",
                                 headers=m.merchant.headers))
    assert submitted["status"] == "pending_review"
    return submitted


def approve(m: Market, listing: dict[str, Any]) -> dict[str, Any]:
    return ok(m.client.post(f"{LISTINGS}/{listing['id']}/review", headers=m.operator.headers,
                            json={"decision": "approve", "reason": "Checked"}))


def lifecycle(m: Market, actor: Member, listing: dict[str, Any], step: str) -> dict[str, Any]:
    return ok(m.client.post(f"{LISTINGS}/{listing['id']}/{step}", headers=actor.headers,
                            json={"reason": f"{step} for the test"}))


def demand_body(**overrides: Any) -> dict[str, Any]:
    """A demand the default listing meets (transport, research, within budget)."""
    return {"category": "transport", "purpose": "research", "max_unit_price": BUDGET,
            **overrides}


def post_demand(client: FlaskClient, buyer: Member, *, key: str | None = None,
                **overrides: Any) -> TestResponse:
    headers = {**buyer.headers, **({"Idempotency-Key": key} if key else {})}
    return client.post(DEMANDS, json=demand_body(**overrides), headers=headers)


def posted(m: Market, buyer: Member | None = None, **overrides: Any) -> dict[str, Any]:
    return ok(post_demand(m.client, buyer or m.buyer, **overrides), 201)


def demand_seen_by(m: Market, viewer: Member, demand: dict[str, Any]) -> dict[str, Any]:
    return ok(m.client.get(f"{DEMANDS}/{demand['id']}", headers=viewer.headers))


def cancel(m: Market, actor: Member, demand: dict[str, Any]) -> TestResponse:
    return m.client.post(f"{DEMANDS}/{demand['id']}/cancel", headers=actor.headers)


def matches(m: Market, demand: dict[str, Any], viewer: Member | None = None) -> list[Any]:
    return ok(m.client.get(f"{DEMANDS}/{demand['id']}/matches",
                           headers=(viewer or m.buyer).headers))


def match_ids(m: Market, demand: dict[str, Any]) -> list[str]:
    return [match["listing_id"] for match in matches(m, demand)]


def fitting(m: Market, viewer: Member, listing: dict[str, Any]) -> TestResponse:
    return m.client.get(f"{LISTINGS}/{listing['id']}/matches", headers=viewer.headers)


def fitting_ids(m: Market, listing: dict[str, Any], viewer: Member | None = None) -> list[str]:
    return [demand["id"] for demand in ok(fitting(m, viewer or m.merchant, listing))]


def licenses_left(m: Market, listing: dict[str, Any]) -> int | None:
    return ok(m.client.get(f"{LISTINGS}/{listing['id']}",
                           headers=m.operator.headers))["licenses_available"]


def orders_of(m: Market, buyer: Member) -> list[dict[str, Any]]:
    return ok(m.client.get(f"{API}/orders", headers=buyer.headers))


def place_order(m: Market, buyer: Member, listing: dict[str, Any], **body: Any) -> Any:
    return ok(m.client.post(f"{API}/orders", headers=buyer.headers, json={
        "listing_id": listing["id"], "quantity": 1, "purpose": "research", **body}), 201)


def restrict(m: Market, party: Member) -> None:
    ok(m.client.post(f"{API}/credit/penalties", headers=m.operator.headers,
                     json={"party_id": party.id, "kind": "trade_restriction", "days": 30}), 201)


def certify(m: Market, listing: dict[str, Any], rating: str, *, days: float = 30) -> None:
    ok(m.client.post(f"{LISTINGS}/{listing['id']}/certifications",
                     headers=make_member(Role.CERTIFIER).headers,
                     json={"rating": rating, "scopes": ["compliance"],
                           "valid_until": in_hours(24 * days), "report_ref": "CERT-1"}), 201)


def report_quality(m: Market, listing: dict[str, Any], score: int) -> None:
    reporter = make_member(Role.BUYER)
    give_completed_order(m.client, reporter.id, listing["id"])
    ok(m.client.post(f"{LISTINGS}/{listing['id']}/quality-reports", headers=reporter.headers,
                     json={"score": score, "issue": None}), 201)


def lower_to_level_b(m: Market, merchant: Member) -> None:
    """One serious finding takes a party from 800 to 720: level B (a warning, no restriction)."""
    ok(m.client.post(f"{API}/credit/events", headers=m.regulator.headers, json={
        "party_id": merchant.id, "kind": "non_delivery", "severity": "serious",
        "description": "Paid order never delivered", "evidence_ref": "case-7"}), 201)
    credit_file = ok(m.client.get(f"{API}/credit/parties/{merchant.id}",
                                  headers=m.regulator.headers))
    assert credit_file["level"] == "B"


def expected_parts(*, price: int, budget: int = BUDGET, level_boost: int = 10,
                   rating: str | None = None, quality: float | None = None,
                   found: int = 0, asked: int = 0) -> list[int]:
    """The five documented parts of a score: price, credit, certification, quality, keywords."""
    return [round(40 * (budget - price) / budget), level_boost, CERTIFICATION_POINTS[rating],
            0 if quality is None else round(15 * (quality - 1) / 4),
            round(15 * found / asked) if asked else 0]


def points_of(reasons: list[str]) -> list[int]:
    """The points each reason gives, read from its "(+N)" ending."""
    found = [re.search(r"\(\+(\d+)\)$", reason) for reason in reasons]
    assert all(found), reasons
    return [int(match.group(1)) for match in found if match]


def audit_actions(demand: dict[str, Any]) -> list[tuple[str, uuid.UUID | None]]:
    with db.engine.connect() as connection:
        return [tuple(row) for row in connection.execute(
            select(AuditEntry.action, AuditEntry.actor_id)
            .where(AuditEntry.subject_type == "demands", AuditEntry.subject_id == demand["id"])
            .order_by(AuditEntry.id))]


def run_match_job(app: Flask) -> None:
    assert run_job(app, MATCH_JOB)


def expire_unpaid_orders(app: Flask) -> None:
    clock.advance(timedelta(minutes=app.config["ORDER_PAYMENT_TTL_MINUTES"] + 1))
    assert run_job(app, "expire_unpaid_orders")


# --- hard constraints ------------------------------------------------------------------------

# (what the matching listing has, how the other one differs, the demand's terms)
ONE_CONSTRAINT_APART = [
    pytest.param({}, {"category": "finance"}, {}, id="category"),
    pytest.param({}, {"usage_scope": scope(purposes=["marketing"])}, {}, id="purpose"),
    pytest.param({}, {"delivery_mode": "download"}, {"delivery_modes": ["api", "sandbox"]},
                 id="delivery-mode"),
    pytest.param({"classification": "open"}, {"classification": "general"},
                 {"max_classification": "open"}, id="classification"),
    pytest.param({"usage_scope": scope(territory="cross_border")}, {"usage_scope": scope()},
                 {"territory": "cross_border"}, id="cross-border-demand-domestic-listing"),
    pytest.param({"unit_price": 150_000}, {"unit_price": 150_001}, {"max_unit_price": 150_000},
                 id="price-over-budget-and-equal-to-it"),
    pytest.param({"licenses_available": None}, {"licenses_available": 2}, {"quantity": 3},
                 id="too-few-licenses-and-unlimited"),
]


@pytest.mark.parametrize("kept, differs, terms", ONE_CONSTRAINT_APART)
def test_a_listing_failing_one_hard_constraint_is_neither_matched_nor_fitted(m, kept, differs,
                                                                             terms):
    """Two listings one respect apart: only the one meeting the demand is matched, and only
    its merchant's view of the listing shows the demand."""
    matching = listed(m, **kept)
    other = listed(m, **{**kept, **differs})

    demand = posted(m, **terms)

    assert match_ids(m, demand) == [matching["id"]]
    assert fitting_ids(m, matching) == [demand["id"]]
    assert fitting_ids(m, other) == []


def test_a_domestic_demand_accepts_domestic_and_cross_border_listings(m):
    domestic = listed(m, unit_price=100_000)
    cross_border = listed(m, unit_price=110_000, usage_scope=scope(territory="cross_border"))

    demand = posted(m, territory="domestic")

    assert match_ids(m, demand) == [domestic["id"], cross_border["id"]]
    assert fitting_ids(m, cross_border) == [demand["id"]]


def test_exactly_as_many_licenses_as_the_quantity_is_enough(m):
    exact = listed(m, licenses_available=3, unit_price=100_000)
    unlimited = listed(m, licenses_available=None, unit_price=110_000)
    short = listed(m, licenses_available=2, unit_price=90_000)

    demand = posted(m, quantity=3)

    assert match_ids(m, demand) == [exact["id"], unlimited["id"]]
    assert fitting_ids(m, short) == []


def test_classification_up_to_the_maximum_is_matched(m):
    open_data = listed(m, classification="open", unit_price=100_000)
    general = listed(m, classification="general", unit_price=110_000)

    assert match_ids(m, posted(m, max_classification="general")) == [open_data["id"],
                                                                     general["id"]]
    assert match_ids(m, posted(m)) == [open_data["id"], general["id"]]  # default: any tradable


@pytest.mark.parametrize("step, by", [("suspend", "operator"), ("delist", "operator"),
                                      ("delist", "merchant")])
def test_a_listing_off_the_market_is_not_matched(m, step, by):
    kept = listed(m)
    withdrawn = listed(m, unit_price=100_000)
    lifecycle(m, getattr(m, by), withdrawn, step)

    demand = posted(m)

    assert match_ids(m, demand) == [kept["id"]]
    assert fitting_ids(m, withdrawn) == []


def test_a_listing_pending_review_is_not_matched_until_approved(m):
    waiting = pending(m)
    demand = posted(m)
    assert match_ids(m, demand) == []
    assert fitting_ids(m, waiting) == []

    approve(m, waiting)

    assert match_ids(m, demand) == [waiting["id"]]
    assert fitting_ids(m, waiting) == [demand["id"]]


def test_a_suspended_listing_is_matched_again_once_relisted(m):
    listing = listed(m)
    lifecycle(m, m.operator, listing, "suspend")
    demand = posted(m)
    assert match_ids(m, demand) == []

    lifecycle(m, m.operator, listing, "relist")

    assert match_ids(m, demand) == [listing["id"]]


def test_a_restricted_merchants_listing_is_never_matched(m):
    restricted = make_member(Role.MERCHANT)
    kept = listed(m)
    barred = listed(m, restricted, unit_price=50_000)
    restrict(m, restricted)

    demand = posted(m)

    assert match_ids(m, demand) == [kept["id"]]
    problem(fitting(m, restricted, barred), 403, "party_restricted")


def test_a_restricted_merchants_listing_coming_on_the_market_serves_no_demand(app, m):
    """Approved while its merchant may not trade: the open auto-order demand stays open (and
    the job does not order it either) until the restriction has ended."""
    waiting = pending(m)
    demand = posted(m, auto_order=True, expires_at=in_hours(24 * 60))
    restrict(m, m.merchant)

    approve(m, waiting)
    run_match_job(app)

    assert demand_seen_by(m, m.buyer, demand)["status"] == "open"
    assert count(Order) == 0
    clock.advance(timedelta(days=31))  # the 30-day restriction is over
    run_match_job(app)
    assert demand_seen_by(m, m.buyer, demand)["status"] == "matched"
    assert licenses_left(m, waiting) == 9


def test_a_party_buying_and_selling_is_never_matched_with_its_own_listing(m):
    """A cheaper own listing would rank first; it is left out of matches, of its fitting
    demands, and of what auto-order buys."""
    trader = make_member(Role.MERCHANT, Role.BUYER)
    own = listed(m, trader, unit_price=10_000)
    theirs = listed(m)

    demand = posted(m, trader)

    assert [match["listing_id"] for match in matches(m, demand, trader)] == [theirs["id"]]
    assert fitting_ids(m, own, trader) == []
    assert fitting_ids(m, theirs) == [demand["id"]]
    ordered = posted(m, trader, auto_order=True)
    assert ordered["order"]["listing_id"] == theirs["id"]
    assert licenses_left(m, own) == 10


# --- ranking ---------------------------------------------------------------------------------

def test_matches_are_ranked_by_the_documented_score_with_ties_to_the_lower_price(m):
    """Score = price + credit + certification + quality + keywords, each part in `reasons`.

    best: price 100,000 of 200,000 (20), level A (10), best valid rating AA (15; an expired
    AAA does not count), quality 4.5 (13), 2 of 3 keywords (10) = 68.
    Three listings score 40 and rank by price: a level B merchant's cheap one (30 + 5 + 5 for
    one keyword), then two at 100,500 and 101,000 (20 + 10 + 10).
    """
    graded = make_member(Role.MERCHANT)
    best = listed(m, unit_price=100_000)
    certify(m, best, "AAA", days=1)
    certify(m, best, "B")
    certify(m, best, "AA")
    report_quality(m, best, 4)
    report_quality(m, best, 5)
    cheap = listed(m, graded, unit_price=50_000, title="Weather observations 气象观测",
                   description="Rain and wind readings every ten minutes.", tags=["weather"])
    lower_to_level_b(m, graded)
    dearer = listed(m, unit_price=101_000)
    middle = listed(m, unit_price=100_500)
    clock.advance(timedelta(days=2))  # the AAA certification has expired

    demand = posted(m, keywords=["traffic", "Hourly", "weather"])
    ranked = matches(m, demand)

    expected = {
        best["id"]: expected_parts(price=100_000, rating="AA", quality=4.5, found=2, asked=3),
        cheap["id"]: expected_parts(price=50_000, level_boost=5, found=1, asked=3),
        middle["id"]: expected_parts(price=100_500, found=2, asked=3),
        dearer["id"]: expected_parts(price=101_000, found=2, asked=3),
    }
    assert [match["listing_id"] for match in ranked] == [best["id"], cheap["id"], middle["id"],
                                                         dearer["id"]]
    assert [match["score"] for match in ranked] == [68, 40, 40, 40]
    for match in ranked:
        assert len(match["reasons"]) == 5, match["reasons"]
        assert points_of(match["reasons"]) == expected[match["listing_id"]]
        assert match["score"] == sum(expected[match["listing_id"]])
    top = ranked[0]
    assert top["unit_price"] == 100_000
    assert top["merchant_id"] == m.merchant.id
    assert "certified AA" in top["reasons"][2]
    assert "4.5" in top["reasons"][3]
    assert "traffic" in top["reasons"][4] and "Hourly" in top["reasons"][4]
    assert "level B" in ranked[1]["reasons"][1]


def test_without_keywords_the_keyword_part_is_zero_and_price_decides(m):
    cheaper = listed(m, unit_price=60_000)
    dearer = listed(m, unit_price=150_000, tags=["transport", "traffic"])

    ranked = matches(m, posted(m))

    assert [match["listing_id"] for match in ranked] == [cheaper["id"], dearer["id"]]
    assert points_of(ranked[0]["reasons"]) == expected_parts(price=60_000) == [28, 10, 0, 0, 0]
    assert points_of(ranked[1]["reasons"]) == expected_parts(price=150_000) == [10, 10, 0, 0, 0]
    assert [match["score"] for match in ranked] == [38, 20]
    assert all("no keywords" in match["reasons"][4] for match in ranked)


def test_a_listing_at_the_lowest_price_meets_a_budget_of_that_price(m):
    cheapest = listed(m, unit_price=1, classification="open")
    listed(m, unit_price=2, classification="open")

    ranked = matches(m, posted(m, max_unit_price=1))

    assert [match["listing_id"] for match in ranked] == [cheapest["id"]]
    assert points_of(ranked[0]["reasons"])[0] == 0  # at the budget: no price points
    assert ranked[0]["score"] == 10


def test_keywords_are_found_ignoring_case_in_title_description_and_tags(m):
    listing = listed(m, title="Port TRAFFIC", description="Container moves per BERTH.",
                     tags=["Harbour"])

    ranked = matches(m, posted(m, keywords=["traffic", "berth", "harbour", "rail"]))

    assert [match["listing_id"] for match in ranked] == [listing["id"]]
    assert points_of(ranked[0]["reasons"])[4] == round(15 * 3 / 4)


def test_same_score_and_price_rank_the_listing_listed_first_first(m):
    """Created in one order, approved in the other: the earlier listing on the market wins."""
    created_first, created_second = pending(m), pending(m)
    approve(m, created_second)
    clock.advance(timedelta(minutes=1))
    approve(m, created_first)

    ranked = matches(m, posted(m))

    assert [match["listing_id"] for match in ranked] == [created_second["id"],
                                                         created_first["id"]]
    assert ranked[0]["score"] == ranked[1]["score"]


def test_only_the_cheapest_match_candidates_are_scored(m, monkeypatch):
    monkeypatch.setitem(m.app.config, "MATCH_CANDIDATES", 2)
    cheap = listed(m, unit_price=100_000)
    cheaper = listed(m, unit_price=90_000)
    certified = listed(m, unit_price=110_000)
    certify(m, certified, "AAA")

    ranked = matches(m, posted(m))

    assert [match["listing_id"] for match in ranked] == [cheaper["id"], cheap["id"]]


# --- credit restrictions ---------------------------------------------------------------------

def test_a_restricted_buyer_cannot_post_a_demand(m):
    listed(m)
    restrict(m, m.buyer)

    response = post_demand(m.client, m.buyer, auto_order=True)

    problem(response, 403, "party_restricted")
    assert count(Demand) == 0
    assert count(Order) == 0


def test_a_buyer_restricted_after_posting_cannot_read_its_matches(m):
    listing = listed(m)
    demand = posted(m)
    assert match_ids(m, demand) == [listing["id"]]

    restrict(m, m.buyer)

    problem(m.client.get(f"{DEMANDS}/{demand['id']}/matches", headers=m.buyer.headers), 403,
            "party_restricted")
    assert fitting_ids(m, listing) == []  # its demand no longer reaches merchants


def test_a_restricted_merchant_cannot_read_the_demands_its_listing_meets(m):
    listing = listed(m)
    demand = posted(m)
    restrict(m, m.merchant)

    problem(fitting(m, m.merchant, listing), 403, "party_restricted")
    assert fitting_ids(m, listing, m.operator) == [demand["id"]]


# --- the merchant's view: GET /listings/{id}/matches -----------------------------------------

def test_a_merchant_sees_the_open_demands_its_listing_meets_oldest_first(m):
    """Only open, unexpired demands the listing satisfies; the buyers are not named."""
    listing = listed(m)
    lapsing = posted(m, expires_at=in_hours(1))
    first = posted(m)
    second = posted(m, make_member(Role.BUYER), keywords=["traffic"])
    posted(m, category="finance")
    posted(m, max_unit_price=119_999)
    posted(m, purpose="marketing")
    posted(m, delivery_modes=["download"])
    posted(m, quantity=11)
    withdrawn = posted(m)
    ok(cancel(m, m.buyer, withdrawn))
    served = posted(m, make_member(Role.BUYER), auto_order=True)
    assert served["status"] == "matched"
    assert fitting_ids(m, listing) == [lapsing["id"], first["id"], second["id"]]

    clock.advance(timedelta(hours=2))  # past `lapsing`'s expiry, before the job closes it

    seen = ok(fitting(m, m.merchant, listing))
    assert [demand["id"] for demand in seen] == [first["id"], second["id"]]
    assert all("buyer_id" not in demand for demand in seen)
    assert seen[1]["demand_id"] == second["id"]
    assert seen[1]["keywords"] == ["traffic"]
    assert seen[1]["max_unit_price"] == BUDGET


@pytest.mark.parametrize("overseer", ["operator", "regulator"])
def test_overseers_read_the_demands_a_listing_meets(m, overseer):
    listing = listed(m)
    demand = posted(m)

    assert fitting_ids(m, listing, getattr(m, overseer)) == [demand["id"]]


@pytest.mark.parametrize("roles", [(Role.BUYER,), (Role.MERCHANT,), (Role.MERCHANT, Role.BUYER)])
def test_only_the_listings_merchant_reads_its_fitting_demands(m, roles):
    listing = listed(m)
    posted(m)

    problem(fitting(m, make_member(*roles), listing), 403)


def test_fitting_demands_of_an_unknown_or_unseen_listing_are_not_found(m):
    problem(m.client.get(f"{LISTINGS}/{uuid.uuid4()}/matches", headers=m.merchant.headers), 404)
    draft = pending(m)
    problem(fitting(m, make_member(Role.MERCHANT), draft), 404)


def test_anonymous_cannot_read_fitting_demands(m):
    listing = listed(m)

    problem(m.client.get(f"{LISTINGS}/{listing['id']}/matches"), 401)


# --- auto-order ------------------------------------------------------------------------------

def test_auto_order_orders_the_best_match_when_the_demand_is_posted(m):
    best = listed(m, unit_price=80_000)
    other = listed(m, unit_price=150_000)

    demand = posted(m, auto_order=True, quantity=2)

    order = demand["order"]
    assert order is not None
    assert order["status"] == "pending_payment"
    assert order["listing_id"] == best["id"]
    assert order["quantity"] == 2
    assert order["total_amount"] == 160_000
    assert order["purpose"] == "research"
    assert order["buyer_id"] == m.buyer.id
    assert demand["status"] == "matched"
    assert demand["order_id"] == order["id"]
    assert demand["closed_at"] is not None
    assert licenses_left(m, best) == 8
    assert licenses_left(m, other) == 10
    assert [o["id"] for o in orders_of(m, m.buyer)] == [order["id"]]
    again = demand_seen_by(m, m.buyer, demand)
    assert again["status"] == "matched"
    assert again["order_id"] == order["id"]
    assert again["order"] is None  # the order itself only in the response that placed it


def test_without_auto_order_nothing_is_ordered(m):
    listing = listed(m)

    demand = posted(m)

    assert demand["status"] == "open"
    assert demand["order"] is None
    assert demand["order_id"] is None
    assert count(Order) == 0
    assert licenses_left(m, listing) == 10


def test_auto_order_without_a_match_leaves_the_demand_open(m):
    listed(m, unit_price=300_000)

    demand = posted(m, auto_order=True)

    assert demand["status"] == "open"
    assert demand["order"] is None
    assert demand["order_id"] is None
    assert count(Order) == 0


@pytest.mark.parametrize("arrival", ["approved", "relisted", "fast_tracked"])
def test_an_open_auto_order_demand_is_ordered_when_a_fitting_listing_is_listed(m, arrival):
    """However the listing reaches the market (review, relisting, or straight from submission
    on the positive list), the open auto-order demand it fits is ordered in that request."""
    if arrival == "relisted":
        listing = listed(m)
        lifecycle(m, m.operator, listing, "suspend")
    elif arrival == "approved":
        listing = pending(m)
    demand = posted(m, auto_order=True)
    assert demand["status"] == "open"

    if arrival == "relisted":
        lifecycle(m, m.operator, listing, "relist")
    elif arrival == "approved":
        approve(m, listing)
    else:
        ok(m.client.post(f"{API}/admission-rules", headers=m.operator.headers, json={
            "list": "positive", "name": "Transport data", "reason": "Encouraged",
            "categories": ["transport"]}), 201)
        listing = listed(m)
        assert listing["admission"]["decision"] == "encouraged"

    now = demand_seen_by(m, m.buyer, demand)
    assert now["status"] == "matched"
    [order] = orders_of(m, m.buyer)
    assert now["order_id"] == order["id"]
    assert order["listing_id"] == listing["id"]
    assert order["status"] == "pending_payment"
    assert licenses_left(m, listing) == 9


def test_a_new_listing_serves_only_the_auto_order_demands_it_fits_oldest_first(m):
    """One license for two fitting auto-order demands: the older is served; a demand without
    auto_order and one the listing does not fit stay open."""
    older = posted(m, auto_order=True)
    younger = posted(m, make_member(Role.BUYER), auto_order=True)
    manual = posted(m, make_member(Role.BUYER))
    unfit = posted(m, make_member(Role.BUYER), auto_order=True, max_unit_price=1_000)

    listing = listed(m, licenses_available=1)

    assert demand_seen_by(m, m.operator, older)["status"] == "matched"
    for still_open in (younger, manual, unfit):
        assert demand_seen_by(m, m.operator, still_open)["status"] == "open"
    assert licenses_left(m, listing) == 0
    assert count(Order) == 1


def test_the_job_orders_for_an_open_auto_demand_once_a_license_is_released(app, m):
    """The only listing is sold out (an unpaid order holds its license) when the demand is
    posted; the order expires, and the next run of the job orders for the demand."""
    listing = listed(m, licenses_available=1)
    place_order(m, make_member(Role.BUYER), listing)
    demand = posted(m, auto_order=True)
    assert demand["status"] == "open"
    run_match_job(app)
    assert demand_seen_by(m, m.buyer, demand)["status"] == "open"

    expire_unpaid_orders(app)
    assert licenses_left(m, listing) == 1
    run_match_job(app)

    now = demand_seen_by(m, m.buyer, demand)
    assert now["status"] == "matched"
    [order] = orders_of(m, m.buyer)
    assert now["order_id"] == order["id"]
    assert order["listing_id"] == listing["id"]
    assert licenses_left(m, listing) == 0
    run_match_job(app)
    assert count(Order, Order.buyer_id == uuid.UUID(m.buyer.id)) == 1


def test_the_job_serves_auto_demands_oldest_first_while_licenses_last(app, m):
    listing = listed(m, licenses_available=1)
    place_order(m, make_member(Role.BUYER), listing)
    older = posted(m, auto_order=True)
    younger = posted(m, make_member(Role.BUYER), auto_order=True)
    expire_unpaid_orders(app)

    run_match_job(app)

    assert demand_seen_by(m, m.operator, older)["status"] == "matched"
    assert demand_seen_by(m, m.operator, younger)["status"] == "open"


def test_the_job_does_not_order_for_a_buyer_restricted_meanwhile(app, m):
    listing = listed(m, licenses_available=1)
    place_order(m, make_member(Role.BUYER), listing)
    demand = posted(m, auto_order=True)
    restrict(m, m.buyer)
    expire_unpaid_orders(app)

    run_match_job(app)

    assert demand_seen_by(m, m.buyer, demand)["status"] == "open"
    assert count(Order, Order.buyer_id == uuid.UUID(m.buyer.id)) == 0
    assert licenses_left(m, listing) == 1


def test_auto_order_passes_over_a_better_match_with_too_few_licenses(m):
    scarce = listed(m, unit_price=50_000, licenses_available=2)
    plenty = listed(m, unit_price=100_000)

    demand = posted(m, auto_order=True, quantity=3)

    assert demand["order"]["listing_id"] == plenty["id"]
    assert licenses_left(m, scarce) == 2
    assert licenses_left(m, plenty) == 7


def test_auto_order_takes_the_next_best_when_the_best_sells_out_meanwhile(m, monkeypatch):
    """Simulates another buyer taking the best match's last licenses between the ranking and
    the order: the order of the best fails (out of stock) and the next best is ordered."""
    best = listed(m, unit_price=50_000, licenses_available=3)
    next_best = listed(m, unit_price=100_000)
    rank = demand_use_cases.matching.matches_for

    def ranked_then_sold_out(session, demand, at):
        ranked = rank(session, demand, at)
        session.execute(update(Listing).where(Listing.id == ranked[0].listing_id)
                        .values(licenses_available=1)
                        .execution_options(synchronize_session=False))
        return ranked

    monkeypatch.setattr(demand_use_cases.matching, "matches_for", ranked_then_sold_out)

    demand = posted(m, auto_order=True, quantity=2)

    assert demand["status"] == "matched"
    assert demand["order"]["listing_id"] == next_best["id"]
    assert licenses_left(m, best) == 1
    assert licenses_left(m, next_best) == 8
    assert count(Order) == 1


@pytest.mark.postgres_only
def test_concurrent_auto_orders_sell_each_license_once(app, m):
    """Eight buyers post auto-order demands at once for three licenses: three are matched,
    five stay open, and no license is sold twice."""
    listing = listed(m, licenses_available=3)
    buyers = [make_member(Role.BUYER) for _ in range(8)]

    responses = run_together(app, [lambda c, b=b: post_demand(c, b, auto_order=True)
                                   for b in buyers])

    assert [r.status_code for r in responses] == [201] * 8, [r.get_json() for r in responses]
    statuses = sorted(r.get_json()["status"] for r in responses)
    assert statuses == ["matched"] * 3 + ["open"] * 5
    assert count(Order) == 3
    assert licenses_left(m, listing) == 0


@pytest.mark.postgres_only
def test_the_job_and_a_listing_coming_on_the_market_never_order_a_demand_twice(app, m):
    """The approval serves fitting demands while the job may be serving the same ones: each
    demand gets at most one order, and the next run serves whatever was left open."""
    demands = [posted(m, make_member(Role.BUYER), auto_order=True) for _ in range(5)]
    waiting = pending(m)

    run_together(app, [lambda c: c.post(f"{LISTINGS}/{waiting['id']}/review",
                                        headers=m.operator.headers,
                                        json={"decision": "approve", "reason": "Checked"}),
                       lambda c: run_job(app, MATCH_JOB)])
    ordered = count(Order)
    assert ordered <= 5
    assert licenses_left(m, waiting) == 10 - ordered
    run_match_job(app)

    seen = [demand_seen_by(m, m.operator, demand) for demand in demands]
    assert {demand["status"] for demand in seen} == {"matched"}
    assert len({demand["order_id"] for demand in seen}) == 5
    assert count(Order) == 5
    assert licenses_left(m, waiting) == 5


# --- idempotency -----------------------------------------------------------------------------

def test_a_replayed_auto_order_demand_returns_the_same_demand_and_order(m):
    listing = listed(m)
    first = post_demand(m.client, m.buyer, key="demand-1", auto_order=True)
    again = post_demand(m.client, m.buyer, key="demand-1", auto_order=True)

    assert first.status_code == again.status_code == 201
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert again.get_json()["id"] == first.get_json()["id"]
    assert again.get_json()["order"]["id"] == first.get_json()["order"]["id"]
    assert count(Demand) == 1
    assert count(Order) == 1
    assert licenses_left(m, listing) == 9


def test_the_same_key_with_another_demand_is_refused_as_reused(m):
    listing = listed(m)
    ok(post_demand(m.client, m.buyer, key="demand-1", auto_order=True), 201)

    response = post_demand(m.client, m.buyer, key="demand-1", auto_order=True, quantity=2)

    problem(response, 409, "idempotency_key_reused")
    assert count(Demand) == 1
    assert count(Order) == 1
    assert licenses_left(m, listing) == 9


# --- lifecycle -------------------------------------------------------------------------------

def test_a_demand_expires_when_the_job_runs_after_its_expiry_and_only_once(app, m):
    demand = posted(m, expires_at=in_hours(2))
    default = posted(m)
    run_match_job(app)
    assert demand_seen_by(m, m.buyer, demand)["status"] == "open"

    clock.advance(timedelta(hours=3))
    run_match_job(app)

    expired = demand_seen_by(m, m.buyer, demand)
    assert expired["status"] == "expired"
    assert expired["closed_at"] is not None
    assert demand_seen_by(m, m.buyer, default)["status"] == "open"
    run_match_job(app)
    assert demand_seen_by(m, m.buyer, demand) == expired
    assert [action for action, _ in audit_actions(demand)].count("demand.expired") == 1


def test_without_expires_at_a_demand_lasts_the_configured_days(app, m):
    demand = posted(m)
    clock.advance(timedelta(days=app.config["DEMAND_TTL_DAYS"], minutes=-1))
    run_match_job(app)
    assert demand_seen_by(m, m.buyer, demand)["status"] == "open"

    clock.advance(timedelta(minutes=2))
    run_match_job(app)

    assert demand_seen_by(m, m.buyer, demand)["status"] == "expired"


def test_expires_at_in_another_time_zone_is_the_same_instant(app, m):
    """+08:00 is converted, not read as UTC: the demand lives 2 hours, not 10."""
    in_two_hours = (clock.now() + timedelta(hours=2)).astimezone(timezone(timedelta(hours=8)))
    demand = posted(m, expires_at=in_two_hours.isoformat())

    clock.advance(timedelta(hours=3))
    run_match_job(app)

    assert demand_seen_by(m, m.buyer, demand)["status"] == "expired"


@pytest.mark.parametrize("expires_at", [lambda: in_hours(-1), lambda: clock.now().isoformat()])
def test_expires_at_not_in_the_future_is_refused(m, expires_at):
    response = post_demand(m.client, m.buyer, expires_at=expires_at())

    body = problem(response, 422)
    assert "expires_at" in body["errors"]
    assert count(Demand) == 0


def test_the_buyer_cancels_an_open_demand_once(m):
    demand = posted(m)

    cancelled = ok(cancel(m, m.buyer, demand))

    assert cancelled["status"] == "cancelled"
    assert cancelled["closed_at"] is not None
    assert demand_seen_by(m, m.buyer, demand)["status"] == "cancelled"
    problem(cancel(m, m.buyer, demand), 409, "invalid_transition")


def test_a_matched_demand_cannot_be_cancelled(m):
    listed(m)
    demand = posted(m, auto_order=True)

    problem(cancel(m, m.buyer, demand), 409, "invalid_transition")
    assert demand_seen_by(m, m.buyer, demand)["status"] == "matched"


def test_another_buyer_cannot_cancel_a_demand_it_cannot_see(m):
    demand = posted(m)

    problem(cancel(m, make_member(Role.BUYER), demand), 404, "demand_not_found")
    assert demand_seen_by(m, m.buyer, demand)["status"] == "open"


@pytest.mark.parametrize("roles", [(Role.OPERATOR,), (Role.OPERATOR, Role.BUYER),
                                   (Role.REGULATOR, Role.BUYER)])
def test_an_overseer_sees_but_cannot_cancel_a_buyers_demand(m, roles):
    """Even an overseer that also buys (and so passes the route's role check) cannot withdraw
    another party's demand."""
    overseer = make_member(*roles)
    demand = posted(m)
    assert demand_seen_by(m, overseer, demand)["status"] == "open"

    problem(cancel(m, overseer, demand), 403)
    assert demand_seen_by(m, m.buyer, demand)["status"] == "open"


def test_nothing_is_ordered_for_a_cancelled_auto_demand(app, m):
    """Neither a license released for the job nor a new listing revives it."""
    sold_out = listed(m, licenses_available=1)
    place_order(m, make_member(Role.BUYER), sold_out)
    demand = posted(m, auto_order=True)
    ok(cancel(m, m.buyer, demand))

    expire_unpaid_orders(app)
    run_match_job(app)
    fresh = listed(m)

    assert demand_seen_by(m, m.buyer, demand)["status"] == "cancelled"
    assert count(Order, Order.buyer_id == uuid.UUID(m.buyer.id)) == 0
    assert licenses_left(m, sold_out) == 1
    assert licenses_left(m, fresh) == 10


def test_nothing_is_ordered_for_an_auto_demand_past_its_expiry(app, m):
    """A listing arriving after the expiry (before the job has closed the demand) does not
    serve it, and the job then expires it rather than ordering."""
    sold_out = listed(m, licenses_available=1)
    place_order(m, make_member(Role.BUYER), sold_out)
    demand = posted(m, auto_order=True, expires_at=in_hours(1))
    clock.advance(timedelta(hours=2))
    fresh = listed(m)
    assert demand_seen_by(m, m.buyer, demand)["status"] == "open"

    expire_unpaid_orders(app)
    run_match_job(app)

    assert demand_seen_by(m, m.buyer, demand)["status"] == "expired"
    assert count(Order, Order.buyer_id == uuid.UUID(m.buyer.id)) == 0
    assert licenses_left(m, fresh) == 10
    assert licenses_left(m, sold_out) == 1


# --- visibility ------------------------------------------------------------------------------

def test_a_demand_is_seen_by_its_buyer_and_the_overseers_only(m):
    demand = posted(m)

    for viewer in (m.buyer, m.operator, m.regulator):
        assert demand_seen_by(m, viewer, demand)["id"] == demand["id"]
    for stranger in (make_member(Role.BUYER), m.merchant):
        problem(m.client.get(f"{DEMANDS}/{demand['id']}", headers=stranger.headers), 404,
                "demand_not_found")
        problem(m.client.get(f"{DEMANDS}/{demand['id']}/matches", headers=stranger.headers),
                404)
    problem(m.client.get(f"{DEMANDS}/{uuid.uuid4()}", headers=m.buyer.headers), 404)


def test_a_buyer_lists_its_own_demands_newest_first_and_an_operator_all(m):
    other_buyer = make_member(Role.BUYER)
    older = posted(m)
    theirs = posted(m, other_buyer)
    clock.advance(timedelta(seconds=1))
    newer = posted(m)
    ok(cancel(m, m.buyer, older))

    def listed_ids(viewer: Member, **query: str) -> list[str]:
        return [d["id"] for d in ok(m.client.get(DEMANDS, headers=viewer.headers,
                                                 query_string=query))]

    assert listed_ids(m.buyer) == [newer["id"], older["id"]]
    assert listed_ids(m.buyer, status="open") == [newer["id"]]
    assert listed_ids(other_buyer) == [theirs["id"]]
    assert set(listed_ids(m.operator)) == {older["id"], theirs["id"], newer["id"]}
    assert set(listed_ids(m.regulator, status="cancelled")) == {older["id"]}
    assert listed_ids(m.merchant) == []


def test_only_buyers_post_demands(m):
    problem(post_demand(m.client, m.merchant), 403)
    problem(post_demand(m.client, m.operator), 403)
    assert count(Demand) == 0


def test_anonymous_requests_are_unauthorized(m):
    demand = posted(m)

    problem(m.client.post(DEMANDS, json=demand_body()), 401)
    problem(m.client.get(DEMANDS), 401)
    problem(m.client.get(f"{DEMANDS}/{demand['id']}"), 401)
    problem(m.client.get(f"{DEMANDS}/{demand['id']}/matches"), 401)
    problem(m.client.post(f"{DEMANDS}/{demand['id']}/cancel"), 401)
    assert count(Demand) == 1


def test_a_posted_demand_shows_its_terms_and_defaults(m):
    demand = posted(m, keywords=["traffic", "traffic", "hourly"])

    assert demand["buyer_id"] == m.buyer.id
    assert demand["status"] == "open"
    assert demand["keywords"] == ["traffic", "hourly"]  # duplicates dropped, order kept
    assert demand["max_classification"] == "important"
    assert sorted(demand["delivery_modes"]) == ["api", "download", "sandbox"]
    assert demand["territory"] == "domestic"
    assert demand["currency"] == "CNY"
    assert demand["quantity"] == 1
    assert demand["auto_order"] is False
    assert demand["closed_at"] is None
    assert demand_seen_by(m, m.buyer, demand)["order"] is None


# --- validation ------------------------------------------------------------------------------

@pytest.mark.parametrize("field, value", [
    ("max_classification", "secret"),
    ("max_classification", "core_plus"),
    ("territory", "overseas"),
    ("delivery_modes", ["fax"]),
    ("delivery_modes", []),
    ("max_unit_price", -1),
    ("max_unit_price", "100"),
    ("max_unit_price", 10**14),
    ("quantity", 0),
    ("quantity", -2),
    ("quantity", 1.5),
    ("currency", "USD"),
    ("keywords", [""]),
    ("keywords", [f"k{i}" for i in range(21)]),
    ("category", ""),
    ("purpose", ""),
    ("expires_at", "2099-01-01T00:00:00"),  # naive: no time zone
    ("expires_at", "tomorrow"),
    ("auto_order", "sometimes"),
    ("discount", 10),
    ("buyer_id", str(uuid.uuid4())),
    ("status", "matched"),
])
def test_an_invalid_demand_is_refused_and_nothing_is_written(m, field, value):
    listed(m)

    response = post_demand(m.client, m.buyer, **{"auto_order": True, field: value})

    body = problem(response, 422)
    assert field in body["errors"], body
    assert count(Demand) == 0
    assert count(Order) == 0


@pytest.mark.parametrize("missing", ["category", "purpose", "max_unit_price"])
def test_a_demand_without_a_required_field_is_refused(m, missing):
    body = demand_body()
    del body[missing]

    response = m.client.post(DEMANDS, json=body, headers=m.buyer.headers)

    assert missing in problem(response, 422)["errors"]
    assert count(Demand) == 0


# --- audit -----------------------------------------------------------------------------------

def test_posting_matching_cancelling_and_expiring_are_audited(app, m):
    listing = listed(m)
    ordered = posted(m, auto_order=True)
    withdrawn = posted(m)
    ok(cancel(m, m.buyer, withdrawn))
    lapsing = posted(m, expires_at=in_hours(1))
    clock.advance(timedelta(hours=2))
    run_match_job(app)

    buyer_id = uuid.UUID(m.buyer.id)
    assert audit_actions(ordered) == [("demand.posted", buyer_id), ("demand.matched", None)]
    assert audit_actions(withdrawn) == [("demand.posted", buyer_id),
                                        ("demand.cancelled", buyer_id)]
    assert audit_actions(lapsing) == [("demand.posted", buyer_id), ("demand.expired", None)]
    with db.engine.connect() as connection:
        details = connection.scalar(select(AuditEntry.details).where(
            AuditEntry.action == "demand.matched", AuditEntry.subject_id == ordered["id"]))
    assert details["order_id"] == ordered["order_id"]
    assert details["status"] == "matched"
    # The match placed an order of the listing, which issued its licence: all are in the
    # listing's trace.
    order = ok(m.client.get(f"{API}/orders/{ordered['order_id']}", headers=m.buyer.headers))
    trace = ok(m.client.get(f"{LISTINGS}/{listing['id']}/trace", headers=m.operator.headers))
    assert [(entry["action"], entry["subject_id"]) for entry in trace
            if not entry["action"].startswith("listing.")] == [
        ("order.placed", ordered["order_id"]), ("license.issued", order["license_id"]),
        ("demand.matched", ordered["id"])]
    assert ok(m.client.get(f"{API}/audit/verify", headers=m.regulator.headers))["valid"] is True
