"""The log monitor: what a regulator runs on a timer against the exchange's evidence log.

Each run fetches the latest checkpoint, checks its signature, and checks that it extends the
last checkpoint this monitor saw (kept in a state file): same size and same root, or a bigger
tree with a consistency proof (RFC 9162 §2.1.4) that verifies. A fork (two checkpoints that are
not consistent), a rollback (a smaller tree than seen, e.g. after a restore from an old backup),
a bad signature or another origin is an alarm, and the state file stays as it was, so every later
run raises it again until someone looks. It needs no database: only HTTP and the state file.

Exit status: 0 on honest growth, 1 on an alarm, 2 when it could not check (network, state file).
"""

from __future__ import annotations

import json
import os
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path

from app.log.checkpoint import Checkpoint, open_checkpoint
from app.log.merkle import verify_consistency
from app.log.note import KeyFormatError, NoteError, Verifier

OK, ALARM, UNCHECKED = 0, 1, 2
TIMEOUT_SECONDS = 10


class Alarm(Exception):
    """The log misbehaved: a fork, a rollback, a bad signature, another origin."""


class Unchecked(Exception):
    """The log could not be checked this time: unreachable, an error answer, no state."""


class ErrorAnswer(Unchecked):
    """The log answered with an HTTP error status."""

    def __init__(self, url: str, status: int) -> None:
        super().__init__(f"GET {url}: HTTP {status}")
        self.status = status


@dataclass(frozen=True)
class MonitorState:
    """The last checkpoint the monitor accepted, and the key it trusts."""

    origin: str
    tree_size: int
    root_hash: str  # hex
    note: str
    vkey: str


def run(base_url: str, state_file: Path, vkey: str | None = None) -> tuple[int, str]:
    """One check of the log at `base_url`: the exit status and the line to print."""
    try:
        return OK, check(base_url, state_file, vkey)
    except Alarm as alarm:
        return ALARM, f"ALARM: {alarm}"
    except Unchecked as error:
        return UNCHECKED, f"not checked: {error}"


def check(base_url: str, state_file: Path, vkey: str | None = None) -> str:
    """Check the log's latest checkpoint against the state; on success record it, atomically."""
    base_url = base_url.rstrip("/")
    seen = _load(state_file)
    verifier = _verifier(base_url, vkey or (seen.vkey if seen else None))
    note = _get(f"{base_url}/api/v1/log/checkpoint", "text/plain").decode("utf-8", "replace")
    try:
        checkpoint = open_checkpoint(note, verifier)
    except NoteError as error:
        raise Alarm(f"checkpoint not signed by {verifier.vkey}: {error}") from None

    if seen is None:
        outcome = "first checkpoint, key trusted" if vkey is None else "first checkpoint"
    else:
        outcome = _extends(base_url, seen, checkpoint)
    _store(state_file, MonitorState(checkpoint.origin, checkpoint.tree_size,
                                    checkpoint.root_hash.hex(), note, verifier.vkey))
    return (f"ok: {checkpoint.origin} tree_size={checkpoint.tree_size} "
            f"root_hash={checkpoint.root_hash.hex()} ({outcome})")


def _extends(base_url: str, seen: MonitorState, checkpoint: Checkpoint) -> str:
    """How `checkpoint` extends the one seen; an Alarm when it does not."""
    old_size, old_root = seen.tree_size, bytes.fromhex(seen.root_hash)
    if checkpoint.origin != seen.origin:
        raise Alarm(f"origin {checkpoint.origin!r}, was {seen.origin!r}")
    if checkpoint.tree_size < old_size:
        raise Alarm(f"rollback: tree_size {checkpoint.tree_size} is smaller than {old_size} "
                    "seen before")
    if checkpoint.tree_size == old_size:
        if checkpoint.root_hash != old_root:
            raise Alarm(f"fork: tree_size {old_size} has root {checkpoint.root_hash.hex()}, "
                        f"was {seen.root_hash}")
        return "unchanged"
    query = urllib.parse.urlencode({"first": old_size, "second": checkpoint.tree_size})
    try:
        proof = _get(f"{base_url}/api/v1/log/proof/consistency?{query}", "application/json")
    except ErrorAnswer as error:
        if error.status != 404:
            raise
        # The log no longer knows a tree it signed (restored, then grown past it).
        raise Alarm(f"fork: no consistency proof from tree_size {old_size} "
                    f"to {checkpoint.tree_size} (HTTP 404)") from None
    if not verify_consistency(old_size, checkpoint.tree_size, old_root, checkpoint.root_hash,
                              _proof_hashes(proof)):
        raise Alarm(f"fork: tree_size {checkpoint.tree_size} is not consistent with "
                    f"tree_size {old_size} seen before")
    return f"grew from {old_size}, consistent"


def _proof_hashes(body: bytes) -> list[bytes]:
    """The hashes of a consistency proof; a malformed one proves nothing (an empty path)."""
    try:
        hashes = json.loads(body)["hashes"]
        return [bytes.fromhex(value) for value in hashes]
    except (ValueError, KeyError, TypeError):
        return []


def _verifier(base_url: str, vkey: str | None) -> Verifier:
    """The key named (or kept in the state), else the log's published key: trust on first use."""
    if vkey is None:
        try:
            vkey = json.loads(_get(f"{base_url}/api/v1/log/public-key",
                                   "application/json"))["vkey"]
        except (ValueError, KeyError, TypeError):
            raise Unchecked("the log's public key is not readable") from None
    try:
        return Verifier.from_vkey(str(vkey))
    except KeyFormatError as error:
        raise Unchecked(f"verifier key {vkey!r}: {error}") from None


def _get(url: str, accept: str) -> bytes:
    request = urllib.request.Request(url, headers={"Accept": accept})
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:
            body: bytes = response.read()
            return body
    except urllib.error.HTTPError as error:
        raise ErrorAnswer(url, error.code) from None
    except (urllib.error.URLError, OSError) as error:
        raise Unchecked(f"GET {url}: {getattr(error, 'reason', error)}") from None


def _load(state_file: Path) -> MonitorState | None:
    if not state_file.exists():
        return None
    try:
        state = MonitorState(**json.loads(state_file.read_text()))
        bytes.fromhex(state.root_hash)
        return state
    except (OSError, ValueError, TypeError) as error:
        raise Unchecked(f"state file {state_file}: {error}") from None


def _store(state_file: Path, state: MonitorState) -> None:
    """Write beside the file, then rename over it: a run killed midway leaves the old state."""
    try:
        handle, temporary = tempfile.mkstemp(dir=state_file.parent, prefix=f".{state_file.name}.")
    except OSError as error:
        raise Unchecked(f"state file {state_file}: {error}") from None
    try:
        with os.fdopen(handle, "w") as file:
            json.dump(asdict(state), file, indent=2)
            file.write("\n")
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, state_file)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
