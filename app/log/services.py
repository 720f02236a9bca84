"""What the evidence log serves: its checkpoint, its key, its entries and its proofs.

A proof is only served for a tree size that a signed checkpoint has: RFC 9162's verifiers
cannot tell a smaller claimed size that happens to share a root, so a size the log never
signed proves nothing a reader could check against a signature.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, select
from sqlalchemy.orm import Session

from app.audit import AuditEntry, leaf_bytes
from app.errors import NotFound, ValidationFailed
from app.log.checkpoint import Checkpoint
from app.log.document_check import Check, check_document, document_checkpoint
from app.log.merkle import (
    Node,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    verify_consistency,
)
from app.log.models import DatabaseTiles, LogCheckpoint, LogLeaf, latest_checkpoint
from app.log.note import Verifier, parse_note
from app.log.tiles import TileHashReader


class CheckpointNotFound(NotFound):
    code, title = "checkpoint_not_found", "No signed checkpoint of that tree size"


class LogEntryNotFound(NotFound):
    code, title = "log_entry_not_found", "No leaf at that index yet"


@dataclass(frozen=True)
class TracedEntry:
    """An audit entry as a trace shows it: its facts and its place in the evidence log
    (`log_index` and `leaf_hash` are None until the sealer has integrated it)."""

    id: int
    occurred_at: datetime
    actor_id: Any
    action: str
    subject_type: str
    subject_id: str
    details: dict[str, Any]
    payload_digest: str
    log_index: int | None
    leaf_hash: str | None


def traced_entries(session: Session, where: ColumnElement[bool]) -> list[TracedEntry]:
    """The audit entries matching `where` in order, each with its place in the log, read in
    one statement."""
    rows = session.execute(select(AuditEntry, LogLeaf.log_index)
                           .outerjoin(LogLeaf, LogLeaf.entry_id == AuditEntry.id)
                           .where(where).order_by(AuditEntry.id)).tuples()
    return [TracedEntry(entry.id, entry.occurred_at, entry.actor_id, entry.action,
                        entry.subject_type, entry.subject_id, entry.details,
                        entry.payload_digest, index,
                        None if index is None else leaf_hash(leaf_bytes(entry)).hex())
            for entry, index in rows]


@dataclass(frozen=True)
class LogEntry:
    index: int
    leaf: str
    leaf_hash: str
    integrated_at: datetime


def current_checkpoint(session: Session) -> LogCheckpoint:
    """The latest signed checkpoint; 404 until the first batch is sealed."""
    checkpoint = latest_checkpoint(session)
    if checkpoint is None:
        raise CheckpointNotFound("The log has no checkpoint yet.")
    return checkpoint


def checkpoint_document(checkpoint: LogCheckpoint) -> dict[str, Any]:
    """The checkpoint as JSON: its fields beside the signed note they are read from."""
    return {"origin": Checkpoint.parse(parse_note(checkpoint.signed_note).text).origin,
            "tree_size": checkpoint.tree_size, "root_hash": checkpoint.root_hash.hex(),
            "signed_note": checkpoint.signed_note, "timestamp": checkpoint.created_at}


def log_entry(session: Session, *, index: int) -> LogEntry:
    """Leaf `index` and the entry it was made from; 404 until it is sealed."""
    entry = AuditEntry.__table__.c
    row = session.execute(
        select(LogLeaf.integrated_at, *entry)
        .join(AuditEntry.__table__, entry.id == LogLeaf.entry_id)
        .where(LogLeaf.log_index == index)).first()
    if row is None:
        raise LogEntryNotFound(f"Leaf {index} is not in the log (yet).")
    leaf = leaf_bytes(row)
    return LogEntry(index, leaf.decode(), leaf_hash(leaf).hex(), row.integrated_at)


def _signed_size(session: Session, tree_size: int) -> None:
    if session.get(LogCheckpoint, tree_size) is None:
        raise CheckpointNotFound(f"No signed checkpoint has a tree of {tree_size} leaves.")


def inclusion(session: Session, *, index: int, tree_size: int) -> dict[str, Any]:
    """The audit path of leaf `index` in the signed tree of `tree_size` leaves."""
    _signed_size(session, tree_size)
    if index >= tree_size:
        raise LogEntryNotFound(f"Leaf {index} is not in the tree of {tree_size} leaves.")
    reader = TileHashReader(DatabaseTiles(session))
    # The proof first: its tiles include the leaf's, which the leaf hash is then read from.
    path = inclusion_proof(reader, index, tree_size)
    return {"index": index, "tree_size": tree_size,
            "leaf_hash": reader.read_hashes([Node(0, index)])[0].hex(),
            "hashes": [value.hex() for value in path]}


def consistency(session: Session, *, first: int, second: int) -> dict[str, Any]:
    """The proof that the signed tree of `second` leaves extends that of `first`."""
    if first > second:
        raise ValidationFailed("The first tree size is larger than the second.",
                               errors={"first": ["Must not be larger than second."]})
    for size in {first, second} - {0}:
        _signed_size(session, size)
    reader = TileHashReader(DatabaseTiles(session))
    return {"first": first, "second": second,
            "hashes": [value.hex() for value in consistency_proof(reader, first, second)]}



def verify_document(session: Session, document: dict[str, Any],
                    verifier: Verifier) -> dict[str, Any]:
    """The offline checks of a voucher or certificate, and its checkpoint's consistency
    with the log's current one."""
    checks = [*check_document(document, verifier), _consistency_check(session, document)]
    return {"valid": all(check.ok for check in checks), "checks": checks}


def _consistency_check(session: Session, document: dict[str, Any]) -> Check:
    claimed = document_checkpoint(document)
    if claimed is None:
        return Check("consistency", False, "the checkpoint is not a checkpoint note")
    current = latest_checkpoint(session)
    if current is None or current.tree_size < claimed.tree_size:
        return Check("consistency", False, f"the log has no signed tree of "
                                           f"{claimed.tree_size} leaves or more")
    try:
        proof = consistency(session, first=claimed.tree_size, second=current.tree_size)
    except CheckpointNotFound:
        return Check("consistency", False, f"the log never signed a tree of "
                                           f"{claimed.tree_size} leaves")
    if not verify_consistency(claimed.tree_size, current.tree_size, claimed.root_hash,
                              current.root_hash, [bytes.fromhex(h) for h in proof["hashes"]]):
        return Check("consistency", False, f"the checkpoint of {claimed.tree_size} leaves is "
                                           f"not consistent with the log's of "
                                           f"{current.tree_size}")
    return Check("consistency", True, f"the log's current tree of {current.tree_size} leaves "
                                      f"extends the checkpoint's")
