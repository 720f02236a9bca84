"""The evidence log over HTTP: the signed checkpoint, the key, entries, and proofs that verify
with RFC 9162's verifiers against a checkpoint the log's published key signed."""

from __future__ import annotations

import json

import pytest
from flask.testing import FlaskClient

from app import audit
from app.db import unit_of_work
from app.log.checkpoint import open_checkpoint
from app.log.merkle import leaf_hash, verify_consistency, verify_inclusion
from app.log.note import Verifier
from app.parties.models import Role
from tests.factories import make_member
from tests.support import ok, problem, seal_log

LOG = "/api/v1/log"


def _write(count: int) -> None:
    with unit_of_work() as session:
        for n in range(count):
            audit.record(session, actor_id=None, action="test.written", subject=f"s-{n}",
                         subject_type="test", details={"n": n})


def _verifier(client: FlaskClient) -> Verifier:
    return Verifier.from_vkey(ok(client.get(f"{LOG}/public-key"))["vkey"])


@pytest.fixture
def sealed_twice(app) -> list[int]:
    """Two signed tree sizes."""
    sizes = []
    for count in (13, 30):
        _write(count)
        sizes.append(seal_log().tree_size)
    return sizes


def test_the_public_key_is_a_signed_note_verifier_key(client):
    body = ok(client.get(f"{LOG}/public-key"))
    verifier = Verifier.from_vkey(body["vkey"])
    assert body == {"vkey": verifier.vkey, "key_name": verifier.name,
                    "key_id": f"{verifier.key_id:08x}", "algorithm": "ed25519"}
    assert body["key_name"] == "exchange.local/log"


def test_the_checkpoint_is_a_signed_note_or_json(client, sealed_twice):
    text = client.get(f"{LOG}/checkpoint")
    assert text.status_code == 200 and text.mimetype == "text/plain"
    checkpoint = open_checkpoint(text.get_data(as_text=True), _verifier(client))
    assert (checkpoint.origin, checkpoint.tree_size) == ("exchange.local/log", sealed_twice[-1])

    body = ok(client.get(f"{LOG}/checkpoint", headers={"Accept": "application/json"}))
    assert body["signed_note"] == text.get_data(as_text=True)
    assert (body["origin"], body["tree_size"], body["root_hash"]) == (
        "exchange.local/log", checkpoint.tree_size, checkpoint.root_hash.hex())
    assert body["timestamp"].endswith("+00:00")


def test_there_is_no_checkpoint_before_the_first_batch(client):
    problem(client.get(f"{LOG}/checkpoint"), 404, "checkpoint_not_found")


def test_an_entry_is_its_canonical_json_leaf_for_operators_and_regulators(client, sealed_twice):
    for role in (Role.OPERATOR, Role.REGULATOR):
        member = make_member(role)
        body = ok(client.get(f"{LOG}/entries/3", headers=member.headers))
        assert body["index"] == 3
        leaf = json.loads(body["leaf"])
        assert json.dumps(leaf, sort_keys=True, separators=(",", ":"),
                          ensure_ascii=False) == body["leaf"]
        assert leaf["action"] == "test.written"
        assert leaf["payload_digest"] == audit.digest({"n": 3})
        assert body["leaf_hash"] == leaf_hash(body["leaf"].encode()).hex()
    buyer = make_member(Role.BUYER)
    problem(client.get(f"{LOG}/entries/3", headers=buyer.headers), 403, "forbidden")
    problem(client.get(f"{LOG}/entries/3"), 401, "unauthorized")


def test_an_entry_not_yet_sealed_is_not_found(client, sealed_twice):
    operator = make_member(Role.OPERATOR)
    seal_log()  # the operator's registration
    size = ok(client.get(f"{LOG}/checkpoint", headers={"Accept": "application/json"}))
    problem(client.get(f"{LOG}/entries/{size['tree_size']}", headers=operator.headers), 404,
            "log_entry_not_found")


def test_inclusion_proofs_verify_against_the_signed_checkpoint(client, sealed_twice):
    verifier = _verifier(client)
    operator = make_member(Role.OPERATOR)
    latest = open_checkpoint(client.get(f"{LOG}/checkpoint").get_data(as_text=True), verifier)
    for index in range(latest.tree_size):
        proof = ok(client.get(f"{LOG}/proof/inclusion",
                              query_string={"index": index, "tree_size": latest.tree_size}))
        entry = ok(client.get(f"{LOG}/entries/{index}", headers=operator.headers))
        assert proof["leaf_hash"] == entry["leaf_hash"]
        assert (proof["index"], proof["tree_size"]) == (index, latest.tree_size)
        assert verify_inclusion(bytes.fromhex(proof["leaf_hash"]), index, latest.tree_size,
                                [bytes.fromhex(h) for h in proof["hashes"]], latest.root_hash)
    # Against the earlier signed size too.
    proof = ok(client.get(f"{LOG}/proof/inclusion",
                          query_string={"index": 5, "tree_size": sealed_twice[0]}))
    assert len(proof["hashes"]) == 4


def test_consistency_proofs_join_the_signed_checkpoints(client, sealed_twice):
    first, second = sealed_twice
    body = ok(client.get(f"{LOG}/checkpoint", headers={"Accept": "application/json"}))
    with unit_of_work() as session:
        from app.log.models import LogCheckpoint

        roots = {size: session.get(LogCheckpoint, size).root_hash for size in sealed_twice}
    proof = ok(client.get(f"{LOG}/proof/consistency",
                          query_string={"first": first, "second": second}))
    assert (proof["first"], proof["second"]) == (first, second)
    assert verify_consistency(first, second, roots[first], roots[second],
                              [bytes.fromhex(h) for h in proof["hashes"]])
    assert roots[second].hex() == body["root_hash"]


@pytest.mark.parametrize("query", [{"index": 2, "tree_size": 20}, {"index": 13, "tree_size": 13}])
def test_a_proof_is_served_only_for_a_signed_tree_size(client, sealed_twice, query):
    response = client.get(f"{LOG}/proof/inclusion", query_string=query)
    problem(response, 404)


def test_a_consistency_proof_needs_two_signed_sizes_in_order(client, sealed_twice):
    first, second = sealed_twice
    problem(client.get(f"{LOG}/proof/consistency", query_string={"first": 5, "second": second}),
            404, "checkpoint_not_found")
    problem(client.get(f"{LOG}/proof/consistency",
                       query_string={"first": second, "second": first}), 422)


@pytest.mark.parametrize("query", ["index=x&tree_size=1", "index=-1&tree_size=1", "index=0",
                                   "index=0&tree_size=0"])
def test_malformed_proof_queries_are_422(client, query):
    problem(client.get(f"{LOG}/proof/inclusion?{query}"), 422)
