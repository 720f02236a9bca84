"""Complete-subtree hashes stored as C2SP tlog-tiles (app.log.tiles): the tiles the spec lists for
its examples, tile hashes as it defines them, and roots and proofs read from tiles equal to those
read from every stored node, from a few tiles per tile level."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.log.merkle import (
    MemoryHashStore,
    Node,
    RightEdge,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    root_of,
    tree_root,
)
from app.log.tiles import (
    TILE_WIDTH,
    MemoryTileStore,
    Tile,
    TileHashReader,
    locate,
    tile_appends,
)

HASHES = [leaf_hash(f"entry {i}".encode()) for i in range(70_000)]


def stored(batches: list[int]) -> tuple[MemoryTileStore, MemoryHashStore, RightEdge]:
    tiles, nodes, edge = MemoryTileStore(), MemoryHashStore(), RightEdge()
    for count in batches:
        edge, created = edge.append(HASHES[edge.size:edge.size + count])
        tiles.write(tile_appends(created))
        nodes.write(created)
    return tiles, nodes, edge


def widths(tiles: MemoryTileStore) -> dict[Tile, int]:
    return {tile: len(data) // 32 for tile, data in tiles.tiles.items()}


def test_a_tree_of_70000_leaves_has_the_tiles_the_spec_lists() -> None:
    tiles, _, _ = stored([1000] * 70)
    expected = {Tile(0, n): TILE_WIDTH for n in range(273)}
    expected |= {Tile(0, 273): 112, Tile(1, 0): TILE_WIDTH, Tile(1, 1): 17, Tile(2, 0): 1}
    assert widths(tiles) == expected


def test_a_tree_of_256_leaves_has_a_full_tile_and_a_partial_one_above() -> None:
    tiles, _, _ = stored([100, 156])
    assert widths(tiles) == {Tile(0, 0): TILE_WIDTH, Tile(1, 0): 1}


def test_a_tile_holds_the_subtree_hashes_the_spec_defines() -> None:
    tiles, _, _ = stored([70_000])
    for tile, data in tiles.tiles.items():
        level, n = tile.level, tile.index
        span = TILE_WIDTH ** level
        for i in range(0, len(data) // 32, 37):
            start = (n * TILE_WIDTH + i) * span
            assert data[32 * i:32 * (i + 1)] == root_of(HASHES[start:start + span])


def test_nodes_between_tile_levels_are_found_in_one_tile() -> None:
    assert locate(Node(0, 300)) == (Tile(0, 1), 44, 1)
    assert locate(Node(7, 3)) == (Tile(0, 1), 128, 128)
    assert locate(Node(8, 3)) == (Tile(1, 0), 3, 1)
    assert locate(Node(9, 200)) == (Tile(1, 1), 144, 2)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(0, 5000), min_size=1, max_size=8), st.data())
def test_roots_and_proofs_read_from_tiles_equal_those_read_from_every_node(
        batches: list[int], data: st.DataObject) -> None:
    tiles, nodes, edge = stored(batches)
    reader = TileHashReader(tiles)
    assert tree_root(reader, edge.size) == edge.root()
    assert RightEdge.read(reader, edge.size) == edge
    if edge.size < 2:
        return
    size = data.draw(st.integers(2, edge.size))
    index = data.draw(st.integers(0, size - 1))
    first = data.draw(st.integers(1, size - 1))
    tile_levels = ((size - 1).bit_length() + 7) // 8

    tiles.reads = 0
    assert inclusion_proof(reader, index, size) == inclusion_proof(nodes, index, size)
    assert tiles.reads <= 2 * tile_levels
    tiles.reads = 0
    assert consistency_proof(reader, first, size) == consistency_proof(nodes, first, size)
    assert tiles.reads <= 3 * tile_levels


def test_a_node_beyond_the_stored_tiles_is_not_found() -> None:
    tiles, _, _ = stored([300])
    with pytest.raises(LookupError):
        TileHashReader(tiles).read_hashes([Node(0, 300)])
    with pytest.raises(LookupError):
        TileHashReader(tiles).read_hashes([Node(1, 150)])


def test_a_tile_grows_only_at_its_end() -> None:
    tiles, _, edge = stored([10])
    _, created = edge.append(HASHES[10:12])
    with pytest.raises(ValueError):
        tile_appends([(Node(0, 10), HASHES[10]), (Node(0, 12), HASHES[12])])
    appends = tile_appends(created)
    assert appends == {Tile(0, 0): (10, HASHES[10] + HASHES[11])}
    with pytest.raises(ValueError):
        tiles.write(tile_appends(created[1:]))  # leaf 10 left out: leaf 11 would not follow 9
    tiles.write(appends)
    assert widths(tiles) == {Tile(0, 0): 12}
