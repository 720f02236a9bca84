"""Full verification of the evidence log: every leaf recomputed from its entry, the tree
recomputed from the leaves, both compared with the stored tiles (every level) and the latest
checkpoint, whose signature is checked with the log's key."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.audit import AuditEntry, digest, leaf_bytes
from app.log.checkpoint import open_checkpoint
from app.log.merkle import HASH_SIZE, RightEdge, leaf_hash
from app.log.models import LogCheckpoint, LogLeaf, LogTile, latest_checkpoint
from app.log.note import NoteError, Verifier
from app.log.tiles import TILE_HEIGHT, Tile, tile_appends


@dataclass(frozen=True)
class LogReport:
    """`valid`, how many leaves were checked, the latest checkpoint's root (hex), and the id of
    the first entry, in log order, that does not fit (None when the fault is not an entry's)."""

    valid: bool
    entries: int
    head_hash: str | None
    first_bad_entry: int | None


class _LeafCheck:
    """Recomputes each leaf from its entry while the tree's root is folded from them."""

    def __init__(self) -> None:
        self.leaves = 0
        self.first_bad: int | None = None
        self._stored: Iterator[bytes] = iter(())

    def stored_complete(self) -> bool:
        """Whether level 0 of the tiles holds no hash beyond the last leaf."""
        return next(self._stored, None) is None

    def hashes(self, session: Session, batch_size: int) -> Iterator[bytes]:
        stored = self._stored = _stored_leaf_hashes(session)
        entry = AuditEntry.__table__.c
        rows = session.execute(
            select(LogLeaf.log_index, LogLeaf.entry_id, *entry)
            .outerjoin(AuditEntry.__table__, entry.id == LogLeaf.entry_id)
            .order_by(LogLeaf.log_index).execution_options(yield_per=batch_size))
        for row in rows:
            found = row.id is not None
            value = leaf_hash(leaf_bytes(row)) if found else b""
            intact = (row.log_index == self.leaves and found
                      and row.payload_digest == digest(row.details)
                      and next(stored, None) == value)
            if not intact and self.first_bad is None:
                self.first_bad = row.entry_id
            self.leaves += 1
            yield value


def verify_log(session: Session, verifier: Verifier, *, batch_size: int = 5000) -> LogReport:
    """Recompute every leaf and the tree; compare with the tiles and the latest checkpoint."""
    checkpoint = latest_checkpoint(session)
    check = _LeafCheck()
    edge = RightEdge()
    upper: dict[Tile, bytes] = {}  # the tiles above level 0, recomputed
    hashes = check.hashes(session, batch_size)
    while batch := list(itertools.islice(hashes, batch_size)):
        edge, created = edge.append(batch)
        for tile, (offset, data) in tile_appends(
                (node, value) for node, value in created if node.level >= TILE_HEIGHT).items():
            upper[tile] = upper.get(tile, b"")[:offset * HASH_SIZE] + data
    valid = (check.first_bad is None and check.stored_complete()
             and _upper_tiles(session) == upper
             and _signed(verifier, checkpoint, edge))
    return LogReport(valid, check.leaves, checkpoint.root_hash.hex() if checkpoint else None,
                     check.first_bad)


def _signed(verifier: Verifier, checkpoint: LogCheckpoint | None, edge: RightEdge) -> bool:
    """Whether the recomputed tree is the one the latest checkpoint signed."""
    if checkpoint is None:
        return edge.size == 0
    try:
        signed = open_checkpoint(checkpoint.signed_note, verifier)
    except NoteError:
        return False
    return ((signed.tree_size, signed.root_hash) == (edge.size, edge.root())
            and checkpoint.root_hash == edge.root())


def _upper_tiles(session: Session) -> dict[Tile, bytes]:
    rows = session.execute(select(LogTile.level, LogTile.index, LogTile.hashes)
                           .where(LogTile.level > 0))
    return {Tile(level, index): bytes(data) for level, index, data in rows}


def _stored_leaf_hashes(session: Session) -> Iterator[bytes]:
    """The level-0 hashes of the tiles, in leaf order."""
    tiles = session.execute(select(LogTile.hashes).where(LogTile.level == 0)
                            .order_by(LogTile.index).execution_options(yield_per=64))
    for (data,) in tiles:
        for offset in range(0, len(data), HASH_SIZE):
            yield bytes(data[offset:offset + HASH_SIZE])
