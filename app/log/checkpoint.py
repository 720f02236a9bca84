"""C2SP tlog-checkpoint (c2sp.org/tlog-checkpoint): the log's signed tree head, as a signed note.

The note text is at least three non-empty lines: the origin (the log's unique name), the tree size
in decimal without leading zeros, the root hash (RFC 9162 §2.1) in standard base64, then optional
extension lines. The log signs it with its key (`app.log.note`), whose name should be the origin.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass

from app.log.merkle import HASH_SIZE
from app.log.note import NoteError, Signer, Verifier, open_note, sign_note

_TREE_SIZE = re.compile(r"0|[1-9][0-9]{0,19}")
MAX_TREE_SIZE = (1 << 64) - 1


class MalformedCheckpointError(NoteError):
    """A note whose text is not a checkpoint."""


@dataclass(frozen=True)
class Checkpoint:
    """A tree head: the log's origin, the tree size and the root hash."""

    origin: str
    tree_size: int
    root_hash: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if any(not line or "\n" in line for line in (self.origin, *self.extensions)):
            raise MalformedCheckpointError("the origin and extension lines are non-empty lines")
        if not 0 <= self.tree_size <= MAX_TREE_SIZE:
            raise MalformedCheckpointError("the tree size is a 64-bit unsigned number")
        if len(self.root_hash) != HASH_SIZE:
            raise MalformedCheckpointError("the root hash is a SHA-256 hash")

    def text(self) -> str:
        """The note text: one line each for origin, size, root, extensions."""
        root = base64.b64encode(self.root_hash).decode()
        lines = (self.origin, str(self.tree_size), root, *self.extensions)
        return "".join(line + "\n" for line in lines)

    @classmethod
    def parse(cls, text: str) -> Checkpoint:
        """The checkpoint in a note's text."""
        lines = text.split("\n")
        if len(lines) < 4 or lines.pop() != "":
            raise MalformedCheckpointError("a checkpoint is at least three lines, each ending "
                                           "in a newline")
        origin, size, root, *extensions = lines
        if not _TREE_SIZE.fullmatch(size):
            raise MalformedCheckpointError("the tree size is decimal without leading zeros")
        try:
            root_hash = base64.b64decode(root, validate=True)
        except ValueError:  # binascii.Error, or characters outside ASCII
            raise MalformedCheckpointError("the root hash is in base64") from None
        if base64.b64encode(root_hash).decode() != root:
            raise MalformedCheckpointError("the root hash is in canonical base64")
        return cls(origin, int(size), root_hash, tuple(extensions))


def sign_checkpoint(checkpoint: Checkpoint, signer: Signer) -> str:
    """The checkpoint as a note signed by the log's key."""
    return sign_note(checkpoint.text(), signer)


def open_checkpoint(message: str | bytes, *verifiers: Verifier) -> Checkpoint:
    """The checkpoint a note carries, once signed by one of these keys (see `open_note`)."""
    return Checkpoint.parse(open_note(message, *verifiers).text)
