"""The sealer: integrates committed audit entries into the evidence log, one batch at a time.

One sealer runs at a time (`app.locks.exclusive_lock`: a PostgreSQL session-level advisory
lock taken with pg_try_advisory_lock, a file lock beside SQLite); a second one finds it taken
and does nothing. Writers never wait for it.

Which entries come next, without a lock on the writers: ids are drawn at insert, not at
commit, so "ids above the last one sealed" would skip an entry whose transaction commits
late with a smaller id. On PostgreSQL every entry carries its transaction's id (`txid`);
the watermark (`_watermark`) is the oldest transaction still running in this database (like
`pg_snapshot_xmin`, which is the cluster's oldest, but not held back by other databases'), so
every entry with a txid below it is committed (or gone with its rollback) and no more can
appear there. A batch is the entries with `previous watermark <= txid < current watermark`
not yet in the log, ordered by (txid, id); the checkpoint keeps the watermark for the next
batch (the previous one again when the batch was cut at LOG_SEAL_BATCH_SIZE: the rest of that
range comes first next time, nothing can join it). A transaction left open in this database
holds sealing back until it ends: the service's connections end an idle one after
DATABASE_IDLE_IN_TRANSACTION_SECONDS, and `flask log status` shows what holds it. On SQLite
one transaction writes at a time: id order is commit order.

A batch is one transaction: its tiles, leaves and signed checkpoint commit together or not
at all, so a sealer killed anywhere leaves the last checkpoint as it was.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from flask import current_app
from sqlalchemy import Row, insert, select, text, update
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
    watermark = _watermark(session)
    columns = ", ".join(f"e.{entry_column.name}" for entry_column in _ENTRY_COLUMNS)
    entries = list(session.execute(text(
        f"SELECT {columns} FROM audit_entries e "
        f"WHERE e.txid >= CAST(CAST(:since AS text) AS xid8) "
        f"AND e.txid < CAST(CAST(:watermark AS text) AS xid8) "
        f"AND NOT EXISTS (SELECT FROM log_leaves l WHERE l.entry_id = e.id) "
        f"ORDER BY e.txid, e.id LIMIT :limit").columns(*_ENTRY_COLUMNS),
        {"since": since, "watermark": watermark, "limit": limit}))
    return entries, since if len(entries) == limit else watermark


# Every transaction id from it up was unassigned when it was read (pg_snapshot_xmax); the
# backend status read by the next statement is taken afresh, after it.
_NEXT_XID = text("SELECT pg_stat_clear_snapshot(), "
                 "pg_snapshot_xmax(pg_current_snapshot())::text::bigint")
# The (32-bit) ids of the transactions running in this database, prepared ones included, or
# None when this role may not see other roles' (pg_read_all_stats).
_RUNNING_HERE = text(
    "SELECT pg_has_role('pg_read_all_stats', 'USAGE') OR rolsuper, "
    "ARRAY(SELECT backend_xid::text::bigint FROM pg_stat_activity "
    "      WHERE datname = current_database() AND backend_xid IS NOT NULL "
    "      AND pid <> pg_backend_pid() "
    "      UNION ALL SELECT transaction::text::bigint FROM pg_prepared_xacts "
    "      WHERE database = current_database()) "
    "FROM pg_roles WHERE rolname = current_user")
_XMIN = text("SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint")


def _watermark(session: Session) -> int:
    """A transaction id below which every transaction of this database has ended, and none
    can start: the oldest one running here, else the next to be assigned.

    Transactions of the cluster's other databases cannot write these rows, so they do not
    hold the sealer back, as they would with pg_snapshot_xmin (the cluster's oldest): an
    id below the next unassigned one (read first) was assigned already, so if its
    transaction still ran when this database's backends were read next, it was among them.
    A role that may not see other roles' transactions falls back to the cluster's xmin.
    """
    next_xid = session.execute(_NEXT_XID).one()[1]
    allowed, running = session.execute(_RUNNING_HERE).one()
    if not allowed:
        return int(session.execute(_XMIN).scalar_one())
    return min([_widen(xid, next_xid) for xid in running], default=next_xid)


def _widen(xid: int, near: int) -> int:
    """The 64-bit id of a running transaction's 32-bit `xid`, from a 64-bit id `near` it:
    running ids lie within 2**31 of each other (one assigned after `near` was read is above
    it)."""
    behind = (near - xid) % 2**32
    return near - (behind - 2**32 if behind >= 2**31 else behind)
