"""Public data under authorized operation (公共数据授权运营) through the HTTP API: the listing
records its authorization by a public agency, shares its revenue with it, and the authority
consents like every party named."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from app import clock
from app.parties.models import PartyKind, Role
from tests.factories import Member, make_member
from tests.listings.factories import listing_body, public_data
from tests.orders.factories import Market
from tests.support import ok, problem

API = "/api/v1"
LISTINGS = f"{API}/listings"


@pytest.fixture
def authority(market: Market) -> Member:
    return make_member(Role.BUYER, kind=PartyKind.PUBLIC_AGENCY)


def create(m: Market, **overrides: Any) -> str:
    return ok(m.client.post(LISTINGS, json=listing_body(m.merchant, **overrides),
                            headers=m.merchant.headers), 201)["id"]


def submit(m: Market, listing_id: str) -> Any:
    return m.client.post(f"{LISTINGS}/{listing_id}/submit", headers=m.merchant.headers)


def requests_of(m: Market, listing_id: str) -> list[dict[str, Any]]:
    return ok(m.client.get(f"{LISTINGS}/{listing_id}/consents", headers=m.merchant.headers))


def status(m: Market, listing_id: str) -> str:
    return ok(m.client.get(f"{LISTINGS}/{listing_id}", headers=m.merchant.headers))["status"]


def test_public_data_without_its_authorization_is_refused(market: Market,
                                                          authority: Member) -> None:
    body = public_data(market.merchant, authority)
    del body["source"]["authorization"]
    listing_id = create(market, **body)

    refused = problem(submit(market, listing_id), 422, "authorization_required")

    assert "source.authorization" in refused["errors"]
    assert status(market, listing_id) == "draft"
    assert requests_of(market, listing_id) == []  # nobody asked about a refused product
    # A null authorization is no authorization either.
    body["source"]["authorization"] = None
    problem(submit(market, create(market, **body)), 422, "authorization_required")


@pytest.mark.parametrize("shares", ["none", "another_party", "another_role"])
def test_public_data_without_the_authoritys_revenue_share_is_refused(
        market: Market, authority: Member, shares: str) -> None:
    body = public_data(market.merchant, authority)
    if shares == "none":
        body["revenue_shares"] = []
    elif shares == "another_party":
        body["revenue_shares"][0]["party_id"] = make_member(
            Role.BUYER, kind=PartyKind.PUBLIC_AGENCY).id
    else:
        body["revenue_shares"][0]["role"] = "holder"
    listing_id = create(market, **body)

    refused = problem(submit(market, listing_id), 422, "public_authority_share_required")

    assert authority.id in refused["detail"]
    assert "revenue_shares" in refused["errors"]
    assert status(market, listing_id) == "draft"


def test_an_authority_that_is_not_a_public_agency_is_refused(market: Market) -> None:
    enterprise = make_member(Role.MERCHANT)
    listing_id = create(market, **public_data(market.merchant, enterprise))

    refused = problem(submit(market, listing_id), 422, "authority_not_public_agency")

    assert "source.authorization.authority_id" in refused["errors"]


def test_an_expired_authorization_is_refused(market: Market, authority: Member) -> None:
    listing_id = create(market, **public_data(market.merchant, authority, valid_days=-1))

    problem(submit(market, listing_id), 422, "authorization_expired")


def test_an_unknown_authority_is_refused_when_the_listing_is_created(
        market: Market, authority: Member) -> None:
    body = listing_body(market.merchant, **public_data(market.merchant, authority))
    body["source"]["authorization"]["authority_id"] = "7a1c9f04-6a0e-4c1b-9d2e-5f3b8a6c2d10"

    answer = market.client.post(LISTINGS, json=body, headers=market.merchant.headers)

    problem(answer, 422, "unknown_party")


def test_the_authority_is_asked_to_consent_and_the_listing_passes_once_it_does(
        market: Market, authority: Member) -> None:
    listing_id = create(market, **public_data(market.merchant, authority))
    stored = ok(market.client.get(f"{LISTINGS}/{listing_id}", headers=market.merchant.headers))
    assert stored["source"]["authorization"]["authority_id"] == authority.id
    assert stored["source"]["authorization"]["document_ref"] == "SH-PD-2025-03"

    pending = problem(submit(market, listing_id), 409, "consent_pending")

    assert {(c["party_id"], c["role"]) for c in pending["consents"]} == {
        (authority.id, "authority"), (authority.id, "payee")}
    asked = ok(market.client.get(f"{API}/consents", headers=authority.headers))
    [as_authority] = [c for c in asked if c["role"] == "authority"]
    assert as_authority["terms"]["authorization"]["document_ref"] == "SH-PD-2025-03"
    for request in asked:
        ok(market.client.post(f"{API}/consents/{request['id']}/decide",
                              json={"decision": "accept", "note": "Authorized"},
                              headers=authority.headers))
    submitted = ok(submit(market, listing_id))
    # Without a binding guide price, public data waits for an operator's review.
    assert submitted["status"] == "pending_review"


def test_an_authorization_that_expires_during_review_stops_the_approval(
        market: Market, authority: Member) -> None:
    listing_id = create(market, **public_data(market.merchant, authority, valid_days=2))
    problem(submit(market, listing_id), 409, "consent_pending")
    for request in ok(market.client.get(f"{API}/consents", headers=authority.headers)):
        ok(market.client.post(f"{API}/consents/{request['id']}/decide",
                              json={"decision": "accept"}, headers=authority.headers))
    assert ok(submit(market, listing_id))["status"] == "pending_review"

    clock.advance(timedelta(days=3))
    refused = market.client.post(f"{LISTINGS}/{listing_id}/review",
                                 json={"decision": "approve", "reason": "Looks fine"},
                                 headers=market.operator.headers)

    problem(refused, 422, "authorization_expired")
    assert status(market, listing_id) == "pending_review"


def test_changing_the_authorization_asks_the_authority_again(market: Market,
                                                             authority: Member) -> None:
    body = public_data(market.merchant, authority)
    listing_id = create(market, **body)
    problem(submit(market, listing_id), 409, "consent_pending")

    body["source"]["authorization"]["document_ref"] = "SH-PD-2025-03 (amended)"
    ok(market.client.patch(f"{LISTINGS}/{listing_id}", json={"source": body["source"]},
                           headers=market.merchant.headers))

    assert {c["status"] for c in requests_of(market, listing_id)} == {"superseded"}
    again = problem(submit(market, listing_id), 409, "consent_pending")
    assert len(again["consents"]) == 2
