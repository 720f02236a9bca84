"""The sealer: integrates committed audit entries into the evidence log, one batch at a time.

One sealer runs at a time (`app.locks.exclusive_lock`: a PostgreSQL session-level advisory
lock taken with pg_try_advisory_lock, a file lock beside SQLite); a second one finds it taken
and does nothing. Writers never wait for it.

Which entries come next, without a lock on the writers: ids are drawn at insert, not at
commit, so "ids above the last one sealed" would skip an entry whose transaction commits
late with a smaller id. On PostgreSQL every entry carries its transaction's id (`txid`);
`pg_snapshot_xmin(pg_current_snapshot())` is the oldest transaction still running, so every
entry with a txid below it is committed (or gone with its rollback) and no more can appear
there. A batch is the entries with `previous xmin <= txid < current xmin` not yet in the log,
ordered by (txid, id), taken in one statement; the checkpoint keeps the xmin for the next
batch (the previous one again when the batch was cut at LOG_SEAL_BATCH_SIZE: the rest of that
range comes first next time, nothing can join it). On SQLite one transaction writes at a
time: id order is commit order.

A batch is one transaction: its tiles, leaves and signed checkpoint commit together or not
at all, so a sealer killed anywhere leaves the last checkpoint as it was.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from flask import current_app
from sqlalchemy import BigInteger, Row, column, insert, select, text, update
from sqlalchemy.orm import Session

from app import clock
from app.audit import AuditEntry, leaf_bytes
from app.db import unit_of_work
from app.faults import crash_point
from app.locks import LockTaken, exclusive_lock
from app.log.checkpoint import Checkpoint, sign_checkpoint
from app.log.keys import log_signer
from app.log.merkle import HASH_SIZE, RightEdge, leaf_hash
from app.log.models import DatabaseTiles, LogCheckpoint, LogLeaf, LogTile, latest_checkpoint
from app.log.tiles import TileHashReader, tile_appends

log = logging.getLogger(__name__)

_ADVISORY_KEY = 0x6C6F67736561  # "logsea": names the sealer's advisory lock

_ENTRY_COLUMNS = [column for column in AuditEntry.__table__.columns
                  if column.key not in ("details", "txid")]


class LogInconsistent(RuntimeError):
    """The stored tree does not have the root of the last checkpoint: the sealer stops."""


@dataclass(frozen=True)
class SealReport:
    """What one run of the sealer did."""

    sealed: int
    tree_size: int
    root_hash: bytes | None


def seal(origin: str, batch_size: int | None = None) -> SealReport | None:
    """Integrate the next batch of committed entries (at most `batch_size`, by default
    LOG_SEAL_BATCH_SIZE); None when another sealer runs."""
    try:
        with exclusive_lock("log-sealer", _ADVISORY_KEY, wait_seconds=0), \
                unit_of_work() as session:
            return seal_batch(session, origin,
                              batch_size or current_app.config["LOG_SEAL_BATCH_SIZE"])
    except LockTaken:
        log.info("sealer skipped: another one is running")
        return None


def seal_batch(session: Session, origin: str, batch_size: int) -> SealReport:
    """Append the next batch to the tree and sign a checkpoint, in this transaction."""
    checkpoint = latest_checkpoint(session)
    size = checkpoint.tree_size if checkpoint else 0
    tiles = DatabaseTiles(session)
    edge = RightEdge.read(TileHashReader(tiles), size)
    if checkpoint is not None and edge.root() != checkpoint.root_hash:
        raise LogInconsistent(f"the stored tree of {size} leaves does not have the root of "
                              f"its checkpoint; sealing stopped")
    entries, xmin = _next_batch(session, checkpoint, batch_size)
    if not entries:
        return SealReport(0, size, checkpoint.root_hash if checkpoint else None)
    edge, created = edge.append(leaf_hash(leaf_bytes(entry)) for entry in entries)
    appends = tile_appends(created)
    stored = tiles.read_tiles([tile for tile, (offset, _) in appends.items() if offset])
    for tile, (offset, data) in sorted(appends.items()):
        if offset:
            held = stored.get(tile, b"")
            if len(held) != offset * HASH_SIZE:  # a tile grown behind the service
                raise LogInconsistent(f"tile {tile} holds {len(held) // HASH_SIZE} hashes, "
                                      f"the tree of {size} leaves {offset}; sealing stopped")
            session.execute(update(LogTile).where(LogTile.level == tile.level,
                                                  LogTile.index == tile.index)
                            .values(hashes=held + data))
        else:
            session.execute(insert(LogTile).values(level=tile.level, index=tile.index,
                                                   hashes=data))
    crash_point("seal.tiles")
    now = clock.now()
    session.execute(insert(LogLeaf), [
        {"log_index": size + n, "entry_id": entry.id, "integrated_at": now}
        for n, entry in enumerate(entries)])
    crash_point("seal.leaves")
    root = edge.root()
    note = sign_checkpoint(Checkpoint(origin, edge.size, root), log_signer())
    session.add(LogCheckpoint(tree_size=edge.size, root_hash=root, signed_note=note,
                              created_at=now, xmin_watermark=xmin))
    session.flush()
    crash_point("seal.checkpoint")
    log.info("log sealed", extra={"sealed": len(entries), "tree_size": edge.size})
    return SealReport(len(entries), edge.size, root)


def _next_batch(session: Session, checkpoint: LogCheckpoint | None,
                limit: int) -> tuple[list[Row], int | None]:
    """The committed entries after the last checkpoint's, in log order, and the watermark the
    next batch starts from."""
    if session.get_bind().dialect.name != "postgresql":
        last = session.scalar(select(LogLeaf.entry_id).where(
            LogLeaf.log_index == checkpoint.tree_size - 1)) if checkpoint else None
        entries = list(session.execute(select(*_ENTRY_COLUMNS)
                                       .where(AuditEntry.id > (last or 0))
                                       .order_by(AuditEntry.id).limit(limit)))
        return entries, None
    since = (checkpoint.xmin_watermark or 0) if checkpoint else 0
    # One statement, one snapshot: its xmin and the rows below it are read together.
    columns = ", ".join(f"e.{entry_column.name}" for entry_column in _ENTRY_COLUMNS)
    rows = list(session.execute(text(
        f"WITH snapshot AS (SELECT pg_snapshot_xmin(pg_current_snapshot()) AS xmin) "
        f"SELECT {columns}, snapshot.xmin::text::bigint AS watermark "
        f"FROM snapshot LEFT JOIN LATERAL ("
        f"SELECT * FROM audit_entries e "
        f"WHERE e.txid >= CAST(CAST(:since AS text) AS xid8) AND e.txid < snapshot.xmin "
        f"AND NOT EXISTS (SELECT FROM log_leaves l WHERE l.entry_id = e.id) "
        f"ORDER BY e.txid, e.id LIMIT :limit) e ON true "
        f"ORDER BY e.txid, e.id").columns(*_ENTRY_COLUMNS, column("watermark", BigInteger)),
        {"since": since, "limit": limit}))
    entries = [row for row in rows if row.id is not None]
    return entries, since if len(entries) == limit else rows[0].watermark
