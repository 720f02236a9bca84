"""The evidence log's Merkle tree (app.log.merkle) against RFC 9162 §2.1 and pymerkle: roots,
inclusion and consistency proofs for every tree size up to 64, proofs read from stored subtree
hashes equal to the RFC's recursive definitions, and appends in batches equal to one build."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pymerkle import InmemoryTree

from app.log.merkle import (
    EMPTY_ROOT,
    MemoryHashStore,
    RightEdge,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    node_hash,
    root_of,
    split_point,
    tree_root,
    verify_consistency,
    verify_inclusion,
)

SMALL = 64
LEAVES = [f"entry {i}".encode() for i in range(1 << 17)]
HASHES = [leaf_hash(leaf) for leaf in LEAVES]


def built_at_once(leaf_hashes: Sequence[bytes]) -> MemoryHashStore:
    store = MemoryHashStore()
    store.write(RightEdge().append(leaf_hashes)[1])
    return store


# Complete subtrees never change, so one store of 2**17 leaves serves every smaller tree.
STORE = built_at_once(HASHES)
ROOTS = [root_of(HASHES[:n]) for n in range(SMALL + 1)]


# RFC 9162 §2.1.1, §2.1.3.1 and §2.1.4.1 as printed, over lists of leaf hashes.
def mth(d: Sequence[bytes]) -> bytes:
    n = len(d)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return d[0]
    k = split_point(n)
    return node_hash(mth(d[:k]), mth(d[k:]))


def path(m: int, d: Sequence[bytes]) -> list[bytes]:
    n = len(d)
    if n == 1:
        return []
    k = split_point(n)
    if m < k:
        return [*path(m, d[:k]), mth(d[k:])]
    return [*path(m - k, d[k:]), mth(d[:k])]


def subproof(m: int, d: Sequence[bytes], b: bool) -> list[bytes]:
    n = len(d)
    if m == n:
        return [] if b else [mth(d)]
    k = split_point(n)
    if m <= k:
        return [*subproof(m, d[:k], b), mth(d[k:])]
    return [*subproof(m - k, d[k:], False), mth(d[:k])]


def altered(hash_: bytes) -> bytes:
    return bytes([hash_[0] ^ 1]) + hash_[1:]


def pymerkle_root(leaves: Sequence[bytes]) -> bytes:
    tree = InmemoryTree(algorithm="sha256")  # security on: the 0x00 / 0x01 prefixes
    for leaf in leaves:
        tree.append_entry(leaf)
    return tree.get_root()


def test_hashes_are_sha256_with_the_leaf_and_node_prefixes() -> None:
    assert leaf_hash(b"abc") == hashlib.sha256(b"\x00abc").digest()
    left, right = b"L" * 32, b"R" * 32
    assert node_hash(left, right) == hashlib.sha256(b"\x01" + left + right).digest()
    assert EMPTY_ROOT == hashlib.sha256(b"").digest() == RightEdge().root() == root_of([])
    assert [split_point(n) for n in range(2, 10)] == [1, 2, 2, 4, 4, 4, 4, 8]


def test_roots_of_every_size_up_to_64_equal_the_definition_and_pymerkles() -> None:
    tree = InmemoryTree(algorithm="sha256")
    for n in range(SMALL + 1):
        assert ROOTS[n] == mth(HASHES[:n]) == tree.get_root() == tree_root(STORE, n)
        if n < SMALL:
            tree.append_entry(LEAVES[n])


@settings(max_examples=20, deadline=None)
@given(st.lists(st.binary(max_size=40), min_size=65, max_size=3000))
def test_roots_of_random_larger_trees_equal_pymerkles(leaves: list[bytes]) -> None:
    assert root_of(leaf_hash(leaf) for leaf in leaves) == pymerkle_root(leaves)


def test_inclusion_proofs_of_every_leaf_of_every_size_up_to_64_verify() -> None:
    for n in range(1, SMALL + 1):
        for i in range(n):
            proof = inclusion_proof(STORE, i, n)
            assert proof == path(i, HASHES[:n])
            assert verify_inclusion(HASHES[i], i, n, proof, ROOTS[n])


def test_an_inclusion_proof_fails_when_a_hash_the_index_or_the_size_is_altered() -> None:
    for n in range(1, SMALL + 1):
        for i in range(n):
            proof = inclusion_proof(STORE, i, n)
            assert not verify_inclusion(altered(HASHES[i]), i, n, proof, ROOTS[n])
            assert not verify_inclusion(HASHES[i], i, n, proof, altered(ROOTS[n]))
            for j in range(len(proof)):
                bad = [*proof[:j], altered(proof[j]), *proof[j + 1:]]
                assert not verify_inclusion(HASHES[i], i, n, bad, ROOTS[n])
            assert not verify_inclusion(HASHES[i], i, n, [*proof, HASHES[0]], ROOTS[n])
            if proof:
                assert not verify_inclusion(HASHES[i], i, n, proof[:-1], ROOTS[n])
            for other in range(-1, n + 1):
                if other != i:
                    assert not verify_inclusion(HASHES[i], other, n, proof, ROOTS[n])
            for size in range(1, SMALL + 1):
                if size != n:
                    assert not verify_inclusion(HASHES[i], i, size, proof, ROOTS[size])


def test_consistency_proofs_between_every_two_sizes_up_to_64_verify() -> None:
    for n in range(SMALL + 1):
        for m in range(n + 1):
            proof = consistency_proof(STORE, m, n)
            assert proof == (subproof(m, HASHES[:n], True) if 0 < m < n else [])
            assert verify_consistency(m, n, ROOTS[m], ROOTS[n], proof)


def test_a_consistency_proof_fails_when_a_hash_or_a_size_is_altered() -> None:
    for n in range(2, SMALL + 1):
        for m in range(1, n):
            proof = consistency_proof(STORE, m, n)
            assert not verify_consistency(m, n, altered(ROOTS[m]), ROOTS[n], proof)
            assert not verify_consistency(m, n, ROOTS[m], altered(ROOTS[n]), proof)
            assert not verify_consistency(n, m, ROOTS[n], ROOTS[m], proof)
            for j in range(len(proof)):
                bad = [*proof[:j], altered(proof[j]), *proof[j + 1:]]
                assert not verify_consistency(m, n, ROOTS[m], ROOTS[n], bad)
            assert not verify_consistency(m, n, ROOTS[m], ROOTS[n], proof[:-1])
            assert not verify_consistency(m, n, ROOTS[m], ROOTS[n], [*proof, HASHES[0]])
            for first in range(1, n):
                if first != m:
                    assert not verify_consistency(first, n, ROOTS[first], ROOTS[n], proof)
            for second in range(m + 1, SMALL + 1):
                if second != n:
                    assert not verify_consistency(m, second, ROOTS[m], ROOTS[second], proof)


def test_a_tree_is_consistent_with_itself_and_the_empty_tree_by_an_empty_proof_only() -> None:
    assert verify_consistency(0, 5, EMPTY_ROOT, ROOTS[5], [])
    assert not verify_consistency(0, 5, ROOTS[1], ROOTS[5], [])
    assert not verify_consistency(0, 5, EMPTY_ROOT, ROOTS[5], [ROOTS[5]])
    assert verify_consistency(5, 5, ROOTS[5], ROOTS[5], [])
    assert not verify_consistency(5, 5, ROOTS[5], ROOTS[6], [])
    assert not verify_consistency(5, 5, ROOTS[5], ROOTS[5], [ROOTS[5]])


def test_proofs_outside_the_tree_are_refused() -> None:
    for index, size in [(0, 0), (5, 5), (-1, 5)]:
        with pytest.raises(ValueError):
            inclusion_proof(STORE, index, size)
    with pytest.raises(ValueError):
        consistency_proof(STORE, 6, 5)
    with pytest.raises(LookupError):
        inclusion_proof(MemoryHashStore(), 0, 2)


@pytest.mark.parametrize("n", [65, 100, 127, 128, 129, 200, 255, 256, 257])
def test_proofs_of_larger_trees_equal_the_recursive_definitions(n: int) -> None:
    for i in range(n):
        assert inclusion_proof(STORE, i, n) == path(i, HASHES[:n])
    for m in range(1, n):
        assert consistency_proof(STORE, m, n) == subproof(m, HASHES[:n], True)


@settings(max_examples=100, deadline=None)
@given(st.data())
def test_proofs_read_a_logarithmic_number_of_stored_hashes(data: st.DataObject) -> None:
    size = data.draw(st.integers(2, len(HASHES)))
    index = data.draw(st.integers(0, size - 1))
    first = data.draw(st.integers(1, size - 1))
    root = tree_root(STORE, size)

    STORE.reads = 0
    proof = inclusion_proof(STORE, index, size)
    assert STORE.reads <= 2 * size.bit_length()
    assert verify_inclusion(HASHES[index], index, size, proof, root)

    STORE.reads = 0
    proof = consistency_proof(STORE, first, size)
    assert STORE.reads <= 2 * size.bit_length()
    assert verify_consistency(first, size, tree_root(STORE, first), root, proof)


@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(0, 300), max_size=12))
def test_appends_in_batches_store_what_one_build_stores(batches: list[int]) -> None:
    store = MemoryHashStore()
    edge = RightEdge()
    for count in batches:
        assert RightEdge.read(store, edge.size) == edge
        edge, created = edge.append(HASHES[edge.size:edge.size + count])
        store.write(created)
        assert edge.root() == tree_root(store, edge.size) == root_of(HASHES[:edge.size])
    n = sum(batches)
    assert edge.size == n
    assert len(store.hashes) == 2 * n - n.bit_count()  # every complete subtree, once
    assert store.hashes == built_at_once(HASHES[:n]).hashes
    assert edge.root() == mth(HASHES[:n])


def test_a_right_edge_has_one_hash_per_set_bit_of_its_size() -> None:
    assert RightEdge.read(STORE, 13).hashes == (mth(HASHES[:8]), mth(HASHES[8:12]), HASHES[12])
    with pytest.raises(ValueError):
        RightEdge(13, (HASHES[0],))


def test_a_complete_subtree_root_from_its_hashes_is_the_tree_root_of_them():
    from app.log.merkle import complete_root, leaf_hash, root_of

    for size in (1, 2, 4, 8, 256):
        hashes = [leaf_hash(bytes([n % 256, n // 256])) for n in range(size)]
        assert complete_root(hashes) == root_of(hashes)
    for size in (0, 3, 6, 255):
        with pytest.raises(ValueError):
            complete_root([leaf_hash(b"x")] * size)
