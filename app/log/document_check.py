"""Checks of a voucher or certificate as served, needing only the log's public key: the
checkpoint's signature, the leaf's inclusion under the checkpoint's root, and the digest of
the facts in the leaf. No database and no network: `flask log verify-evidence` runs them
offline; POST /evidence/verify adds the consistency with the current checkpoint."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from app.audit import digest
from app.log.checkpoint import Checkpoint
from app.log.merkle import leaf_hash, verify_inclusion
from app.log.note import NoteError, Verifier, open_note, parse_note


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


def document_checkpoint(document: dict[str, Any]) -> Checkpoint | None:
    """The checkpoint the document's proof is against, read without its signature."""
    try:
        return Checkpoint.parse(parse_note(document["evidence"]["checkpoint"]).text)
    except NoteError:
        return None


def check_document(document: dict[str, Any], verifier: Verifier) -> list[Check]:
    """The signature, inclusion and facts_digest checks of a well-formed document (the
    shape POST /evidence/verify's schema accepts)."""
    return [_signature(document, verifier), _inclusion(document), _facts_digest(document)]


def _signature(document: dict[str, Any], verifier: Verifier) -> Check:
    evidence = document["evidence"]
    try:
        checkpoint = Checkpoint.parse(open_note(evidence["checkpoint"], verifier).text)
    except NoteError as error:
        return Check("signature", False, f"the checkpoint is not signed by {verifier.vkey}: "
                                         f"{error}")
    if checkpoint.tree_size != evidence["tree_size"]:
        return Check("signature", False, f"the signed checkpoint is of {checkpoint.tree_size} "
                                         f"leaves, the evidence says {evidence['tree_size']}")
    return Check("signature", True, f"checkpoint of {checkpoint.tree_size} leaves signed by "
                                    f"{verifier.vkey}")


def _inclusion(document: dict[str, Any]) -> Check:
    evidence = document["evidence"]
    checkpoint = document_checkpoint(document)
    if checkpoint is None:
        return Check("inclusion", False, "the checkpoint is not a checkpoint note")
    leaf = leaf_hash(evidence["leaf"].encode())
    if leaf.hex() != evidence["leaf_hash"]:
        return Check("inclusion", False, "leaf_hash is not the hash of the leaf")
    path = [bytes.fromhex(value) for value in evidence["inclusion_proof"]]
    if not verify_inclusion(leaf, evidence["log_index"], checkpoint.tree_size, path,
                            checkpoint.root_hash):
        return Check("inclusion", False, f"the proof does not lead from leaf "
                                         f"{evidence['log_index']} to the checkpoint's root")
    return Check("inclusion", True, f"leaf {evidence['log_index']} is in the tree of "
                                    f"{checkpoint.tree_size} leaves")


def _facts_digest(document: dict[str, Any]) -> Check:
    try:
        leaf = json.loads(document["evidence"]["leaf"])
    except ValueError:
        return Check("facts_digest", False, "the leaf is not JSON")
    recorded = leaf.get("payload_digest") if isinstance(leaf, dict) else None
    if recorded != digest(document["facts"]):
        return Check("facts_digest", False, "the facts are not those the leaf's "
                                            "payload_digest was computed from")
    return Check("facts_digest", True, "the leaf's payload_digest is the SHA-256 of the "
                                       "facts' canonical JSON")
