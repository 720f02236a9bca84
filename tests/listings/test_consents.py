"""Consents (三权确认) through the HTTP API: every party a listing names agrees before it passes."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from app.parties.models import Role
from tests.factories import Member, make_member
from tests.listings.factories import listing_body
from tests.orders.factories import Market
from tests.support import ok, problem, race

API = "/api/v1"
LISTINGS = f"{API}/listings"


class Named:
    """A merchant's listing naming a holder, a processor and a collector (a payee)."""

    def __init__(self, market: Market) -> None:
        self.m = market
        self.holder = make_member(Role.MERCHANT)
        self.processor = make_member(Role.BUYER)
        self.collector = make_member(Role.BROKER)

    def body(self, **overrides: Any) -> dict[str, Any]:
        merchant = self.m.merchant
        return listing_body(merchant, **{
            "rights": {"holder_id": self.holder.id, "processor_ids": [self.processor.id],
                       "operator_id": merchant.id},
            "revenue_shares": [
                {"party_id": self.collector.id, "role": "collector", "basis": "contribution",
                 "weight": 40},
                {"party_id": merchant.id, "role": "processor", "basis": "contribution",
                 "weight": 60}],
            **overrides})

    def create(self, **overrides: Any) -> str:
        return ok(self.m.client.post(LISTINGS, json=self.body(**overrides),
                                     headers=self.m.merchant.headers), 201)["id"]

    def submit(self, listing_id: str) -> Any:
        return self.m.client.post(f"{LISTINGS}/{listing_id}/submit",
                                  headers=self.m.merchant.headers)

    def asked(self, member: Member, **query: str) -> list[dict[str, Any]]:
        return ok(self.m.client.get(f"{API}/consents", query_string=query,
                                    headers=member.headers))

    def decide(self, member: Member, consent_id: str, decision: str,
               note: str | None = None) -> Any:
        return self.m.client.post(f"{API}/consents/{consent_id}/decide",
                                  json={"decision": decision, "note": note},
                                  headers=member.headers)

    def consent_of(self, member: Member, listing_id: str) -> dict[str, Any]:
        [consent] = [c for c in self.asked(member, status="pending")
                     if c["listing_id"] == listing_id]
        return consent

    def accept(self, member: Member, listing_id: str) -> dict[str, Any]:
        return ok(self.decide(member, self.consent_of(member, listing_id)["id"], "accept"))

    def of_listing(self, listing_id: str, **query: str) -> list[dict[str, Any]]:
        return ok(self.m.client.get(f"{LISTINGS}/{listing_id}/consents", query_string=query,
                                    headers=self.m.merchant.headers))

    def status(self, listing_id: str) -> str:
        return ok(self.m.client.get(f"{LISTINGS}/{listing_id}",
                                    headers=self.m.merchant.headers))["status"]

    def trace(self, listing_id: str) -> list[dict[str, Any]]:
        return ok(self.m.client.get(f"{LISTINGS}/{listing_id}/trace",
                                    headers=self.m.operator.headers))


@pytest.fixture
def named(market: Market) -> Named:
    return Named(market)


def test_a_listing_stays_a_draft_until_every_party_it_names_accepts(named: Named) -> None:
    listing_id = named.create()

    first = problem(named.submit(listing_id), 409, "consent_pending")
    asked = {(c["party_id"], c["role"]) for c in first["consents"]}
    assert asked == {(named.holder.id, "holder"), (named.processor.id, "processor"),
                     (named.collector.id, "payee")}
    assert named.status(listing_id) == "draft"
    # What each party is asked about, as the listing names it.
    [holder_request] = named.asked(named.holder)
    assert (holder_request["listing_id"], holder_request["role"], holder_request["status"]) \
        == (listing_id, "holder", "pending")
    assert holder_request["merchant_id"] == named.m.merchant.id
    assert holder_request["terms"]["rights"]["holder_id"] == named.holder.id
    [payee_request] = named.asked(named.collector)
    assert payee_request["terms"]["revenue_shares"] == [
        {"party_id": named.collector.id, "role": "collector", "basis": "contribution",
         "weight": 40, "invested_amount": 0}]
    # Submitting again asks nobody twice.
    problem(named.submit(listing_id), 409, "consent_pending")
    assert len(named.of_listing(listing_id)) == 3

    named.accept(named.holder, listing_id)
    named.accept(named.processor, listing_id)
    waiting = problem(named.submit(listing_id), 409, "consent_pending")
    assert [(c["party_id"], c["role"]) for c in waiting["consents"]] == [
        (named.collector.id, "payee")]
    assert named.collector.id in waiting["detail"]
    assert named.status(listing_id) == "draft"

    named.accept(named.collector, listing_id)
    submitted = ok(named.submit(listing_id))
    assert submitted["status"] in {"pending_review", "listed"}
    assert {c["status"] for c in named.of_listing(listing_id)} == {"accepted"}
    # The requests and decisions are in the product's trace, each by whom it was made.
    trace = [(entry["action"], entry["actor_id"]) for entry in named.trace(listing_id)]
    requested = [actor for action, actor in trace if action == "consent.requested"]
    accepted = {actor for action, actor in trace if action == "consent.accepted"}
    assert requested == [named.m.merchant.id] * 3
    assert accepted == {named.holder.id, named.processor.id, named.collector.id}
    actions = [action for action, _ in trace]
    assert actions.index("consent.requested") < actions.index("consent.accepted") \
        < actions.index("listing.submitted")


def test_editing_the_rights_or_shares_asks_every_party_again(named: Named) -> None:
    listing_id = named.create()
    problem(named.submit(listing_id), 409, "consent_pending")
    old_holder_request = named.consent_of(named.holder, listing_id)
    for member in (named.holder, named.processor, named.collector):
        named.accept(member, listing_id)

    # A change elsewhere leaves the consents standing...
    ok(named.m.client.patch(f"{LISTINGS}/{listing_id}", json={"title": "Renamed flows"},
                            headers=named.m.merchant.headers))
    assert {c["status"] for c in named.of_listing(listing_id)} == {"accepted"}
    # ...a change of the shares supersedes every one of them.
    shares = named.body()["revenue_shares"]
    shares[0]["weight"] = 10
    ok(named.m.client.patch(f"{LISTINGS}/{listing_id}", json={"revenue_shares": shares},
                            headers=named.m.merchant.headers))
    assert {c["status"] for c in named.of_listing(listing_id)} == {"superseded"}
    problem(named.decide(named.holder, old_holder_request["id"], "decline"), 409,
            "invalid_transition")

    again = problem(named.submit(listing_id), 409, "consent_pending")
    assert len(again["consents"]) == 3
    assert named.consent_of(named.collector, listing_id)["terms"]["revenue_shares"][0][
        "weight"] == 10
    assert len(named.of_listing(listing_id, status="superseded")) == 3
    for member in (named.holder, named.processor, named.collector):
        named.accept(member, listing_id)
    assert ok(named.submit(listing_id))["status"] in {"pending_review", "listed"}
    assert [entry["action"] for entry in named.trace(listing_id)].count(
        "consent.superseded") == 3


def test_editing_the_rights_supersedes_a_request_still_pending(named: Named) -> None:
    listing_id = named.create()
    problem(named.submit(listing_id), 409, "consent_pending")
    merchant = named.m.merchant
    ok(named.m.client.patch(f"{LISTINGS}/{listing_id}", json={"rights": {
        "holder_id": merchant.id, "processor_ids": [named.processor.id],
        "operator_id": merchant.id}}, headers=merchant.headers))

    assert named.asked(named.holder, status="pending") == []
    again = problem(named.submit(listing_id), 409, "consent_pending")
    # The merchant now holds the data itself: the former holder is not asked again.
    assert {c["party_id"] for c in again["consents"]} == {named.processor.id,
                                                          named.collector.id}


def test_a_decline_blocks_the_listing_with_the_partys_reason(named: Named) -> None:
    listing_id = named.create()
    problem(named.submit(listing_id), 409, "consent_pending")
    request = named.consent_of(named.processor, listing_id)

    declined = ok(named.decide(named.processor, request["id"], "decline",
                               "未授权加工 We never agreed to process this data."))
    assert (declined["status"], declined["note"]) == (
        "declined", "未授权加工 We never agreed to process this data.")
    assert declined["decided_at"] is not None
    refused = problem(named.submit(listing_id), 422, "consent_declined")
    assert "We never agreed to process this data." in refused["detail"]
    assert [c["party_id"] for c in refused["consents"]] == [named.processor.id]
    assert named.status(listing_id) == "draft"
    # Deciding twice is refused, either way.
    for decision in ("accept", "decline"):
        problem(named.decide(named.processor, request["id"], decision), 409,
                "invalid_transition")
    assert "consent.declined" in [e["action"] for e in named.trace(listing_id)]


def test_only_the_party_asked_may_decide(named: Named) -> None:
    listing_id = named.create()
    problem(named.submit(listing_id), 409, "consent_pending")
    request = named.consent_of(named.holder, listing_id)
    m = named.m

    for someone in (m.merchant, m.operator, m.regulator, named.processor, m.buyer):
        problem(named.decide(someone, request["id"], "accept"), 404, "consent_not_found")
        assert request["id"] not in {c["id"] for c in named.asked(someone)}
    assert named.consent_of(named.holder, listing_id)["status"] == "pending"
    problem(m.client.post(f"{API}/consents/{request['id']}/decide",
                          json={"decision": "accept"}), 401)
    problem(named.decide(named.holder, request["id"], "maybe"), 422)
    # The listing's requests are its merchant's and the overseers' to read.
    for someone in (named.holder, m.buyer):
        problem(m.client.get(f"{LISTINGS}/{listing_id}/consents", headers=someone.headers),
                404)
    assert len(ok(m.client.get(f"{LISTINGS}/{listing_id}/consents",
                               headers=m.regulator.headers))) == 3


def test_a_listing_naming_only_its_merchant_asks_nobody(market: Market) -> None:
    created = ok(market.client.post(LISTINGS, json=listing_body(market.merchant),
                                    headers=market.merchant.headers), 201)
    submitted = ok(market.client.post(f"{LISTINGS}/{created['id']}/submit",
                                      headers=market.merchant.headers))
    assert submitted["status"] in {"pending_review", "listed"}
    assert ok(market.client.get(f"{LISTINGS}/{created['id']}/consents",
                                headers=market.merchant.headers)) == []


def test_consents_asked_of_me_filter_by_status(named: Named) -> None:
    first, second = named.create(), named.create(title="Second product")
    for listing_id in (first, second):
        problem(named.submit(listing_id), 409, "consent_pending")
    named.accept(named.holder, first)

    assert [c["listing_id"] for c in named.asked(named.holder, status="pending")] == [second]
    assert [c["listing_id"] for c in named.asked(named.holder, status="accepted")] == [first]
    assert len(named.asked(named.holder)) == 2
    problem(named.m.client.get(f"{API}/consents", query_string={"status": "maybe"},
                               headers=named.holder.headers), 422)


def test_concurrent_submissions_ask_each_party_once(app: Flask, named: Named) -> None:
    listing_id = named.create()
    merchant = named.m.merchant

    def submit(client: FlaskClient, _: int) -> Any:
        return client.post(f"{LISTINGS}/{listing_id}/submit", headers=merchant.headers)

    answers = race(app, 4, submit)

    assert [answer.status_code for answer in answers] == [409] * 4
    assert len(named.of_listing(listing_id)) == 3
