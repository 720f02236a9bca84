"""C2SP tlog-tiles: the tree's complete-subtree hashes (`app.log.merkle`) stored 256 to a tile.

The tile at tile level L and index N holds the hashes of nodes (8L, 256N), (8L, 256N + 1), ... up
to 256 of them: tlog-tiles' "MTH(D[(n·256 + i)·256**l : (n·256 + i + 1)·256**l])". The rightmost
tile of each level is partial and only ever grows. Nodes between tile levels are not stored: node
(h, i) with 8L ≤ h < 8L + 8 is the MTH of 2**(h - 8L) consecutive hashes in one tile of level L,
recomputed when read (at most 255 hashings).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from app.log.merkle import HASH_SIZE, Node, complete_root

TILE_HEIGHT = 8
TILE_WIDTH = 1 << TILE_HEIGHT


@dataclass(frozen=True, order=True)
class Tile:
    """Tile `index` of tile level `level` (tree level 8 · level)."""

    level: int
    index: int


def locate(node: Node) -> tuple[Tile, int, int]:
    """Where a node's hash comes from: (tile, first hash in it, how many hashes to fold)."""
    level = node.level // TILE_HEIGHT
    count = 1 << (node.level - level * TILE_HEIGHT)
    first = node.index * count
    return Tile(level, first // TILE_WIDTH), first % TILE_WIDTH, count


class TileReader(Protocol):
    """Where tiles are stored."""

    def read_tiles(self, tiles: Sequence[Tile]) -> Mapping[Tile, bytes]:
        """The stored bytes of these tiles; a tile not stored is left out."""
        ...


class TileHashReader:
    """A `HashReader` over stored tiles: one read of every tile the asked nodes fall in."""

    def __init__(self, tiles: TileReader) -> None:
        self.tiles = tiles

    def read_hashes(self, nodes: Sequence[Node]) -> list[bytes]:
        places = [locate(node) for node in nodes]
        stored = self.tiles.read_tiles(sorted({tile for tile, _, _ in places}))
        hashes = []
        for node, (tile, first, count) in zip(nodes, places, strict=True):
            data = stored.get(tile, b"")[first * HASH_SIZE:(first + count) * HASH_SIZE]
            if len(data) != count * HASH_SIZE:
                raise LookupError(f"subtree {node} is not stored")
            hashes.append(data if count == 1 else complete_root(
                [data[i:i + HASH_SIZE] for i in range(0, len(data), HASH_SIZE)]))
        return hashes


def tile_appends(created: Iterable[tuple[Node, bytes]]) -> dict[Tile, tuple[int, bytes]]:
    """What an append adds to each tile: {tile: (hashes it holds before, bytes to append)}.

    Takes the nodes `RightEdge.append` returns; those of a level come in index order, so each
    tile's new hashes follow one another.
    """
    appends: dict[Tile, tuple[int, bytearray]] = {}
    for node, value in created:
        if node.level % TILE_HEIGHT:
            continue
        tile, first, _ = locate(node)
        offset, data = appends.setdefault(tile, (first, bytearray()))
        if first != offset + len(data) // HASH_SIZE:
            raise ValueError(f"node {node} does not follow the tile's previous hash")
        data += value
    return {tile: (offset, bytes(data)) for tile, (offset, data) in appends.items()}


class MemoryTileStore:
    """Tiles in a dict, grown only by appends as the database table will be; counts tiles read."""

    def __init__(self) -> None:
        self.tiles: dict[Tile, bytes] = {}
        self.reads = 0

    def write(self, appends: Mapping[Tile, tuple[int, bytes]]) -> None:
        for tile, (offset, data) in appends.items():
            stored = self.tiles.get(tile, b"")
            if len(stored) != offset * HASH_SIZE:
                raise ValueError(f"tile {tile} holds {len(stored) // HASH_SIZE} hashes, "
                                 f"the append starts at {offset}")
            self.tiles[tile] = stored + data

    def read_tiles(self, tiles: Sequence[Tile]) -> dict[Tile, bytes]:
        self.reads += len(tiles)
        return {tile: self.tiles[tile] for tile in tiles if tile in self.tiles}


class TileBuilder:
    """The tiles of a tree rebuilt from its leaf hashes as they come (what full verification
    compares with the stored ones): each 256 hashes of a level make a tile, and their
    subtree's root is the next level's hash. It keeps the tiles above the leaves (1/255 of
    the hashes), and the full tiles of leaves only when asked to, for whoever drains them."""

    def __init__(self, *, keep_leaf_tiles: bool = False) -> None:
        self.pending: list[list[bytes]] = [[]]  # per tile level, the hashes of its open tile
        self.full: list[int] = [0]  # per tile level, how many of its tiles are complete
        self.upper: dict[Tile, bytes] = {}  # every complete tile above level 0
        self.leaf_tiles: list[tuple[Tile, bytes]] | None = [] if keep_leaf_tiles else None

    def add(self, value: bytes, level: int = 0) -> None:
        pending = self.pending[level]
        pending.append(value)
        if len(pending) < TILE_WIDTH:
            return
        if level:
            self.upper[Tile(level, self.full[level])] = b"".join(pending)
        elif self.leaf_tiles is not None:
            self.leaf_tiles.append((Tile(0, self.full[0]), b"".join(pending)))
        self.full[level] += 1
        self.pending[level] = []
        if level + 1 == len(self.pending):
            self.pending.append([])
            self.full.append(0)
        self.add(complete_root(pending), level + 1)

    def finish(self) -> tuple[dict[Tile, bytes], MemoryTileStore]:
        """The tiles above level 0 with their partial ones, and a store of those and the
        partial tile of leaves (what the tree's right edge is read from)."""
        for level in range(1, len(self.pending)):
            if self.pending[level]:
                self.upper[Tile(level, self.full[level])] = b"".join(self.pending[level])
        store = MemoryTileStore()
        store.tiles = dict(self.upper)
        if self.pending[0]:
            store.tiles[Tile(0, self.full[0])] = b"".join(self.pending[0])
        return self.upper, store
