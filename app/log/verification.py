"""Full verification of the evidence log: every leaf recomputed from its entry, the tree
recomputed from the leaves, both compared with the stored tiles (every level) and the latest
checkpoint, whose signature is checked with the log's key.

It reads the log once, in log order, in batches of plain rows (no ORM objects), and rebuilds
the tiles as the leaves come: each 256 hashes of a level make a tile, and their subtree's
root is the next level's hash. Only the tiles above the leaves (1/255 of the hashes) and the
last, partial tile of leaves are kept, so memory stays small at any size.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass

from sqlalchemy import Text, cast, select
from sqlalchemy.orm import Session

from app.audit import AuditEntry, leaf_bytes_of
from app.log.checkpoint import open_checkpoint
from app.log.merkle import HASH_SIZE, RightEdge, leaf_hash
from app.log.models import LogCheckpoint, LogLeaf, LogTile, latest_checkpoint
from app.log.note import NoteError, Verifier
from app.log.tiles import MemoryTileStore, Tile, TileBuilder, TileHashReader
from app.records import canonical_json


@dataclass(frozen=True)
class LogReport:
    """`valid`, how many leaves were checked, the latest checkpoint's root (hex), and the id of
    the first entry, in log order, that does not fit (None when the fault is not an entry's)."""

    valid: bool
    entries: int
    head_hash: str | None
    first_bad_entry: int | None


_ENTRY = AuditEntry.__table__.c
# Each leaf in log order with its entry's columns; the details as their stored text, parsed
# with the json module (the driver's JSON loading costs more than the digest).
_LEAVES = (select(LogLeaf.log_index, LogLeaf.entry_id, _ENTRY.id, _ENTRY.occurred_at,
                  _ENTRY.actor_id, _ENTRY.action, _ENTRY.subject_type, _ENTRY.subject_id,
                  _ENTRY.payload_digest, cast(_ENTRY.details, Text).label("details"))
           .select_from(LogLeaf.__table__.outerjoin(AuditEntry.__table__,
                                                    _ENTRY.id == LogLeaf.entry_id))
           .order_by(LogLeaf.log_index))


def verify_log(session: Session, verifier: Verifier, *, batch_size: int = 5000) -> LogReport:
    """Recompute every leaf and the tree; compare with the tiles and the latest checkpoint."""
    checkpoint = latest_checkpoint(session)
    stored = _stored_leaf_hashes(session)
    tiles = TileBuilder()
    leaves = 0
    first_bad: int | None = None
    rows = session.connection().execution_options(yield_per=batch_size).execute(_LEAVES)
    # Names bound once: this loop runs once per leaf of the log.
    loads, encode, sha256, add = json.loads, canonical_json, hashlib.sha256, tiles.add
    for (log_index, leaf_entry, entry_id, occurred_at, actor_id, action, subject_type,
         subject_id, payload_digest, details) in rows.tuples():
        found = entry_id is not None
        value = leaf_hash(leaf_bytes_of(entry_id, occurred_at, actor_id, action, subject_type,
                                        subject_id, payload_digest)) if found else b""
        intact = (next(stored, None) == value and found and log_index == leaves
                  and payload_digest == sha256(encode(loads(details)).encode()).hexdigest())
        if not intact and first_bad is None:
            first_bad = leaf_entry
        leaves += 1
        add(value)
    upper, store = tiles.finish()
    valid = (first_bad is None and next(stored, None) is None
             and _upper_tiles(session) == upper
             and _signed(verifier, checkpoint, leaves, store))
    return LogReport(valid, leaves, checkpoint.root_hash.hex() if checkpoint else None,
                     first_bad)


def _signed(verifier: Verifier, checkpoint: LogCheckpoint | None, size: int,
            store: MemoryTileStore) -> bool:
    """Whether the recomputed tree is the one the latest checkpoint signed."""
    if checkpoint is None:
        return size == 0
    try:
        root = RightEdge.read(TileHashReader(store), size).root()
        signed = open_checkpoint(checkpoint.signed_note, verifier)
    except (NoteError, LookupError):
        return False
    return (signed.tree_size, signed.root_hash) == (size, root) and checkpoint.root_hash == root


def _upper_tiles(session: Session) -> dict[Tile, bytes]:
    rows = session.execute(select(LogTile.level, LogTile.index, LogTile.hashes)
                           .where(LogTile.level > 0))
    return {Tile(level, index): bytes(data) for level, index, data in rows}


def _stored_leaf_hashes(session: Session) -> Iterator[bytes]:
    """The level-0 hashes of the tiles, in leaf order (a second cursor, beside the leaves')."""
    tiles = session.connection().execution_options(yield_per=64).execute(
        select(LogTile.hashes).where(LogTile.level == 0).order_by(LogTile.index))
    for (data,) in tiles:
        data = bytes(data)
        for offset in range(0, len(data), HASH_SIZE):
            yield data[offset:offset + HASH_SIZE]
