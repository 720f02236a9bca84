"""Evidence of issued documents (vouchers, certificates): their facts logged as an audit entry
of their own, the entry sealed, and the proof that the log holds it.

A document's facts are the details of its entry, so the leaf's payload_digest is the SHA-256
of their canonical JSON: the evidence proves exactly the facts shown. Issuing seals
synchronously (the project's sealer, under its lock), since there is no evidence before.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from flask import current_app
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.audit import AuditEntry, digest, leaf_bytes
from app.db import unit_of_work
from app.errors import Conflict
from app.locks import exclusive_lock
from app.log.merkle import inclusion_proof, leaf_hash
from app.log.models import DatabaseTiles, LogLeaf, latest_checkpoint
from app.log.sealer import seal
from app.log.tiles import TileHashReader

# How long a request waits for its entry to be sealed: a few merge delays (2 s at least),
# then 409.
_SEAL_WAIT_MERGE_DELAYS = 5
_SEAL_WAIT_MIN_SECONDS = 2.0


_ISSUING_KEY = 0x646F6369  # "doci": names the advisory lock of first issues
_ISSUING_WAIT_SECONDS = 10


@contextmanager
def issuing() -> Iterator[None]:
    """Held around the transaction that issues a document for the first time (look up, then
    record, then commit): concurrent first requests, on any database, issue one. Only first
    issues take it; a document issued already is read without it."""
    with exclusive_lock("document-issuing", _ISSUING_KEY, wait_seconds=_ISSUING_WAIT_SECONDS):
        yield


class EvidencePending(Conflict):
    code, title = "evidence_pending", "The document is issued but not yet in the evidence log"


def issued_entry(session: Session, *, action: str, subject_type: str, subject_id: str,
                 facts: dict[str, Any] | None = None) -> AuditEntry | None:
    """The first entry issuing this subject's document (with these facts, when given)."""
    query = select(AuditEntry).where(AuditEntry.subject_type == subject_type,
                                     AuditEntry.subject_id == subject_id,
                                     AuditEntry.action == action)
    if facts is not None:
        query = query.where(AuditEntry.payload_digest == digest(facts))
    return session.scalars(query.order_by(AuditEntry.id).limit(1)).first()


def proved(*, action: str, subject_type: str, subject_id: str,
           facts: dict[str, Any] | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """The facts and evidence of a committed issuing entry (see `issued_entry`), sealing it
    into the log if it is not there yet."""
    with unit_of_work() as session:
        issued = issued_entry(session, action=action, subject_type=subject_type,
                              subject_id=subject_id, facts=facts)
        if issued is None:
            raise LookupError(f"no {action} entry of {subject_type} {subject_id}")
        entry_id = issued.id
    return sealed_evidence(entry_id)


@dataclass(frozen=True)
class DocumentKind:
    """A kind of issued document: how it is named, the action of its issuing entry, and its
    number (`prefix` and the log index of that entry: `TV-42`)."""

    kind: str
    number_field: str
    prefix: str
    action: str

    def document(self, facts: dict[str, Any], proof: dict[str, Any]) -> dict[str, Any]:
        """The document as served: its number, kind, facts and evidence."""
        return {self.number_field: f"{self.prefix}{proof['log_index']}", "kind": self.kind,
                "facts": facts, "evidence": proof}

    def by_number(self, number: str) -> dict[str, Any] | None:
        """The document numbered so, with evidence against the latest checkpoint; None when
        the number is not one of this kind's or that leaf is no issuing entry of it."""
        digits = number.removeprefix(self.prefix)
        if digits == number or not digits.isascii() or not digits.isdigit() \
                or (digits != "0" and digits.startswith("0")) or len(digits) > 18:
            return None
        with unit_of_work() as session:
            entry_id = session.scalar(select(LogLeaf.entry_id).join(
                AuditEntry, AuditEntry.id == LogLeaf.entry_id).where(
                LogLeaf.log_index == int(digits), AuditEntry.action == self.action))
            proved = evidence_of(session, entry_id) if entry_id is not None else None
        return self.document(*proved) if proved is not None else None


def evidence_of(session: Session,
                entry_id: int) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """The entry's facts (its details), and its leaf with its inclusion proof against the
    latest checkpoint; None until the entry is sealed."""
    index = session.scalar(select(LogLeaf.log_index).where(LogLeaf.entry_id == entry_id))
    checkpoint = latest_checkpoint(session)
    entry = session.get(AuditEntry, entry_id)
    if index is None or checkpoint is None or entry is None:
        return None
    leaf = leaf_bytes(entry)
    reader = TileHashReader(DatabaseTiles(session))
    proof = inclusion_proof(reader, index, checkpoint.tree_size)
    return entry.details, {
        "log_index": index, "leaf": leaf.decode(), "leaf_hash": leaf_hash(leaf).hex(),
        "inclusion_proof": [value.hex() for value in proof],
        "tree_size": checkpoint.tree_size, "checkpoint": checkpoint.signed_note}


def sealed_evidence(entry_id: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """The entry's facts and evidence, sealing the log now when it is not in it yet (another sealer
    running is waited for briefly); 409 evidence_pending past the wait."""
    config = current_app.config
    deadline = time.monotonic() + max(
        _SEAL_WAIT_MIN_SECONDS, _SEAL_WAIT_MERGE_DELAYS * config["LOG_MAX_MERGE_DELAY_SECONDS"])
    while True:
        with unit_of_work() as session:
            evidence = evidence_of(session, entry_id)
        if evidence is not None:
            return evidence
        if time.monotonic() > deadline:
            raise EvidencePending("The document's entry is not sealed yet; ask again shortly.")
        report = seal(config["LOG_ORIGIN"])
        if report is None or not report.sealed:
            time.sleep(0.05)  # another sealer runs, or a transaction holds the batch back
