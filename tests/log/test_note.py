"""Signed notes (app.log.note) against the test vectors of Go's golang.org/x/mod/sumdb/note and the
C2SP signed-note example: the same key id, verifier key and signature; every tampering refused
with its own error."""

from __future__ import annotations

import base64

import pytest

from app.log.note import (
    InvalidSignatureError,
    KeyFormatError,
    MalformedNoteError,
    Signature,
    Signer,
    UnknownKeyError,
    Verifier,
    key_id_of,
    open_note,
    parse_note,
    sign_note,
)

# golang.org/x/mod/sumdb/note, note_test.go.
PETER_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
PETER_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
ENOCH_VKEY = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop"
TEXT = ("If you think cryptography is the answer to your problem,\n"
        "then you don't know what your problem is.\n")
PETER_SIG = ("— PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfq"
             "dngotpRZb6KE6RyyBwJnAM=\n")
ENOCH_SIG = ("— EnochRoot rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oO"
             "TGwnWLox33WWd1RvMc+QQ=\n")
PETER_NOTE = TEXT + "\n" + PETER_SIG

# c2sp.org/signed-note, "Verifier keys", Example.
C2SP_VKEY = "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k"
C2SP_TEXT = "This is an example message.\n"
C2SP_NOTE = (C2SP_TEXT + "\n— example.com/foo Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfXppzi2ONncAlTgK7"
             "Ztg1ERYNZXsYjOBH3mFXmRKuwHjG1Yu72IneyaQM=\n")

PETER = Verifier.from_vkey(PETER_VKEY)
ENOCH = Verifier.from_vkey(ENOCH_VKEY)


def test_the_go_signer_key_gives_the_go_key_id_and_verifier_key() -> None:
    signer = Signer.from_skey(PETER_SKEY)
    assert signer.key_id == 0xC74F20A3 == PETER.key_id
    assert signer.verifier == PETER
    assert signer.verifier.vkey == PETER_VKEY
    assert signer.skey == PETER_SKEY
    assert key_id_of("PeterNeumann", PETER.public_key) == 0xC74F20A3
    assert (ENOCH.name, ENOCH.key_id, ENOCH.vkey) == ("EnochRoot", 0xAF0CFE78, ENOCH_VKEY)


def test_signing_the_go_text_gives_the_go_note() -> None:
    assert sign_note(TEXT, Signer.from_skey(PETER_SKEY)) == PETER_NOTE


def test_the_go_and_c2sp_notes_verify() -> None:
    note = open_note(PETER_NOTE, PETER)
    assert note.text == TEXT
    assert note.signatures == (
        Signature("PeterNeumann", 0xC74F20A3, base64.b64decode(PETER_SIG.split()[2])[4:]),)
    assert open_note(PETER_NOTE.encode(), PETER) == note

    both = PETER_NOTE + ENOCH_SIG
    for verifiers in [(PETER,), (ENOCH,), (PETER, ENOCH)]:
        assert open_note(both, *verifiers).text == TEXT
    assert [s.name for s in parse_note(both).signatures] == ["PeterNeumann", "EnochRoot"]

    assert open_note(C2SP_NOTE, Verifier.from_vkey(C2SP_VKEY)).text == C2SP_TEXT


def mangled(key: str) -> list[str]:
    """Every part of the key but the whole, and the key with each character moved up by one
    (Go's TestNewVerifier and TestNewSigner)."""
    parts = [key[i:j] for i in range(len(key) + 1) for j in range(i + 1, len(key) + 1)
             if (i, j) != (0, len(key))]
    return parts + [key[:i] + chr(ord(key[i]) + 1) + key[i + 1:] for i in range(len(key))]


def test_every_mangled_key_string_is_refused() -> None:
    for vkey in [*mangled(PETER_VKEY),
                 # a key of the wrong length, and of an unknown type, with matching key ids
                 "PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWBADKEY==",
                 "PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"]:
        with pytest.raises(KeyFormatError):
            Verifier.from_vkey(vkey)
    for skey in [*mangled(PETER_SKEY), PETER_VKEY]:
        with pytest.raises(KeyFormatError):
            Signer.from_skey(skey)


@pytest.mark.parametrize("message", [
    TEXT,  # no signatures
    TEXT + "\n",  # a blank line, no signatures
    PETER_NOTE[:-1],  # the signature line does not end
    "\x01" + PETER_NOTE,  # a control character
    b"\xff" + PETER_NOTE.encode(),  # not UTF-8
    "\ud800" + PETER_NOTE,  # not encodable as UTF-8
    TEXT + "\n" + "— Bad Name x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNX"
                  "gKvqfqdngotpRZb6KE6RyyBwJnAM=\n",  # a space in the key name
    PETER_NOTE + "Unexpected line.\n",
    TEXT + "\n" + PETER_SIG * 101,  # too many signatures
    TEXT + "\n— PeterNeumann x08g\n",  # a signature of fewer than 5 bytes
    TEXT + "\n— PeterNeumann x08go/ZJkuBS9UG/Sff\n",  # not base64 (no padding)
    TEXT + PETER_SIG,  # no blank line before the signature
])
def test_a_malformed_note_is_refused(message: str | bytes) -> None:
    with pytest.raises(MalformedNoteError):
        open_note(message, PETER)


def test_a_note_whose_text_was_changed_is_refused() -> None:
    with pytest.raises(InvalidSignatureError):
        open_note(TEXT.replace("answer", "question") + "\n" + PETER_SIG, PETER)


def test_a_changed_signature_by_a_known_key_is_refused_whatever_else_verifies() -> None:
    bad = PETER_SIG[:60] + "ABCD" + PETER_SIG[60:]
    with pytest.raises(InvalidSignatureError, match=r"PeterNeumann\+c74f20a3"):
        open_note(TEXT + "\n" + bad, PETER)
    with pytest.raises(InvalidSignatureError):
        open_note(TEXT + "\n" + ENOCH_SIG + bad, PETER, ENOCH)


def test_a_note_signed_by_another_key_is_refused() -> None:
    impostor = Signer.generate("PeterNeumann")  # same name, another key: another key id
    with pytest.raises(UnknownKeyError):
        open_note(sign_note(TEXT, impostor), PETER)
    with pytest.raises(UnknownKeyError):
        open_note(PETER_NOTE, ENOCH)
    # The impostor's signature presented under Peter's key id.
    forged = Signature("PeterNeumann", PETER.key_id, impostor.sign(TEXT.encode())).line()
    with pytest.raises(InvalidSignatureError):
        open_note(TEXT + "\n" + forged, PETER)


def test_a_signature_under_another_key_name_is_not_taken_for_the_keys() -> None:
    with pytest.raises(UnknownKeyError):
        open_note(PETER_NOTE.replace("PeterNeumann", "CarmenSandiego"), PETER)


def test_a_generated_key_signs_notes_its_published_key_verifies() -> None:
    signer = Signer.generate("exchange.local/log")
    assert Signer.from_skey(signer.skey).verifier == signer.verifier
    verifier = Verifier.from_vkey(signer.verifier.vkey)
    assert verifier == signer.verifier
    assert open_note(sign_note("hello\n\nworld\n", signer), verifier).text == "hello\n\nworld\n"
    assert signer.skey not in repr(signer)
    with pytest.raises(UnknownKeyError):
        open_note(sign_note(TEXT, signer), PETER)


@pytest.mark.parametrize("text", ["no final newline", "tab\tinside\n", "\ud800\n"])
def test_only_text_ending_in_a_newline_without_control_characters_is_signed(text: str) -> None:
    with pytest.raises(MalformedNoteError):
        sign_note(text, Signer.from_skey(PETER_SKEY))


@pytest.mark.parametrize("name", ["", "two words", "a+b", "tab\t", "nbsp\u00a0"])
def test_a_key_name_has_no_spaces_or_plus(name: str) -> None:
    with pytest.raises(KeyFormatError):
        Signer.generate(name)
