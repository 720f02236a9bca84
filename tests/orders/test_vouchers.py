"""The transaction voucher (交易凭证) of a completed order: its facts logged once, sealed, and
proved by the evidence log."""

from __future__ import annotations

import json

from app.parties.models import PartyKind, Role
from tests.factories import make_member
from tests.log.documents import (
    assert_proves_its_facts,
    completed_order,
    issued_entries,
    verifier,
)
from tests.orders.factories import listed_product, order_body
from tests.support import ok, problem, race


def test_a_completed_order_has_a_voucher_that_proves_its_facts(market):
    agency = make_member(Role.BUYER, kind=PartyKind.PUBLIC_AGENCY)
    order = completed_order(market, beneficiaries=[agency.id])
    url = f"/api/v1/orders/{order['id']}/voucher"
    voucher = ok(market.client.get(url, headers=market.buyer.headers))
    assert voucher["kind"] == "transaction_voucher"
    assert voucher["voucher_no"] == f"TV-{voucher['evidence']['log_index']}"
    facts = voucher["facts"]
    assert facts["order_id"] == order["id"]
    assert facts["buyer"] == {"id": market.buyer.id, "name": market.buyer.party.name,
                              "credit_code": market.buyer.party.credit_code}
    assert facts["merchant"]["id"] == market.merchant.id
    assert [b["id"] for b in facts["beneficiaries"]] == [agency.id]
    assert facts["license"]["purposes"] == order["license"]["purposes"]
    assert (facts["quantity"], facts["total_amount"], facts["currency"]) == (
        order["quantity"], order["total_amount"], order["currency"])
    assert facts["paid_at"] and facts["completed_at"]
    leaf = json.loads(voucher["evidence"]["leaf"])
    assert (leaf["action"], leaf["subject_id"]) == ("voucher.issued", order["id"])
    assert_proves_its_facts(voucher, verifier(market.client))

    # Issued once: every party sees the same voucher, whatever was sealed since.
    for member in (market.merchant, agency, market.operator, market.regulator):
        again = ok(market.client.get(url, headers=member.headers))
        assert (again["voucher_no"], again["facts"]) == (voucher["voucher_no"], facts)
        assert_proves_its_facts(again, verifier(market.client))
    assert issued_entries("voucher.issued") == 1


def test_an_order_not_completed_has_no_voucher(market):
    listing = listed_product(market.client, market.merchant)
    order = ok(market.client.post("/api/v1/orders", json=order_body(listing),
                                  headers=market.buyer.headers), 201)
    problem(market.client.get(f"/api/v1/orders/{order['id']}/voucher",
                              headers=market.buyer.headers), 409, "invalid_transition")
    assert issued_entries("voucher.issued") == 0


def test_a_stranger_gets_no_voucher(market):
    order = completed_order(market)
    stranger = make_member(Role.BUYER)
    problem(market.client.get(f"/api/v1/orders/{order['id']}/voucher",
                              headers=stranger.headers), 404)
    assert market.client.get(f"/api/v1/orders/{order['id']}/voucher").status_code == 401
    assert issued_entries("voucher.issued") == 0


def test_concurrent_first_requests_issue_one_voucher(app, market):
    order = completed_order(market)
    url = f"/api/v1/orders/{order['id']}/voucher"
    answers = race(app, 4, lambda client, n: client.get(url, headers=market.buyer.headers))
    assert [answer.status_code for answer in answers] == [200] * 4, [a.json for a in answers]
    assert len({answer.json["voucher_no"] for answer in answers}) == 1
    assert issued_entries("voucher.issued") == 1
