"""A voucher or certificate verifies through POST /evidence/verify (no key needed), and each
tamper fails the check that guards it."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from app.log.checkpoint import Checkpoint, sign_checkpoint
from app.log.note import Signer, parse_note
from tests.log.documents import completed_order
from tests.orders.factories import listed_product
from tests.support import ok, problem

VERIFY = "/api/v1/evidence/verify"


@pytest.fixture
def voucher(market) -> dict[str, Any]:
    order = completed_order(market)
    return ok(market.client.get(f"/api/v1/orders/{order['id']}/voucher",
                                headers=market.buyer.headers))


def _checks(client, document: dict[str, Any]) -> dict[str, bool]:
    body = ok(client.post(VERIFY, json=document))
    checks = {check["name"]: check["ok"] for check in body["checks"]}
    assert body["valid"] == all(checks.values())
    return checks


def test_a_voucher_and_a_certificate_verify(market, voucher):
    listing = listed_product(market.client, market.merchant)
    certificate = ok(market.client.get(f"/api/v1/listings/{listing['id']}/certificate",
                                       headers=market.buyer.headers))
    for document in (voucher, certificate):
        assert _checks(market.client, document) == {
            "signature": True, "inclusion": True, "facts_digest": True, "consistency": True}


def test_a_changed_fact_fails_the_facts_digest(market, voucher):
    forged = copy.deepcopy(voucher)
    forged["facts"]["total_amount"] += 1
    assert _checks(market.client, forged) == {
        "signature": True, "inclusion": True, "facts_digest": False, "consistency": True}


def test_a_checkpoint_signed_by_another_key_fails_the_signature(market, voucher):
    forged = copy.deepcopy(voucher)
    checkpoint = Checkpoint.parse(parse_note(voucher["evidence"]["checkpoint"]).text)
    forged["evidence"]["checkpoint"] = sign_checkpoint(checkpoint,
                                                       Signer.generate("exchange.local/log"))
    checks = _checks(market.client, forged)
    assert checks["signature"] is False
    assert checks["inclusion"] and checks["facts_digest"]


def test_an_altered_proof_hash_fails_the_inclusion(market, voucher):
    assert voucher["evidence"]["inclusion_proof"], "the voucher's leaf has siblings"
    forged = copy.deepcopy(voucher)
    first = forged["evidence"]["inclusion_proof"][0]
    forged["evidence"]["inclusion_proof"][0] = ("0" if first[0] != "0" else "1") + first[1:]
    checks = _checks(market.client, forged)
    assert checks == {"signature": True, "inclusion": False, "facts_digest": True,
                      "consistency": True}


@pytest.mark.parametrize("mangle", [
    lambda d: d.pop("evidence"),
    lambda d: d.pop("facts"),
    lambda d: d["evidence"].update(inclusion_proof=["zz"]),
    lambda d: d["evidence"].update(tree_size=-1),
    lambda d: d["evidence"].update(checkpoint=7),
    lambda d: d.update(facts=[1, 2]),
])
def test_a_malformed_body_is_refused(market, voucher, mangle):
    mangled = copy.deepcopy(voucher)
    mangle(mangled)
    problem(market.client.post(VERIFY, json=mangled), 422)


def test_garbage_in_well_formed_fields_fails_checks_not_the_server(market, voucher):
    forged = copy.deepcopy(voucher)
    forged["evidence"].update(checkpoint="not a note", leaf="not json")
    checks = _checks(market.client, forged)
    assert not any(checks.values())
