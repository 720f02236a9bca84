"""Full verification of the evidence log: every leaf recomputed from its entry, the tree
recomputed from the leaves, both compared with the stored tiles and the latest checkpoint,
whose signature is checked with the log's key."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.audit import AuditEntry, digest, leaf_bytes
from app.log.checkpoint import open_checkpoint
from app.log.merkle import HASH_SIZE, leaf_hash, root_of, tree_root
from app.log.models import DatabaseTiles, LogCheckpoint, LogLeaf, LogTile, latest_checkpoint
from app.log.note import NoteError, Verifier
from app.log.tiles import TileHashReader


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

    def hashes(self, session: Session, batch_size: int) -> Iterator[bytes]:
        stored = _stored_leaf_hashes(session)
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
    root = root_of(check.hashes(session, batch_size))
    valid = check.first_bad is None and _tree_matches(session, verifier, checkpoint,
                                                      check.leaves, root)
    return LogReport(valid, check.leaves, checkpoint.root_hash.hex() if checkpoint else None,
                     check.first_bad)


def _tree_matches(session: Session, verifier: Verifier, checkpoint: LogCheckpoint | None,
                  leaves: int, root: bytes) -> bool:
    """Whether the recomputed root is the signed checkpoint's, and the stored tiles' too."""
    if checkpoint is None:
        return leaves == 0
    try:
        signed = open_checkpoint(checkpoint.signed_note, verifier)
    except NoteError:
        return False
    if (signed.tree_size, signed.root_hash) != (leaves, root) or checkpoint.root_hash != root:
        return False
    try:
        return tree_root(TileHashReader(DatabaseTiles(session)), leaves) == root
    except LookupError:
        return False


def _stored_leaf_hashes(session: Session) -> Iterator[bytes]:
    """The level-0 hashes of the tiles, in leaf order."""
    tiles = session.execute(select(LogTile.hashes).where(LogTile.level == 0)
                            .order_by(LogTile.index).execution_options(yield_per=64))
    for (data,) in tiles:
        for offset in range(0, len(data), HASH_SIZE):
            yield bytes(data[offset:offset + HASH_SIZE])
