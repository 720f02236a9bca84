"""The registration certificate (数据产品登记证书) of a listed product: its facts logged as their
own entry, sealed, and proved by the evidence log; issued again when its facts change."""

from __future__ import annotations

from datetime import timedelta

from app import clock
from app.parties.models import Role
from tests.factories import make_member
from tests.listings.factories import listing_body
from tests.log.documents import (
    assert_proves_its_facts,
    issued_entries,
    verifier,
)
from tests.orders.factories import listed_product
from tests.support import ok, problem, race


def test_a_listed_product_has_a_certificate_that_proves_its_facts(market):
    listing = listed_product(market.client, market.merchant)
    url = f"/api/v1/listings/{listing['id']}/certificate"
    stranger = make_member(Role.BUYER)
    certificate = ok(market.client.get(url, headers=stranger.headers))
    assert certificate["kind"] == "registration_certificate"
    assert certificate["certificate_no"] == f"RC-{certificate['evidence']['log_index']}"
    facts = certificate["facts"]
    assert (facts["listing_id"], facts["title"], facts["category"]) == (
        listing["id"], listing["title"], listing["category"])
    assert facts["rights"]["holder"]["id"] == listing["rights"]["holder_id"]
    assert facts["usage_scope"]["purposes"] == listing["usage_scope"]["purposes"]
    assert facts["listed_at"]
    assert_proves_its_facts(certificate, verifier(market.client))

    again = ok(market.client.get(url, headers=market.merchant.headers))
    assert again["certificate_no"] == certificate["certificate_no"]
    assert_proves_its_facts(again, verifier(market.client))
    assert issued_entries("certificate.issued") == 1


def test_a_certificate_is_issued_again_when_its_facts_change(market):
    listing = listed_product(market.client, market.merchant)
    url = f"/api/v1/listings/{listing['id']}/certificate"
    first = ok(market.client.get(url, headers=market.buyer.headers))
    reason = {"reason": "Checked"}
    ok(market.client.post(f"/api/v1/listings/{listing['id']}/suspend", json=reason,
                          headers=market.operator.headers))
    problem(market.client.get(url, headers=market.merchant.headers), 409, "invalid_transition")
    clock.advance(timedelta(minutes=1))
    ok(market.client.post(f"/api/v1/listings/{listing['id']}/relist", json=reason,
                          headers=market.operator.headers))
    second = ok(market.client.get(url, headers=market.buyer.headers))
    assert second["facts"]["listed_at"] > first["facts"]["listed_at"]
    assert second["certificate_no"] != first["certificate_no"]
    assert issued_entries("certificate.issued") == 2
    assert_proves_its_facts(second, verifier(market.client))
    # The first certificate still proves what it said then.
    assert ok(market.client.post("/api/v1/evidence/verify", json=first))["valid"] is True


def test_a_draft_has_no_certificate_and_is_not_revealed(market):
    created = ok(market.client.post("/api/v1/listings", json=listing_body(market.merchant),
                                    headers=market.merchant.headers), 201)
    url = f"/api/v1/listings/{created['id']}/certificate"
    problem(market.client.get(url, headers=market.merchant.headers), 409, "invalid_transition")
    problem(market.client.get(url, headers=make_member(Role.BUYER).headers), 404)
    assert issued_entries("certificate.issued") == 0


def test_concurrent_first_requests_issue_one_certificate(app, market):
    listing = listed_product(market.client, market.merchant)
    url = f"/api/v1/listings/{listing['id']}/certificate"
    answers = race(app, 4, lambda client, n: client.get(url, headers=market.buyer.headers))
    assert [answer.status_code for answer in answers] == [200] * 4, [a.json for a in answers]
    assert len({answer.json["certificate_no"] for answer in answers}) == 1
    assert issued_entries("certificate.issued") == 1
