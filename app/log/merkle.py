"""The evidence log's Merkle tree: RFC 9162 §2.1 hashing, proofs and appends, over stored hashes.

Hashing is RFC 9162 §2.1.1 (the same tree as RFC 6962): a leaf hashes as SHA-256(0x00 ‖ leaf), an
interior node as SHA-256(0x01 ‖ left ‖ right), the empty tree as SHA-256 of nothing, and a tree of
n > 1 leaves splits at k, the largest power of two smaller than n.

Nothing here reads leaves. The tree is kept as the hashes of its *complete subtrees*: `Node(level,
index)` is the subtree of 2**level leaves starting at leaf index * 2**level, and its hash never
changes once the subtree is full. Every other hash the RFC needs, the root of a tree of any size
included, is the fold of at most log2(n) such hashes (`subtree_nodes`). So:

- `inclusion_proof` and `consistency_proof` follow the RFC's recursive PATH (§2.1.3.1) and
  SUBPROOF (§2.1.4.1) over index ranges, then fetch every hash they need in one
  `HashReader.read_hashes` call: O(log n) stored hashes, never the leaves;
- `RightEdge` is the tree's frontier (one complete subtree per set bit of its size, at most 64
  hashes): enough for the root, and for `append`, which returns every subtree a batch of leaves
  completes. A sealer reads the edge (O(log n) hashes), appends its batch, stores what `append`
  returned and signs the new root;
- `verify_inclusion` (§2.1.3.2) and `verify_consistency` (§2.1.4.2) are the RFC's algorithms
  step by step: they need no store and no database.

Storage (the next step) — recommended: C2SP tlog-tiles, see `app.log.tiles`. A tile row holds 256
consecutive hashes of one tree level that is a multiple of 8 (levels 0, 8, 16, ...); the nodes in
between are recomputed from at most 128 hashes of one tile when read. Against one row per node
(about 2n rows):
- space: 32 bytes per leaf plus 1/255 for the levels above, about 320 MB at 10 million leaves in
  some 39,000 rows of 8 KiB, against 20 million rows of ~80 bytes plus their primary-key index
  (about 2 GB);
- a proof reads a few tiles per tile level (three tile levels up to 16.7 million leaves, four up
  to 4 billion), instead of ~2·log2(n) ≈ 48 index probes at 10 million;
- the sealer writes one row per tile level it touches per batch (appending to the partial tile),
  instead of two rows per leaf;
- tiles are the format that Go's checksum database, Sigstore and the witness network serve
  (`/tile/<L>/<N>`), so the log can later publish them for tools that are not ours.
The price: partial tiles grow in place, so the table is not insert-only; a trigger keeps it
append-only in substance (new bytes must extend the old ones, full tiles never change).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()  # MTH({}) = HASH() (§2.1.1)


def leaf_hash(leaf: bytes) -> bytes:
    """MTH({d}) = HASH(0x00 ‖ d), the hash of one leaf (RFC 9162 §2.1.1)."""
    return hashlib.sha256(b"\x00" + leaf).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """HASH(0x01 ‖ left ‖ right), an interior node (RFC 9162 §2.1.1)."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def split_point(n: int) -> int:
    """k, the largest power of two smaller than n (n > 1): the left subtree's size (§2.1.1)."""
    return 1 << ((n - 1).bit_length() - 1)


@dataclass(frozen=True, order=True)
class Node:
    """The complete subtree of 2**level leaves that starts at leaf index * 2**level."""

    level: int
    index: int


def subtree_nodes(start: int, end: int) -> list[Node]:
    """The largest complete subtrees that cover leaves [start, end), left to right.

    For the ranges the RFC's recursion visits (a complete subtree, or a right part that ends at
    the tree's size and starts at a multiple of its largest power of two) they come largest
    first, so folding their hashes from the right gives MTH(D[start:end]).
    """
    nodes: list[Node] = []
    while start < end:
        level = (end - start).bit_length() - 1
        if start:
            level = min(level, (start & -start).bit_length() - 1)  # the alignment of start
        nodes.append(Node(level, start >> level))
        start += 1 << level
    return nodes


def fold(hashes: Sequence[bytes]) -> bytes:
    """The hash of a tree made of consecutive complete subtrees, largest first."""
    root = hashes[-1]
    for left in reversed(hashes[:-1]):
        root = node_hash(left, root)
    return root


class HashReader(Protocol):
    """Where the tree's complete-subtree hashes are stored."""

    def read_hashes(self, nodes: Sequence[Node]) -> Sequence[bytes]:
        """The hashes of these complete subtrees, in order; LookupError if one is not stored."""
        ...


class MemoryHashStore:
    """Complete-subtree hashes in a dict; counts the hashes read."""

    def __init__(self) -> None:
        self.hashes: dict[Node, bytes] = {}
        self.reads = 0

    def write(self, nodes: Iterable[tuple[Node, bytes]]) -> None:
        self.hashes.update(nodes)

    def read_hashes(self, nodes: Sequence[Node]) -> list[bytes]:
        self.reads += len(nodes)
        return [self.hashes[node] for node in nodes]


@dataclass(frozen=True)
class RightEdge:
    """The complete subtrees a tree of `size` leaves is made of, largest first, and their hashes.

    One per set bit of the size: what the root is folded from, and what an append extends.
    """

    size: int = 0
    hashes: tuple[bytes, ...] = ()

    def __post_init__(self) -> None:
        if self.size < 0 or len(self.hashes) != self.size.bit_count():
            raise ValueError(f"a tree of {self.size} leaves has {self.size.bit_count()} "
                             f"complete subtrees on its edge, not {len(self.hashes)}")

    @classmethod
    def read(cls, reader: HashReader, size: int) -> RightEdge:
        """The edge of the stored tree's first `size` leaves (at most 64 hashes read)."""
        return cls(size, tuple(reader.read_hashes(subtree_nodes(0, size))))

    def root(self) -> bytes:
        """MTH(D[size]) (§2.1.1)."""
        return fold(self.hashes) if self.hashes else EMPTY_ROOT

    def append(self, leaf_hashes: Iterable[bytes]) -> tuple[RightEdge, list[tuple[Node, bytes]]]:
        """Append leaves (by their hashes): the new edge, and every subtree they complete."""
        stack = list(zip(subtree_nodes(0, self.size), self.hashes, strict=True))
        created = list(_grow(stack, self.size, leaf_hashes))
        size = sum(1 << node.level for node, _ in stack)
        return RightEdge(size, tuple(value for _, value in stack)), created


def _grow(stack: list[tuple[Node, bytes]], size: int,
          leaf_hashes: Iterable[bytes]) -> Iterator[tuple[Node, bytes]]:
    """Push leaves onto the edge, merging equal subtrees; yield each node as it is completed."""
    for value in leaf_hashes:
        node = Node(0, size)
        yield node, value
        while stack and stack[-1][0].level == node.level:
            _, left = stack.pop()
            node, value = Node(node.level + 1, node.index >> 1), node_hash(left, value)
            yield node, value
        stack.append((node, value))
        size += 1


def complete_root(hashes: Sequence[bytes]) -> bytes:
    """The root of a complete subtree from the 2**k hashes of one of its levels, left to
    right: pairs hashed level by level (what a tile's nodes are recomputed with)."""
    level = list(hashes)
    if not level or len(level) & (len(level) - 1):
        raise ValueError(f"{len(level)} hashes are not a complete subtree's level")
    sha256 = hashlib.sha256  # node_hash, inlined: this loop makes most of a proof's hashes
    while len(level) > 1:
        level = [sha256(b"\x01" + level[i] + level[i + 1]).digest()
                 for i in range(0, len(level), 2)]
    return level[0]


def root_of(leaf_hashes: Iterable[bytes]) -> bytes:
    """MTH of the leaves with these hashes, in one pass and O(log n) memory (§2.1.1)."""
    stack: list[tuple[Node, bytes]] = []
    for _ in _grow(stack, 0, leaf_hashes):
        pass
    return fold([value for _, value in stack]) if stack else EMPTY_ROOT


def tree_root(reader: HashReader, size: int) -> bytes:
    """The root of the stored tree's first `size` leaves, from at most 64 stored hashes."""
    return RightEdge.read(reader, size).root()


Range = tuple[int, int]


def _path(m: int, start: int, end: int) -> list[Range]:
    """PATH(m, D[start:end]) of §2.1.3.1, as the leaf ranges whose MTHs make it."""
    n = end - start
    if n == 1:
        return []
    k = split_point(n)
    if m < k:
        return [*_path(m, start, start + k), (start + k, end)]
    return [*_path(m - k, start + k, end), (start, start + k)]


def _subproof(m: int, start: int, end: int, b: bool) -> list[Range]:
    """SUBPROOF(m, D[start:end], b) of §2.1.4.1, as the leaf ranges whose MTHs make it."""
    n = end - start
    if m == n:
        return [] if b else [(start, end)]
    k = split_point(n)
    if m <= k:
        return [*_subproof(m, start, start + k, b), (start + k, end)]
    return [*_subproof(m - k, start + k, end, False), (start, start + k)]


def _range_hashes(reader: HashReader, ranges: list[Range]) -> list[bytes]:
    """MTH(D[start:end]) of each range, from one read of the stored subtrees they are made of."""
    nodes = [subtree_nodes(start, end) for start, end in ranges]
    stored = iter(reader.read_hashes([node for parts in nodes for node in parts]))
    return [fold([next(stored) for _ in parts]) for parts in nodes]


def inclusion_proof(reader: HashReader, index: int, size: int) -> list[bytes]:
    """The audit path of leaf `index` in the tree of `size` leaves (§2.1.3.1)."""
    if not 0 <= index < size:
        raise ValueError(f"leaf {index} is not in a tree of {size} leaves")
    return _range_hashes(reader, _path(index, 0, size))


def consistency_proof(reader: HashReader, first: int, second: int) -> list[bytes]:
    """PROOF(first, D[second]) (§2.1.4.1); empty when first is 0 or equals second."""
    if not 0 <= first <= second:
        raise ValueError(f"no consistency proof from size {first} to size {second}")
    if first in (0, second):  # outside the RFC's 0 < m < n: nothing to prove
        return []
    return _range_hashes(reader, _subproof(first, 0, second, True))


def verify_inclusion(leaf_hash: bytes, index: int, size: int, path: Sequence[bytes],
                     root: bytes) -> bool:
    """Whether `path` proves leaf `index` of the tree of `size` leaves with this root.

    RFC 9162 §2.1.3.2, step by step (the numbers are the RFC's).
    """
    # 1. leaf_index must be smaller than tree_size.
    if not 0 <= index < size:
        return False
    # 2.-3.
    fn, sn = index, size - 1
    r = leaf_hash
    # 4.
    for p in path:
        # a.
        if sn == 0:
            return False
        # b.
        if fn & 1 or fn == sn:
            r = node_hash(p, r)  # i.
            if not fn & 1:  # ii.
                while not (fn & 1 or fn == 0):
                    fn, sn = fn >> 1, sn >> 1
        else:
            r = node_hash(r, p)
        # c.
        fn, sn = fn >> 1, sn >> 1
    # 5.
    return sn == 0 and r == root


def verify_consistency(first: int, second: int, first_hash: bytes, second_hash: bytes,
                       path: Sequence[bytes]) -> bool:
    """Whether `path` proves the tree (second, second_hash) extends (first, first_hash).

    RFC 9162 §2.1.4.2 step by step for 0 < first < second. Outside it, as common practice has
    it: a tree is consistent with itself and with the empty tree, by an empty proof.
    """
    if not 0 <= first <= second:
        return False
    if first == 0:
        return not path and first_hash == EMPTY_ROOT
    if first == second:
        return not path and first_hash == second_hash
    # 1.
    if not path:
        return False
    consistency_path = list(path)
    # 2. first is an exact power of 2.
    if first & (first - 1) == 0:
        consistency_path.insert(0, first_hash)
    # 3.
    fn, sn = first - 1, second - 1
    # 4.
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    # 5.
    fr = sr = consistency_path[0]
    # 6.
    for c in consistency_path[1:]:
        # a.
        if sn == 0:
            return False
        # b.
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)  # i.
            sr = node_hash(c, sr)  # ii.
            if not fn & 1:  # iii.
                while not (fn & 1 or fn == 0):
                    fn, sn = fn >> 1, sn >> 1
        else:
            sr = node_hash(sr, c)
        # c.
        fn, sn = fn >> 1, sn >> 1
    # 7.
    return fr == first_hash and sr == second_hash and sn == 0
