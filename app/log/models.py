"""The evidence log's tables: tiles of the tree's hashes, leaves, signed checkpoints.

- `log_tiles`: C2SP tlog-tiles (`app.log.tiles`), one row per tile; the rightmost tile of a
  level grows in place, every other never changes (a PostgreSQL trigger refuses anything else).
- `log_leaves`: which audit entry is leaf `log_index`, and when it was integrated; an entry is
  integrated exactly once (a unique key).
- `log_checkpoints`: every signed tree head, by tree size, with the PostgreSQL transaction
  watermark the sealer reached (the `xmin` below which every writer had ended).
Leaves and checkpoints are append-only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    ForeignKey,
    Integer,
    LargeBinary,
    SmallInteger,
    Text,
    select,
    tuple_,
)
from sqlalchemy.orm import Mapped, Session, mapped_column

from app.audit import AuditEntry
from app.db import Base
from app.log.tiles import Tile
from app.records import make_append_only

_BIG = BigInteger().with_variant(Integer, "sqlite")


class LogTile(Base):
    """Up to 256 hashes of one tree level (a multiple of 8), concatenated."""

    __tablename__ = "log_tiles"

    level: Mapped[int] = mapped_column(SmallInteger, primary_key=True, autoincrement=False)
    index: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    hashes: Mapped[bytes] = mapped_column(LargeBinary)


class LogLeaf(Base):
    """Leaf `log_index` of the tree is audit entry `entry_id`."""

    __tablename__ = "log_leaves"

    log_index: Mapped[int] = mapped_column(_BIG, primary_key=True, autoincrement=False)
    entry_id: Mapped[int] = mapped_column(_BIG, ForeignKey(AuditEntry.id), unique=True)
    integrated_at: Mapped[datetime]


class LogCheckpoint(Base):
    """A signed tree head (C2SP tlog-checkpoint note)."""

    __tablename__ = "log_checkpoints"

    tree_size: Mapped[int] = mapped_column(_BIG, primary_key=True, autoincrement=False)
    root_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    signed_note: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime]
    # PostgreSQL: every transaction below it had ended when this batch was taken; the next
    # batch starts there. None on SQLite, where entry ids follow commit order.
    xmin_watermark: Mapped[int | None] = mapped_column(BigInteger)


make_append_only(LogLeaf)
make_append_only(LogCheckpoint)


class DatabaseTiles:
    """A `TileReader` over `log_tiles`: one query for the tiles asked that it has not read
    yet (an instance serves one request or transaction, so what it read stays true)."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.read: dict[Tile, bytes] = {}

    def read_tiles(self, tiles: Sequence[Tile]) -> Mapping[Tile, bytes]:
        missing = [tile for tile in tiles if tile not in self.read]
        if missing:
            rows = self.session.execute(
                select(LogTile.level, LogTile.index, LogTile.hashes)
                .where(tuple_(LogTile.level, LogTile.index).in_(
                    [(tile.level, tile.index) for tile in missing])))
            self.read.update({Tile(level, index): bytes(hashes)
                              for level, index, hashes in rows})
        return {tile: self.read[tile] for tile in tiles if tile in self.read}


def latest_checkpoint(session: Session) -> LogCheckpoint | None:
    """The checkpoint of the largest tree."""
    return session.scalars(
        select(LogCheckpoint).order_by(LogCheckpoint.tree_size.desc()).limit(1)).first()
