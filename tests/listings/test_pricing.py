"""Guided pricing (指导定价) through the HTTP API: guide prices and their bands, versions and
overlaps, where a binding band is enforced (submission, review, relisting, orders, matching),
the public-data rule, and the suggested price of GET /listings/{id}/price-guidance."""

from __future__ import annotations

import itertools
import uuid
from datetime import datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from werkzeug.test import TestResponse

from app import clock
from app.audit import AuditEntry
from app.extensions import db
from app.parties.models import PartyKind, Role
from listings.models import GuidePrice, Listing
from orders.models import Order
from tests.factories import Member, make_member
from tests.listings.factories import accept_consents, listing_body, public_data
from tests.orders.factories import Market, give_completed_order, listed_product
from tests.support import ok, problem, race

API = "/api/v1"
GUIDES = f"{API}/guide-prices"
LISTINGS = f"{API}/listings"
PRICE = 120_000  # the default listing's unit price


# --- helpers ---------------------------------------------------------------------------------

@pytest.fixture
def m(app: Flask, client: FlaskClient) -> Market:
    return Market.open(app, client)


def in_days(days: float) -> str:
    return (clock.now() + timedelta(days=days)).isoformat()


def instant(value: str) -> datetime:
    return datetime.fromisoformat(value)


def guide_body(**overrides: Any) -> dict[str, Any]:
    """A binding transport guide price: reference 100000, band 80000-130000."""
    return {"category": "transport", "reference_price": 100_000, "floor_pct": 20,
            "ceiling_pct": 30, "binding": True, **overrides}


def post_guide(m: Market, actor: Member | None = None, **overrides: Any) -> TestResponse:
    return m.client.post(GUIDES, json=guide_body(**overrides),
                         headers=(actor or m.operator).headers)


def set_guide(m: Market, **overrides: Any) -> dict[str, Any]:
    return ok(post_guide(m, **overrides), 201)


def guides(m: Market, **query: str) -> list[dict[str, Any]]:
    return ok(m.client.get(GUIDES, query_string=query, headers=m.buyer.headers))


def guide_by_id(m: Market, guide_id: str) -> dict[str, Any]:
    return next(guide for guide in guides(m) if guide["id"] == guide_id)


def guide_rows() -> int:
    with Session(db.engine) as session:
        return session.scalar(select(func.count()).select_from(GuidePrice))


def draft(m: Market, **overrides: Any) -> str:
    return ok(m.client.post(LISTINGS, json=listing_body(m.merchant, **overrides),
                            headers=m.merchant.headers), 201)["id"]


def submit(m: Market, listing_id: str) -> TestResponse:
    """Submit; when the parties the listing names are asked, they accept and it is submitted
    again."""
    answer = m.client.post(f"{LISTINGS}/{listing_id}/submit", headers=m.merchant.headers)
    if answer.status_code == 409 and answer.get_json()["code"] == "consent_pending":
        accept_consents(m.client, listing_id)
        answer = m.client.post(f"{LISTINGS}/{listing_id}/submit", headers=m.merchant.headers)
    return answer


def public(m: Market) -> dict[str, Any]:
    """Public data under authorized operation, by a new authority (a public agency)."""
    return public_data(m.merchant, make_member(Role.BUYER, kind=PartyKind.PUBLIC_AGENCY))


def submitted(m: Market, **overrides: Any) -> dict[str, Any]:
    return ok(submit(m, draft(m, **overrides)))


def fast_track(m: Market) -> None:
    """A positive-list rule for transport: a general listing with nothing else holding it
    back is listed at once."""
    ok(m.client.post(f"{API}/admission-rules", headers=m.operator.headers, json={
        "list": "positive", "name": "Transport data", "reason": "Encouraged sector",
        "categories": ["transport"]}), 201)


def listing_seen(m: Market, listing_id: str) -> dict[str, Any]:
    return ok(m.client.get(f"{LISTINGS}/{listing_id}", headers=m.operator.headers))


def stored_status(listing_id: str) -> str:
    with Session(db.engine) as session:
        listing = session.get(Listing, uuid.UUID(listing_id))
        assert listing is not None
        return listing.status.value


def listed(m: Market, **overrides: Any) -> dict[str, Any]:
    return listed_product(m.client, m.merchant, **overrides)


def scope(**changes: Any) -> dict[str, Any]:
    """The default listing's usage scope, with changes."""
    return {"purposes": ["research", "logistics_planning"], "term_days": 365,
            "territory": "domestic", "resale": False, "derivatives": True, **changes}


def guidance(m: Market, listing_id: str, viewer: Member | None = None) -> dict[str, Any]:
    """The price guidance, checked to add up: reference + the factors' effects = suggested."""
    body = ok(m.client.get(f"{LISTINGS}/{listing_id}/price-guidance",
                           headers=(viewer or m.merchant).headers))
    assert body["reference_price"] + sum(f["effect"] for f in body["factors"]) \
        == body["suggested_price"], body
    return body


def factor(body: dict[str, Any], name: str) -> dict[str, Any]:
    return next(f for f in body["factors"] if f["name"] == name)


def effect(body: dict[str, Any], name: str) -> int:
    return factor(body, name)["effect"]


def deals_at(m: Market, *prices: int, category: str = "transport") -> None:
    """One completed order (a recent deal) at each price, on a listing of that price."""
    for price in prices:
        listing = listed(m, unit_price=price, category=category)
        give_completed_order(m.client, m.buyer.id, listing["id"])


def post_demand(m: Market, **overrides: Any) -> dict[str, Any]:
    return ok(m.client.post(f"{API}/demands", headers=m.buyer.headers, json={
        "category": "transport", "purpose": "research", "max_unit_price": 200_000,
        **overrides}), 201)


def place_order(m: Market, listing: dict[str, Any]) -> TestResponse:
    return m.client.post(f"{API}/orders", headers=m.buyer.headers,
                         json={"listing_id": listing["id"], "quantity": 1, "purpose": "research"})


def licenses_left(m: Market, listing: dict[str, Any]) -> int | None:
    return listing_seen(m, listing["id"])["licenses_available"]


def order_rows() -> int:
    with Session(db.engine) as session:
        return session.scalar(select(func.count()).select_from(Order))


# --- the band ----------------------------------------------------------------------------------

def test_a_guide_price_reports_its_band_and_scope(m):
    guide = set_guide(m, reference_price=100_000, floor_pct=20, ceiling_pct=30)

    assert guide["floor_price"] == 80_000
    assert guide["ceiling_price"] == 130_000
    assert guide["binding"] is True
    assert guide["in_force"] is True
    assert guide["classification"] is None and guide["price_model"] is None
    assert guide["currency"] == "CNY"
    assert guide["superseded_at"] is None and guide["superseded_by"] is None
    assert guide["set_by"] == m.operator.id
    assert instant(guide["effective_from"]) <= clock.now()


def test_the_floor_rounds_up_and_the_ceiling_rounds_down(m):
    guide = set_guide(m, reference_price=99_999, floor_pct=33, ceiling_pct=33)

    # 99999 x 0.67 = 66999.33 and 99999 x 1.33 = 132998.67
    assert guide["floor_price"] == 67_000
    assert guide["ceiling_price"] == 132_998


@pytest.mark.parametrize("unit_price", [79_999, 130_001])
def test_a_price_outside_a_binding_band_is_refused_at_submission_and_the_draft_is_unchanged(
        m, unit_price):
    guide = set_guide(m)
    listing_id = draft(m, unit_price=unit_price)
    before = listing_seen(m, listing_id)

    body = problem(submit(m, listing_id), 422, "price_out_of_band")

    assert body["guide_price_id"] == guide["id"]
    assert (body["floor_price"], body["ceiling_price"]) == (80_000, 130_000)
    assert str(unit_price) in body["errors"]["unit_price"][0]
    assert listing_seen(m, listing_id) == before
    assert before["status"] == "draft" and before["admission"] is None
    assert stored_status(listing_id) == "draft"


@pytest.mark.parametrize("unit_price", [80_000, 130_000])
def test_a_price_on_either_edge_of_a_binding_band_is_accepted(m, unit_price):
    set_guide(m)

    listing = submitted(m, unit_price=unit_price)

    assert listing["status"] in ("listed", "pending_review")
    assert listing["price_warning"] is None


@pytest.mark.parametrize(("unit_price", "accepted"),
                         [(66_999, False), (67_000, True), (132_998, True), (132_999, False)])
def test_the_rounded_edges_of_a_band_are_the_ones_enforced(m, unit_price, accepted):
    set_guide(m, reference_price=99_999, floor_pct=33, ceiling_pct=33)

    response = submit(m, draft(m, unit_price=unit_price))

    if accepted:
        assert ok(response)["status"] in ("listed", "pending_review")
    else:
        problem(response, 422, "price_out_of_band")


def test_a_binding_band_set_while_a_listing_waits_for_review_refuses_its_approval(m):
    listing = submitted(m)
    assert listing["status"] == "pending_review"
    set_guide(m, reference_price=100_000, floor_pct=50, ceiling_pct=0)

    response = m.client.post(f"{LISTINGS}/{listing['id']}/review", headers=m.operator.headers,
                             json={"decision": "approve", "reason": "Checked"})

    problem(response, 422, "price_out_of_band")
    assert listing_seen(m, listing["id"])["status"] == "pending_review"


def test_a_binding_band_set_while_a_listing_is_suspended_refuses_its_relisting(m):
    listing = listed(m)
    ok(m.client.post(f"{LISTINGS}/{listing['id']}/suspend", headers=m.operator.headers,
                     json={"reason": "Checking the source"}))
    set_guide(m, reference_price=100_000, floor_pct=50, ceiling_pct=0)

    response = m.client.post(f"{LISTINGS}/{listing['id']}/relist", headers=m.operator.headers,
                             json={"reason": "Source checked"})

    problem(response, 422, "price_out_of_band")
    assert listing_seen(m, listing["id"])["status"] == "suspended"


# --- non-binding bands -------------------------------------------------------------------------

@pytest.mark.parametrize("unit_price", [79_999, 130_001])
def test_a_price_outside_a_non_binding_band_is_accepted_with_a_warning(m, unit_price):
    set_guide(m, binding=False)

    listing = submitted(m, unit_price=unit_price)

    assert listing["status"] in ("listed", "pending_review")
    assert listing["price_warning"] is not None
    assert str(unit_price) in listing["price_warning"]
    assert "non-binding" in listing["price_warning"]
    assert listing_seen(m, listing["id"])["price_warning"] == listing["price_warning"]


def test_a_price_inside_a_non_binding_band_leaves_no_warning(m):
    set_guide(m, binding=False)

    listing = submitted(m, unit_price=PRICE)

    assert listing["price_warning"] is None


def test_approving_after_the_non_binding_band_has_ended_clears_the_warning(m):
    set_guide(m, binding=False, effective_to=in_days(1))
    listing = submitted(m, unit_price=200_000)
    assert listing["status"] == "pending_review" and listing["price_warning"] is not None

    clock.advance(timedelta(days=2))
    approved = ok(m.client.post(f"{LISTINGS}/{listing['id']}/review", headers=m.operator.headers,
                                json={"decision": "approve", "reason": "Checked"}))

    assert approved["status"] == "listed"
    assert approved["price_warning"] is None


# --- scope -------------------------------------------------------------------------------------

def test_a_guide_price_for_another_classification_does_not_apply(m):
    set_guide(m, classification="sensitive")

    listing = submitted(m, classification="general", unit_price=200_000)

    assert listing["status"] == "pending_review"
    assert listing["price_warning"] is None


def test_a_guide_price_for_another_category_does_not_apply(m):
    set_guide(m, category="finance")

    listing = submitted(m, unit_price=200_000)

    assert listing["status"] == "pending_review"


def test_a_guide_price_for_the_classification_wins_over_the_category_wide_one(m):
    set_guide(m)  # 80000-130000 for any transport product
    narrow = set_guide(m, classification="general", reference_price=200_000, floor_pct=10,
                       ceiling_pct=10)  # 180000-220000

    assert submitted(m, unit_price=200_000)["status"] == "pending_review"
    refused = problem(submit(m, draft(m, unit_price=PRICE)), 422, "price_out_of_band")
    assert refused["guide_price_id"] == narrow["id"]


def test_a_narrower_guide_price_wins_even_over_a_broader_one_set_after_it(m):
    narrow = set_guide(m, classification="general", reference_price=200_000, floor_pct=10,
                       ceiling_pct=10)
    set_guide(m)

    refused = problem(submit(m, draft(m, unit_price=PRICE)), 422, "price_out_of_band")

    assert refused["guide_price_id"] == narrow["id"]


def test_a_guide_price_for_another_price_model_does_not_apply(m):
    per_call = set_guide(m, price_model="per_call")

    assert submitted(m, price_model="subscription", unit_price=200_000)["status"] \
        == "pending_review"
    refused = problem(submit(m, draft(m, price_model="per_call", unit_price=200_000)), 422,
                      "price_out_of_band")
    assert refused["guide_price_id"] == per_call["id"]


def test_a_classification_scope_counts_more_than_a_price_model_scope(m):
    set_guide(m, price_model="subscription")  # 80000-130000
    by_class = set_guide(m, classification="general", reference_price=200_000, floor_pct=10,
                         ceiling_pct=10)  # 180000-220000

    assert submitted(m, unit_price=200_000)["status"] == "pending_review"
    refused = problem(submit(m, draft(m, unit_price=PRICE)), 422, "price_out_of_band")
    assert refused["guide_price_id"] == by_class["id"]


# --- versions: supersession by effective date ------------------------------------------------

def test_a_later_guide_price_supersedes_the_open_ended_one_from_its_date_and_both_are_kept(m):
    a = set_guide(m)  # 80000-130000 from now
    b = set_guide(m, reference_price=200_000, floor_pct=10, ceiling_pct=10,
                  effective_from=in_days(10))  # 180000-220000

    history = {guide["id"]: guide for guide in guides(m)}

    assert set(history) == {a["id"], b["id"]}
    assert instant(history[a["id"]]["superseded_at"]) == instant(b["effective_from"])
    assert history[a["id"]]["superseded_by"] == b["id"]
    assert history[b["id"]]["superseded_at"] is None
    assert (history[a["id"]]["in_force"], history[b["id"]]["in_force"]) == (True, False)
    with Session(db.engine) as session:
        actions = list(session.scalars(select(AuditEntry.action)
                                       .where(AuditEntry.subject_id == a["id"])
                                       .order_by(AuditEntry.id)))
    assert actions == ["guide_price.set", "guide_price.superseded"]


def test_the_superseded_band_applies_before_the_new_date_and_the_new_one_after_it(m):
    a = set_guide(m)
    b = set_guide(m, reference_price=200_000, floor_pct=10, ceiling_pct=10,
                  effective_from=in_days(10))
    before, after = draft(m, unit_price=PRICE), draft(m, unit_price=PRICE)

    assert ok(submit(m, before))["status"] == "pending_review"
    assert [guide["id"] for guide in guides(m, in_force="true")] == [a["id"]]

    clock.advance(timedelta(days=11))

    refused = problem(submit(m, after), 422, "price_out_of_band")
    assert refused["guide_price_id"] == b["id"]
    assert [guide["id"] for guide in guides(m, in_force="true")] == [b["id"]]
    assert guide_by_id(m, a["id"])["in_force"] is False


def test_a_guide_price_set_for_an_earlier_date_is_superseded_by_the_later_one_already_set(m):
    later = set_guide(m, effective_from=in_days(10))
    earlier = set_guide(m, reference_price=90_000)

    assert guide_by_id(m, earlier["id"])["superseded_by"] == later["id"]
    assert instant(guide_by_id(m, earlier["id"])["superseded_at"]) \
        == instant(later["effective_from"])
    assert guide_by_id(m, later["id"])["superseded_at"] is None


def test_a_guide_price_set_between_two_versions_is_chained_in_date_order(m):
    first = set_guide(m)
    third = set_guide(m, effective_from=in_days(20))
    second = set_guide(m, effective_from=in_days(10))

    assert guide_by_id(m, first["id"])["superseded_by"] == second["id"]
    assert guide_by_id(m, second["id"])["superseded_by"] == third["id"]
    assert instant(guide_by_id(m, second["id"])["superseded_at"]) \
        == instant(third["effective_from"])
    assert guide_by_id(m, third["id"])["superseded_at"] is None


def test_a_guide_price_of_a_narrower_scope_does_not_supersede_the_broader_one(m):
    broad = set_guide(m)
    set_guide(m, classification="general", effective_from=in_days(1))

    assert guide_by_id(m, broad["id"])["superseded_at"] is None


def test_a_guide_price_with_an_end_is_not_superseded_by_one_starting_after_it(m):
    ended = set_guide(m, effective_to=in_days(5))
    set_guide(m, effective_from=in_days(10))

    assert guide_by_id(m, ended["id"])["superseded_at"] is None


def test_a_guide_price_past_its_end_is_no_longer_in_force_and_enforces_nothing(m):
    set_guide(m, effective_to=in_days(1))
    clock.advance(timedelta(days=2))

    assert guides(m, in_force="true") == []
    assert submitted(m, unit_price=500_000)["status"] == "pending_review"


def test_the_category_filter_lists_that_category_only(m):
    transport = set_guide(m)
    finance = set_guide(m, category="finance")

    assert [guide["id"] for guide in guides(m, category="finance")] == [finance["id"]]
    assert [guide["id"] for guide in guides(m, category="transport")] == [transport["id"]]
    assert guides(m, category="energy") == []


# --- overlapping binding bands -----------------------------------------------------------------

def test_a_second_binding_guide_price_with_the_same_scope_and_start_is_refused(m):
    start = in_days(1)
    first = set_guide(m, effective_from=start)

    body = problem(post_guide(m, reference_price=90_000, effective_from=start), 409,
                   "overlapping_guide_price")

    assert body["guide_price_id"] == first["id"]
    assert guide_rows() == 1
    assert guide_by_id(m, first["id"])["superseded_at"] is None


def test_a_binding_guide_price_starting_inside_a_binding_period_with_an_end_is_refused(m):
    first = set_guide(m, effective_to=in_days(10))

    body = problem(post_guide(m, effective_from=in_days(5)), 409, "overlapping_guide_price")

    assert body["guide_price_id"] == first["id"]
    assert guide_rows() == 1


def test_a_binding_guide_price_ending_after_a_later_binding_start_is_refused(m):
    later = set_guide(m, effective_from=in_days(10))

    body = problem(post_guide(m, effective_from=in_days(1), effective_to=in_days(15)), 409,
                   "overlapping_guide_price")

    assert body["guide_price_id"] == later["id"]
    assert guide_rows() == 1


def test_binding_guide_prices_for_consecutive_periods_are_both_accepted(m):
    first = set_guide(m, effective_to=in_days(10))
    second = set_guide(m, effective_from=first["effective_to"], effective_to=in_days(20))

    assert guide_rows() == 2
    assert guide_by_id(m, first["id"])["superseded_at"] is None
    assert guide_by_id(m, second["id"])["in_force"] is False


def test_binding_guide_prices_of_different_scopes_may_start_together(m):
    start = in_days(1)
    set_guide(m, effective_from=start)
    set_guide(m, classification="general", effective_from=start)
    set_guide(m, category="finance", effective_from=start)

    assert guide_rows() == 3


def test_non_binding_guide_prices_may_overlap(m):
    start = in_days(1)
    set_guide(m, binding=False, effective_from=start)
    set_guide(m, binding=False, effective_from=start, reference_price=90_000)
    set_guide(m, binding=False, effective_to=in_days(10))
    set_guide(m, binding=False, effective_from=in_days(5), effective_to=in_days(15))

    assert guide_rows() == 4


def test_a_binding_guide_price_may_not_overlap_a_non_binding_one_of_the_same_scope(m):
    # _clashes: "one of them binding" is enough to refuse the overlap.
    set_guide(m, binding=False, effective_to=in_days(10))

    problem(post_guide(m, effective_from=in_days(5)), 409, "overlapping_guide_price")

    assert guide_rows() == 1


@pytest.mark.postgres_only
def test_concurrent_binding_guide_prices_with_one_start_make_exactly_one(app):
    operator = make_member(Role.OPERATOR)
    start = in_days(1)

    responses = race(app, 8, lambda client, n: client.post(
        GUIDES, json=guide_body(reference_price=100_000 + n, effective_from=start),
        headers=operator.headers))

    statuses = sorted(response.status_code for response in responses)
    assert statuses == [201] + [409] * 7, [r.get_json() for r in responses]
    assert guide_rows() == 1


@pytest.mark.postgres_only
def test_concurrent_versions_of_one_scope_form_a_single_chain(app):
    operator = make_member(Role.OPERATOR)
    starts = [in_days(n + 1) for n in range(6)]

    responses = race(app, 6, lambda client, n: client.post(
        GUIDES, json=guide_body(effective_from=starts[n]), headers=operator.headers))

    assert [response.status_code for response in responses] == [201] * 6
    with Session(db.engine) as session:
        chain = list(session.scalars(select(GuidePrice).order_by(GuidePrice.effective_from)))
    assert len(chain) == 6
    for older, newer in itertools.pairwise(chain):
        assert (older.superseded_by, older.superseded_at) == (newer.id, newer.effective_from)
    assert chain[-1].superseded_at is None


# --- who may set guide prices, and what is valid -----------------------------------------------

@pytest.mark.parametrize("role", [Role.OPERATOR, Role.REGULATOR])
def test_operators_and_regulators_set_guide_prices(m, role):
    actor = make_member(role)

    guide = ok(post_guide(m, actor), 201)

    assert guide["set_by"] == actor.id
    assert guide_rows() == 1


@pytest.mark.parametrize("role", [Role.MERCHANT, Role.BUYER, Role.CERTIFIER])
def test_other_roles_may_not_set_guide_prices(m, role):
    problem(post_guide(m, make_member(role)), 403, "forbidden")

    assert guide_rows() == 0


def test_guide_prices_need_an_api_key_to_set_or_read(m):
    assert m.client.post(GUIDES, json=guide_body()).status_code == 401
    assert m.client.get(GUIDES).status_code == 401
    assert guide_rows() == 0


def test_any_member_reads_the_guide_prices(m):
    guide = set_guide(m)

    for viewer in (m.merchant, m.buyer, m.regulator):
        listed_ids = [g["id"] for g in ok(m.client.get(GUIDES, headers=viewer.headers))]
        assert listed_ids == [guide["id"]]


@pytest.mark.parametrize(("field", "value"), [
    ("floor_pct", 101),
    ("floor_pct", -1),
    ("ceiling_pct", -1),
    ("reference_price", -1),
    ("reference_price", 0),
    ("reference_price", 100_000.5),
    ("binding", None),
    ("classification", "secret"),
    ("price_model", "barter"),
    ("category", ""),
    ("currency", "USD"),
    ("effective_from", "2030-01-01T00:00:00"),  # no time zone
])
def test_an_invalid_guide_price_is_refused_and_nothing_is_written(m, field, value):
    body = problem(post_guide(m, **{field: value}), 422, "validation_error")

    assert field in str(body["errors"])
    assert guide_rows() == 0


@pytest.mark.parametrize("days_after_start", [-1, 0])
def test_a_guide_price_ending_before_or_when_it_starts_is_refused(m, days_after_start):
    start = clock.now() + timedelta(days=5)
    ends = start + timedelta(days=days_after_start)

    body = problem(post_guide(m, effective_from=start.isoformat(), effective_to=ends.isoformat()),
                   422, "validation_error")

    assert "effective_to" in body["errors"]
    assert guide_rows() == 0


def test_a_guide_price_ending_in_the_past_without_a_start_is_refused(m):
    problem(post_guide(m, effective_to=in_days(-1)), 422, "validation_error")

    assert guide_rows() == 0


# --- public data under authorized operation ----------------------------------------------------

def test_public_data_without_a_binding_guide_price_goes_to_review_despite_the_fast_track(m):
    fast_track(m)
    assert submitted(m)["status"] == "listed"  # the same product from a collected source

    listing = submitted(m, **public(m))

    assert listing["status"] == "pending_review"
    assert listing["admission"]["decision"] == "encouraged"
    assert "no binding guide price for 'transport'" in listing["status_reason"]


def test_public_data_with_a_binding_guide_price_and_a_price_inside_is_fast_tracked(m):
    fast_track(m)
    set_guide(m)

    listing = submitted(m, **public(m), unit_price=PRICE)

    assert listing["status"] == "listed"
    assert "guide price" not in listing["status_reason"]


def test_public_data_with_a_binding_guide_price_is_still_refused_outside_its_band(m):
    fast_track(m)
    set_guide(m)

    problem(submit(m, draft(m, **public(m), unit_price=200_000)), 422,
            "price_out_of_band")


@pytest.mark.parametrize("guide", [
    {"binding": False},
    {"classification": "sensitive"},
    {"price_model": "per_call"},
    {"category": "finance"},
    {"effective_from": "2999-01-01T00:00:00+00:00"},
], ids=["non_binding", "other_classification", "other_price_model", "other_category",
        "not_yet_in_force"])
def test_public_data_goes_to_review_when_no_binding_guide_price_applies_to_it(m, guide):
    fast_track(m)
    set_guide(m, **guide)

    listing = submitted(m, **public(m))

    assert listing["status"] == "pending_review"
    assert "no binding guide price" in listing["status_reason"]


def test_an_operator_may_still_approve_public_data_without_a_guide_price(m):
    listing = submitted(m, **public(m))

    approved = ok(m.client.post(f"{LISTINGS}/{listing['id']}/review", headers=m.operator.headers,
                                json={"decision": "approve", "reason": "Price checked by hand"}))

    assert approved["status"] == "listed"


# --- orders ------------------------------------------------------------------------------------

def test_an_order_for_a_listing_priced_outside_a_band_set_since_it_was_listed_is_refused(m):
    listing = listed(m, unit_price=PRICE, licenses_available=10)
    guide = set_guide(m, reference_price=100_000, floor_pct=50, ceiling_pct=0)

    body = problem(place_order(m, listing), 422, "price_out_of_band")

    assert body["guide_price_id"] == guide["id"]
    assert (body["floor_price"], body["ceiling_price"]) == (50_000, 100_000)
    assert licenses_left(m, listing) == 10
    assert order_rows() == 0


def test_an_order_for_a_listing_priced_inside_the_binding_band_is_placed(m):
    listing = listed(m, unit_price=PRICE, licenses_available=10)
    set_guide(m)

    order = ok(place_order(m, listing), 201)

    assert order["unit_price"] == PRICE
    assert licenses_left(m, listing) == 9


def test_an_order_is_not_refused_for_a_price_outside_a_non_binding_band(m):
    listing = listed(m, unit_price=PRICE)
    set_guide(m, binding=False, reference_price=100_000, floor_pct=50, ceiling_pct=0)

    assert ok(place_order(m, listing), 201)["unit_price"] == PRICE


# --- matching ----------------------------------------------------------------------------------

def match_ids(m: Market, demand: dict[str, Any]) -> list[str]:
    return [match["listing_id"] for match in ok(m.client.get(
        f"{API}/demands/{demand['id']}/matches", headers=m.buyer.headers))]


def fitting_ids(m: Market, listing: dict[str, Any]) -> list[str]:
    return [demand["id"] for demand in ok(m.client.get(
        f"{LISTINGS}/{listing['id']}/matches", headers=m.merchant.headers))]


def test_a_listing_outside_a_binding_band_set_after_listing_no_longer_matches_demands(m):
    outside = listed(m, unit_price=PRICE)
    inside = listed(m, unit_price=90_000)
    demand = post_demand(m)
    assert set(match_ids(m, demand)) == {outside["id"], inside["id"]}

    set_guide(m, reference_price=100_000, floor_pct=50, ceiling_pct=0)  # 50000-100000

    assert match_ids(m, demand) == [inside["id"]]
    assert fitting_ids(m, outside) == []
    assert fitting_ids(m, inside) == [demand["id"]]


def test_a_binding_band_of_another_classification_does_not_hide_a_listing_from_matching(m):
    listing = listed(m, unit_price=PRICE)
    demand = post_demand(m)

    set_guide(m, classification="sensitive", reference_price=100_000, floor_pct=50,
              ceiling_pct=0)

    assert match_ids(m, demand) == [listing["id"]]
    assert fitting_ids(m, listing) == [demand["id"]]


def test_a_non_binding_band_does_not_hide_a_listing_from_matching(m):
    listing = listed(m, unit_price=PRICE)
    demand = post_demand(m)

    set_guide(m, binding=False, reference_price=100_000, floor_pct=50, ceiling_pct=0)

    assert match_ids(m, demand) == [listing["id"]]
    assert fitting_ids(m, listing) == [demand["id"]]


def test_an_auto_order_demand_does_not_order_a_listing_outside_a_binding_band(m):
    outside = listed(m, unit_price=PRICE)
    set_guide(m, reference_price=100_000, floor_pct=50, ceiling_pct=0)

    demand = post_demand(m, auto_order=True)

    assert demand["status"] == "open"
    assert demand["order"] is None
    assert licenses_left(m, outside) == 10


# --- price guidance: the basis -----------------------------------------------------------------

def test_with_a_guide_price_the_suggestion_starts_from_its_reference(m):
    listing = listed(m, unit_price=PRICE)
    guide = set_guide(m)

    body = guidance(m, listing["id"])

    assert body["basis"] == "guide_price"
    assert body["reference_price"] == 100_000
    assert (body["floor_price"], body["ceiling_price"]) == (80_000, 130_000)
    assert body["binding"] is True
    assert body["guide_price_id"] == guide["id"]
    assert body["listing_id"] == listing["id"]
    assert body["currency"] == "CNY"


def test_without_a_guide_price_the_suggestion_starts_from_the_median_of_recent_deals(m):
    deals_at(m, 100_000, 110_000, 150_000)
    listing = listed(m, unit_price=PRICE)

    body = guidance(m, listing["id"])

    assert body["basis"] == "recent_deals"
    assert body["reference_price"] == 110_000
    assert body["recent_deals"] == {"count": 3, "median_unit_price": 110_000}
    assert effect(body, "recent_deals") == 0  # the median is itself the basis
    assert body["floor_price"] is None and body["ceiling_price"] is None
    assert body["binding"] is False and body["guide_price_id"] is None


def test_without_a_guide_price_or_deals_the_suggestion_starts_from_the_listing_price(m):
    listing = listed(m, unit_price=PRICE)

    body = guidance(m, listing["id"])

    assert body["basis"] == "listing_price"
    assert body["reference_price"] == PRICE
    assert body["recent_deals"] == {"count": 0, "median_unit_price": None}
    assert factor(body, "recent_deals") == {"name": "recent_deals", "value": "no recent deals",
                                            "effect": 0}
    assert factor(body, "band") == {"name": "band", "value": "no binding band", "effect": 0}


def test_every_factor_is_reported_in_the_documented_order(m):
    body = guidance(m, listed(m)["id"])

    assert [f["name"] for f in body["factors"]] == [
        "certification", "quality_reports", "scarcity", "exclusivity", "resale", "derivatives",
        "term", "territory", "delivery_mode", "recent_deals", "band"]


def test_the_same_facts_give_the_same_guidance(m):
    set_guide(m, binding=False)
    deals_at(m, 110_000, 140_000)
    listing = listed(m, licenses_available=1, usage_scope=scope(resale=True, term_days=200))
    post_demand(m)

    first = guidance(m, listing["id"])
    second = guidance(m, listing["id"])

    assert first == second
    assert any(f["effect"] for f in first["factors"])


def test_price_guidance_is_shown_for_what_the_viewer_may_see(m):
    draft_id = draft(m)

    assert guidance(m, draft_id, m.merchant)["basis"] == "listing_price"
    assert guidance(m, draft_id, m.operator)["basis"] == "listing_price"
    assert m.client.get(f"{LISTINGS}/{draft_id}/price-guidance",
                        headers=m.buyer.headers).status_code == 404
    assert m.client.get(f"{LISTINGS}/{uuid.uuid4()}/price-guidance",
                        headers=m.buyer.headers).status_code == 404
    assert m.client.get(f"{LISTINGS}/{draft_id}/price-guidance").status_code == 401


# --- price guidance: each factor's direction ---------------------------------------------------

def compare(m: Market, better: dict[str, Any], worse: dict[str, Any]
            ) -> tuple[dict[str, Any], dict[str, Any]]:
    """The guidance of two listed products that differ only as given (same category, price)."""
    return (guidance(m, listed(m, **better)["id"]), guidance(m, listed(m, **worse)["id"]))


@pytest.mark.parametrize(("name", "better", "worse", "better_effect", "worse_effect"), [
    ("exclusivity", {"licenses_available": 1}, {"licenses_available": 10}, 18_000, 0),
    ("exclusivity", {"licenses_available": 1}, {"licenses_available": None}, 18_000, 0),
    ("resale", {"usage_scope": scope(resale=True)}, {"usage_scope": scope(resale=False)},
     12_000, 0),
    ("derivatives", {"usage_scope": scope(derivatives=True)},
     {"usage_scope": scope(derivatives=False)}, 6_000, 0),
    ("term", {"usage_scope": scope(term_days=None)}, {"usage_scope": scope(term_days=365)},
     6_000, 0),
    ("term", {"usage_scope": scope(term_days=730)}, {"usage_scope": scope(term_days=100)},
     0, -8_712),  # 365 - 100 = 265 days short: -(265 x 1000 // 365) = -726 bp
    ("term", {"usage_scope": scope(term_days=200)}, {"usage_scope": scope(term_days=1)},
     -5_424, -11_964),
    ("territory", {"usage_scope": scope(territory="cross_border")},
     {"usage_scope": scope(territory="domestic")}, 6_000, 0),
    ("delivery_mode", {"delivery_mode": "download"}, {"delivery_mode": "api"}, 3_600, 0),
    ("delivery_mode", {"delivery_mode": "api"}, {"delivery_mode": "sandbox"}, 0, -3_600),
], ids=["single_license_vs_ten", "single_license_vs_unlimited", "resale", "derivatives",
        "perpetual_vs_a_year", "two_years_vs_100_days", "200_days_vs_1_day", "cross_border",
        "download_vs_api", "api_vs_sandbox"])
def test_a_better_product_attribute_raises_the_suggestion_by_its_documented_share(
        m, name, better, worse, better_effect, worse_effect):
    high, low = compare(m, better, worse)

    assert (effect(high, name), effect(low, name)) == (better_effect, worse_effect)
    assert high["suggested_price"] - low["suggested_price"] == better_effect - worse_effect
    assert high["reference_price"] == low["reference_price"] == PRICE


def test_a_better_certification_raises_the_suggestion(m):
    certifier = make_member(Role.CERTIFIER)
    ratings = ["AAA", "AA", "A", "B", "C", None]
    products = [listed(m) for _ in ratings]
    for product, rating in zip(products, ratings, strict=True):
        if rating is not None:
            ok(m.client.post(f"{LISTINGS}/{product['id']}/certifications",
                             headers=certifier.headers,
                             json={"rating": rating, "scopes": ["quality"],
                                   "valid_until": in_days(30), "report_ref": "CERT-1"}), 201)

    bodies = [guidance(m, product["id"]) for product in products]

    assert [effect(body, "certification") for body in bodies] \
        == [12_000, 7_200, 3_600, 0, -6_000, 0]
    assert [factor(body, "certification")["value"] for body in bodies] \
        == ["AAA", "AA", "A", "B", "C", "none"]
    suggested = [body["suggested_price"] for body in bodies[:5]]
    assert suggested == sorted(suggested, reverse=True)


def test_an_expired_certification_no_longer_raises_the_suggestion(m):
    product = listed(m)
    ok(m.client.post(f"{LISTINGS}/{product['id']}/certifications",
                     headers=make_member(Role.CERTIFIER).headers,
                     json={"rating": "AAA", "scopes": ["quality"], "valid_until": in_days(1),
                           "report_ref": "CERT-1"}), 201)
    assert effect(guidance(m, product["id"]), "certification") == 12_000

    clock.advance(timedelta(days=2))

    assert effect(guidance(m, product["id"]), "certification") == 0


def report(m: Market, listing: dict[str, Any], score: int) -> None:
    reporter = make_member(Role.BUYER)
    give_completed_order(m.client, reporter.id, listing["id"])
    ok(m.client.post(f"{LISTINGS}/{listing['id']}/quality-reports", headers=reporter.headers,
                     json={"score": score, "issue": None}), 201)


def test_better_quality_reports_raise_the_suggestion(m):
    set_guide(m, binding=False)  # one basis for all, whatever the reports' orders add as deals
    good, fair, poor, unreported = listed(m), listed(m), listed(m), listed(m)
    for score in (5, 5):
        report(m, good, score)
    for score in (3, 4):
        report(m, fair, score)
    report(m, poor, 1)

    bodies = [guidance(m, product["id"]) for product in (good, fair, poor, unreported)]

    # (average - 3) x 2.5 % of 100000: 5 → +5 %, 3.5 → +1.25 %, 1 → -5 %, none → 0
    assert [effect(body, "quality_reports") for body in bodies] == [5_000, 1_250, -5_000, 0]
    assert factor(bodies[0], "quality_reports")["value"] == "5.0/5 from 2"
    suggested = [body["suggested_price"] for body in bodies[:3]]
    assert suggested == sorted(suggested, reverse=True)


def test_more_open_demands_in_the_category_raise_the_suggestion(m):
    product = listed(m)
    alone = guidance(m, product["id"])
    post_demand(m)
    even = guidance(m, product["id"])
    post_demand(m)
    post_demand(m)
    scarce = guidance(m, product["id"])

    # (demands - supply) / supply x 10 %, within -10 % .. +10 %
    assert [effect(body, "scarcity") for body in (alone, even, scarce)] \
        == [-12_000, 0, 12_000]
    assert factor(scarce, "scarcity")["value"] == "3 open demands / 1 listed"
    assert alone["suggested_price"] < even["suggested_price"] < scarce["suggested_price"]


def test_more_listed_supply_in_the_category_lowers_the_suggestion(m):
    product = listed(m)
    for _ in range(4):
        post_demand(m)
    scarce = guidance(m, product["id"])  # 4 demands, 1 listed: capped at +10 %
    listed(m)
    listed(m)
    listed(m)
    plenty = guidance(m, product["id"])  # 4 demands, 4 listed

    assert (effect(scarce, "scarcity"), effect(plenty, "scarcity")) == (12_000, 0)
    assert plenty["suggested_price"] < scarce["suggested_price"]


def test_only_open_demands_and_listed_products_of_the_category_count_as_scarcity(m):
    product = listed(m)
    listed(m, category="finance")
    draft(m)
    post_demand(m, category="finance")
    cancelled = post_demand(m)
    ok(m.client.post(f"{API}/demands/{cancelled['id']}/cancel", headers=m.buyer.headers))
    post_demand(m, expires_at=in_days(1))
    clock.advance(timedelta(days=2))

    body = guidance(m, product["id"])

    assert factor(body, "scarcity")["value"] == "0 open demands / 1 listed"


def test_a_higher_median_of_recent_deals_raises_the_suggestion(m):
    for category in ("transport", "energy"):
        set_guide(m, category=category, binding=False)
    deals_at(m, 110_000, category="transport")
    deals_at(m, 150_000, category="energy")
    lower = guidance(m, listed(m, category="transport")["id"])
    higher = guidance(m, listed(m, category="energy")["id"])

    # moves toward the median by min(count, 10) x 5 % of the gap
    assert (effect(lower, "recent_deals"), effect(higher, "recent_deals")) == (500, 2_500)
    assert lower["suggested_price"] < higher["suggested_price"]


def test_a_median_of_recent_deals_below_the_reference_lowers_the_suggestion(m):
    set_guide(m, binding=False)
    deals_at(m, 80_000, 80_000)

    body = guidance(m, listed(m)["id"])

    assert effect(body, "recent_deals") == -2_000  # 2 x 5 % of -20000


def test_the_pull_of_recent_deals_is_bounded_to_a_fifth_of_the_reference(m):
    set_guide(m, binding=False, ceiling_pct=1000)
    deal_listing = listed(m, unit_price=300_000)
    for _ in range(12):
        give_completed_order(m.client, m.buyer.id, deal_listing["id"])

    body = guidance(m, listed(m)["id"])

    assert body["recent_deals"] == {"count": 12, "median_unit_price": 300_000}
    assert effect(body, "recent_deals") == 20_000


# --- price guidance: clamping into a binding band ---------------------------------------------

def test_a_suggestion_above_the_binding_ceiling_is_clamped_to_it(m):
    set_guide(m, reference_price=100_000, floor_pct=10, ceiling_pct=10)  # 90000-110000
    generous = listed(m, unit_price=110_000, licenses_available=1, delivery_mode="download",
                      usage_scope=scope(resale=True, term_days=None, territory="cross_border"))

    body = guidance(m, generous["id"])

    unclamped = body["reference_price"] + sum(
        f["effect"] for f in body["factors"] if f["name"] != "band")
    assert unclamped > 110_000
    assert body["suggested_price"] == body["ceiling_price"] == 110_000
    assert factor(body, "band") == {"name": "band", "value": "binding 90000-110000",
                                    "effect": 110_000 - unclamped}


def test_a_suggestion_below_the_binding_floor_is_clamped_to_it(m):
    set_guide(m, reference_price=100_000, floor_pct=10, ceiling_pct=10)
    meagre = listed(m, unit_price=90_000, delivery_mode="sandbox",
                    usage_scope=scope(derivatives=False, term_days=30))

    body = guidance(m, meagre["id"])

    unclamped = body["reference_price"] + sum(
        f["effect"] for f in body["factors"] if f["name"] != "band")
    assert unclamped < 90_000
    assert body["suggested_price"] == body["floor_price"] == 90_000
    assert effect(body, "band") == 90_000 - unclamped


def test_a_non_binding_band_does_not_clamp_the_suggestion(m):
    set_guide(m, binding=False, reference_price=100_000, floor_pct=10, ceiling_pct=10)
    generous = listed(m, unit_price=110_000, licenses_available=1,
                      usage_scope=scope(resale=True, term_days=None))

    body = guidance(m, generous["id"])

    assert body["suggested_price"] > body["ceiling_price"]
    assert factor(body, "band") == {"name": "band", "value": "no binding band", "effect": 0}
    assert body["binding"] is False


# --- price guidance: recent deals --------------------------------------------------------------

def test_the_median_of_an_odd_number_of_deals_is_the_middle_price(m):
    deals_at(m, 170_000, 100_000, 130_000)

    body = guidance(m, listed(m)["id"])

    assert body["recent_deals"] == {"count": 3, "median_unit_price": 130_000}


def test_the_median_of_an_even_number_of_deals_is_the_mean_of_the_middle_two_rounded_down(m):
    deals_at(m, 200_000, 130_001, 100_000, 170_000)

    body = guidance(m, listed(m)["id"])

    assert body["recent_deals"] == {"count": 4, "median_unit_price": 150_000}


def test_deals_older_than_the_window_are_left_out(m):
    window = m.app.config["DEAL_WINDOW_DAYS"]
    deals_at(m, 100_000)
    clock.advance(timedelta(days=window - 30))
    deals_at(m, 140_000)
    product = listed(m)
    assert guidance(m, product["id"])["recent_deals"] == {"count": 2,
                                                         "median_unit_price": 120_000}

    clock.advance(timedelta(days=31))

    assert guidance(m, product["id"])["recent_deals"] == {"count": 1,
                                                         "median_unit_price": 140_000}


def test_only_completed_orders_of_the_category_count_as_deals(m):
    deals_at(m, 100_000)
    deals_at(m, 500_000, category="finance")
    pending = listed(m, unit_price=900_000)
    ok(place_order(m, pending), 201)

    body = guidance(m, listed(m)["id"])

    assert body["recent_deals"] == {"count": 1, "median_unit_price": 100_000}


def test_an_order_completed_through_the_api_counts_as_a_deal_of_its_category(m):
    product = listed(m, unit_price=140_000)
    order = ok(place_order(m, product), 201)
    ok(m.client.post(f"{API}/orders/{order['id']}/payments/confirm", headers=m.operator.headers,
                     json={"reference": "BANK-001"}))
    ok(m.client.post(f"{API}/orders/{order['id']}/deliver", headers=m.merchant.headers,
                     json={"delivery_ref": "s3://exchange/1.parquet", "checksum": "sha256:0f"}))
    ok(m.client.post(f"{API}/orders/{order['id']}/accept", headers=m.buyer.headers))

    body = guidance(m, listed(m)["id"])

    assert body["recent_deals"] == {"count": 1, "median_unit_price": 140_000}
    assert body["basis"] == "recent_deals"


def test_a_binding_band_set_later_warns_the_listed_products_it_excludes(client):
    operator, merchant = make_member(Role.OPERATOR), make_member(Role.MERCHANT)
    outside = listed_product(client, merchant, unit_price=120_000)
    inside = listed_product(client, merchant, unit_price=90_000)
    set_guide = client.post("/api/v1/guide-prices", headers=operator.headers, json={
        "category": "transport", "reference_price": 100_000, "floor_pct": 20,
        "ceiling_pct": 10, "binding": True})
    assert set_guide.status_code == 201, set_guide.json

    def warning(listing: dict) -> str | None:
        return client.get(f"/api/v1/listings/{listing['id']}",
                          headers=merchant.headers).json["price_warning"]

    assert "outside the binding band 80000-110000" in warning(outside)
    assert warning(inside) is None
