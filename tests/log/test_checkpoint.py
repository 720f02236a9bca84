"""Checkpoints (app.log.checkpoint): the C2SP tlog-checkpoint text, parsed with its validation, and
signed and opened as notes."""

from __future__ import annotations

import base64

import pytest

from app.log.checkpoint import (
    Checkpoint,
    MalformedCheckpointError,
    open_checkpoint,
    sign_checkpoint,
)
from app.log.merkle import EMPTY_ROOT, leaf_hash, root_of
from app.log.note import (
    InvalidSignatureError,
    MalformedNoteError,
    Signer,
    UnknownKeyError,
    parse_note,
    sign_note,
)

# c2sp.org/tlog-checkpoint, the example at its head.
SPEC_NOTE = ("example.com/behind-the-sofa\n"
             "20852163\n"
             "CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
             "\n"
             "— example.com/behind-the-sofa Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4URYN7"
             "u5/Zhcyv2q1gGzGku9nTo+zyWE+xeMcTOAYQ8=\n")
SPEC_ROOT = base64.b64decode("CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=")
ROOT = root_of(leaf_hash(bytes([i])) for i in range(5))
SIGNER = Signer.generate("exchange.local/log")


def test_the_spec_example_parses_and_formats_back() -> None:
    text = parse_note(SPEC_NOTE).text
    checkpoint = Checkpoint.parse(text)
    assert checkpoint == Checkpoint("example.com/behind-the-sofa", 20852163, SPEC_ROOT)
    assert checkpoint.text() == text


def test_extension_lines_follow_the_root() -> None:
    checkpoint = Checkpoint("exchange.local/log", 5, ROOT, ("timestamp 1700000000",))
    assert checkpoint.text() == (f"exchange.local/log\n5\n{base64.b64encode(ROOT).decode()}\n"
                                 "timestamp 1700000000\n")
    assert Checkpoint.parse(checkpoint.text()) == checkpoint


def test_the_empty_tree_has_a_checkpoint() -> None:
    checkpoint = Checkpoint("exchange.local/log", 0, EMPTY_ROOT)
    assert Checkpoint.parse(checkpoint.text()) == checkpoint


ROOT64 = base64.b64encode(ROOT).decode()


@pytest.mark.parametrize("text", [
    f"log\n5\n{ROOT64}",  # no final newline
    "log\n5\n",  # no root
    f"\n5\n{ROOT64}\n",  # no origin
    f"log\n05\n{ROOT64}\n",  # a leading zero
    f"log\n-5\n{ROOT64}\n",
    f"log\n+5\n{ROOT64}\n",
    f"log\n 5\n{ROOT64}\n",
    f"log\n\uff15\n{ROOT64}\n",  # FULLWIDTH DIGIT FIVE: a digit, but not ASCII
    f"log\n{1 << 64}\n{ROOT64}\n",  # beyond 64 bits
    f"log\n5\n{ROOT64[:-4]}\n",  # not base64 of 32 bytes
    f"log\n5\n{base64.b64encode(ROOT[:31]).decode()}\n",  # 31 bytes
    f"log\n5\n{ROOT64[:-2]}9=\n",  # base64, but not canonical (nonzero padding bits)
    f"log\n5\n{ROOT64}\n\n",  # an empty extension line
])
def test_a_text_that_is_not_a_checkpoint_is_refused(text: str) -> None:
    with pytest.raises(MalformedCheckpointError):
        Checkpoint.parse(text)


def test_only_well_formed_checkpoints_are_made() -> None:
    for origin, size, root, extensions in [("", 1, ROOT, ()), ("a\nb", 1, ROOT, ()),
                                           ("log", -1, ROOT, ()), ("log", 1, ROOT[:31], ()),
                                           ("log", 1, ROOT, ("",))]:
        with pytest.raises(MalformedCheckpointError):
            Checkpoint(origin, size, root, extensions)


def test_a_signed_checkpoint_opens_with_the_logs_key_only() -> None:
    checkpoint = Checkpoint("exchange.local/log", 5, ROOT)
    note = sign_checkpoint(checkpoint, SIGNER)
    assert note.startswith(checkpoint.text() + "\n— exchange.local/log ")
    assert open_checkpoint(note, SIGNER.verifier) == checkpoint

    with pytest.raises(UnknownKeyError):
        open_checkpoint(sign_checkpoint(checkpoint, Signer.generate("exchange.local/log")),
                        SIGNER.verifier)
    with pytest.raises(InvalidSignatureError):
        open_checkpoint(note.replace("\n5\n", "\n6\n"), SIGNER.verifier)
    with pytest.raises(InvalidSignatureError):
        open_checkpoint(note.replace(ROOT64, base64.b64encode(EMPTY_ROOT).decode()),
                        SIGNER.verifier)
    with pytest.raises(MalformedNoteError):
        open_checkpoint(note.replace("\n\n", "\n"), SIGNER.verifier)


def test_a_signed_note_that_is_not_a_checkpoint_is_refused() -> None:
    with pytest.raises(MalformedCheckpointError):
        open_checkpoint(sign_note("hello\n", SIGNER), SIGNER.verifier)
