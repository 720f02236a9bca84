"""C2SP signed notes with Ed25519 keys (c2sp.org/signed-note), as Go's golang.org/x/mod/sumdb/note.

A note is UTF-8 text ending in a newline, then a blank line, then signature lines
`— <key name> <base64(key id ‖ signature)>` (U+2014 EM DASH and a space). What is signed is the
text, its final newline included. No character below U+0020 but the newline may appear.

Keys (signed-note "Ed25519 signatures", "Verifier keys"): the key id is the first four bytes,
big-endian, of SHA-256(key name ‖ 0x0A ‖ 0x01 ‖ 32-byte public key), and keys travel as strings:
- verifier key: `<name>+<key id, 8 hex>+<base64(0x01 ‖ public key)>`, published;
- signer key: `PRIVATE+KEY+<name>+<key id, 8 hex>+<base64(0x01 ‖ 32-byte seed)>`, kept secret.
A key name is non-empty and holds no Unicode space and no plus.
"""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)

ED25519 = 0x01  # the signature type byte
KEY_SIZE = 32
MAX_SIGNATURES = 100  # the spec asks readers to take at least 16; Go's stops at 100
SIGNATURE_PREFIX = "\u2014 "
_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f]")
_KEY_ID = re.compile(r"[0-9a-fA-F]{8}")


class NoteError(ValueError):
    """A note that cannot be trusted."""


class MalformedNoteError(NoteError):
    """Not a signed note: bad characters, no blank line before the signatures, a bad line."""


class UnknownKeyError(NoteError):
    """No signature on the note is by a key the reader knows."""


class InvalidSignatureError(NoteError):
    """A signature by a known key does not verify: the note was altered or forged."""


class KeyFormatError(ValueError):
    """A key string that does not parse, names another algorithm, or whose key id is wrong."""


def valid_key_name(name: str) -> bool:
    """Non-empty, without Unicode spaces or plus (signed-note "Format")."""
    return (bool(name) and "+" not in name and not any(c.isspace() for c in name)
            and _encodes(name))


def key_id_of(name: str, public_key: bytes) -> int:
    """SHA-256(name ‖ 0x0A ‖ 0x01 ‖ public key)[:4], big-endian (signed-note "Signatures")."""
    digest = hashlib.sha256(name.encode() + b"\n" + bytes([ED25519]) + public_key).digest()
    return int.from_bytes(digest[:4], "big")


@dataclass(frozen=True)
class Verifier:
    """A log's published Ed25519 key: checks its signatures on notes."""

    name: str
    public_key: bytes
    key_id: int = field(init=False)

    def __post_init__(self) -> None:
        if not valid_key_name(self.name) or len(self.public_key) != KEY_SIZE:
            raise KeyFormatError("a key has a valid name and 32 bytes")
        object.__setattr__(self, "key_id", key_id_of(self.name, self.public_key))

    @classmethod
    def from_vkey(cls, vkey: str) -> Verifier:
        """The verifier of a `<name>+<key id>+<key>` string."""
        name, _, rest = vkey.partition("+")
        key_id, _, key = rest.partition("+")
        verifier = cls(name, _key_bytes(name, key_id, key))
        _check_key_id(key_id, verifier)
        return verifier

    @property
    def vkey(self) -> str:
        """The verifier key string, for publishing."""
        return f"{self.name}+{self.key_id:08x}+{_b64(bytes([ED25519]) + self.public_key)}"

    def verify(self, message: bytes, signature: bytes) -> bool:
        """Whether `signature` is this key's Ed25519 signature of `message`."""
        try:
            Ed25519PublicKey.from_public_bytes(self.public_key).verify(signature, message)
        except InvalidSignature:
            return False
        return True


class Signer:
    """A log's private Ed25519 key: signs notes."""

    def __init__(self, name: str, seed: bytes) -> None:
        if not valid_key_name(name) or len(seed) != KEY_SIZE:
            raise KeyFormatError("a key has a valid name and a 32-byte seed")
        self.name = name
        self._key = Ed25519PrivateKey.from_private_bytes(seed)
        self.verifier = Verifier(
            name, self._key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw))

    def __repr__(self) -> str:
        return f"Signer({self.verifier.vkey!r})"  # never the seed

    @classmethod
    def generate(cls, name: str) -> Signer:
        """A new random key."""
        seed = Ed25519PrivateKey.generate().private_bytes(
            Encoding.Raw, PrivateFormat.Raw, NoEncryption())
        return cls(name, seed)

    @classmethod
    def from_skey(cls, skey: str) -> Signer:
        """The signer of a `PRIVATE+KEY+<name>+<key id>+<seed>` string."""
        private, _, rest = skey.partition("+")
        key_word, _, rest = rest.partition("+")
        name, _, rest = rest.partition("+")
        key_id, _, seed = rest.partition("+")
        if (private, key_word) != ("PRIVATE", "KEY"):
            raise KeyFormatError("a signer key starts with PRIVATE+KEY+")
        signer = cls(name, _key_bytes(name, key_id, seed))
        _check_key_id(key_id, signer.verifier)
        return signer

    @property
    def key_id(self) -> int:
        return self.verifier.key_id

    @property
    def skey(self) -> str:
        """The signer key string: a secret."""
        seed = self._key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
        return f"PRIVATE+KEY+{self.name}+{self.key_id:08x}+{_b64(bytes([ED25519]) + seed)}"

    def sign(self, message: bytes) -> bytes:
        """The Ed25519 signature of `message` (64 bytes)."""
        return self._key.sign(message)


@dataclass(frozen=True)
class Signature:
    """One signature line of a note, verified or not."""

    name: str
    key_id: int
    signature: bytes

    def line(self) -> str:
        blob = self.key_id.to_bytes(4, "big") + self.signature
        return f"{SIGNATURE_PREFIX}{self.name} {_b64(blob)}\n"


@dataclass(frozen=True)
class Note:
    """A note's text and the signatures on it."""

    text: str
    signatures: tuple[Signature, ...]


def sign_note(text: str, *signers: Signer) -> str:
    """The signed note: the text, a blank line, one signature line per signer."""
    if not signers:
        raise ValueError("a note is signed by at least one key")
    if not text.endswith("\n") or _CONTROL.search(text) or not _encodes(text):
        raise MalformedNoteError("a note's text is UTF-8 ending in a newline, "
                                 "without control characters")
    message = text.encode()
    lines = [Signature(s.name, s.key_id, s.sign(message)).line() for s in signers]
    return text + "\n" + "".join(lines)


def parse_note(message: str | bytes) -> Note:
    """A note's text and signatures, none of them checked yet (signed-note "Format")."""
    try:
        encoded = message.encode() if isinstance(message, str) else message
        decoded = encoded.decode()
    except UnicodeError:
        raise MalformedNoteError("a note is UTF-8 text") from None
    if _CONTROL.search(decoded):
        raise MalformedNoteError("a note holds no control characters but newlines")
    split = decoded.rfind("\n\n")
    if split < 0 or not decoded.endswith("\n") or split + 2 == len(decoded):
        raise MalformedNoteError("a note is text, a blank line, then signature lines")
    lines = decoded[split + 2:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise MalformedNoteError(f"a note carries at most {MAX_SIGNATURES} signatures")
    return Note(decoded[:split + 1], tuple(_parse_signature(line) for line in lines))


def open_note(message: str | bytes, *verifiers: Verifier) -> Note:
    """The note, once a signature by one of these keys verifies and none of theirs fails.

    Signatures by other keys are ignored (a witness's cosignature, a rotated key), as the spec
    requires (signed-note "Signatures").
    """
    note = parse_note(message)
    known = {(verifier.name, verifier.key_id): verifier for verifier in verifiers}
    signed = note.text.encode()
    verified = False
    for signature in note.signatures:
        verifier = known.get((signature.name, signature.key_id))
        if verifier is None:
            continue
        if not verifier.verify(signed, signature.signature):
            raise InvalidSignatureError(
                f"invalid signature for key {signature.name}+{signature.key_id:08x}")
        verified = True
    if not verified:
        raise UnknownKeyError("the note carries no signature by a known key")
    return note


def _parse_signature(line: str) -> Signature:
    name, _, encoded = line.removeprefix(SIGNATURE_PREFIX).partition(" ")
    blob = _b64decode(encoded)
    if (not line.startswith(SIGNATURE_PREFIX) or not valid_key_name(name) or blob is None
            or len(blob) < 5):
        raise MalformedNoteError(f"not a signature line: {line!r}")
    return Signature(name, int.from_bytes(blob[:4], "big"), blob[4:])


def _key_bytes(name: str, key_id: str, encoded: str) -> bytes:
    """The 32 key bytes of a key string's parts, once they are well formed."""
    key = _b64decode(encoded)
    if not valid_key_name(name) or not _KEY_ID.fullmatch(key_id) or not key:
        raise KeyFormatError("a key string is <name>+<8 hex digits>+<base64 key>")
    if key[0] != ED25519:
        raise KeyFormatError(f"unknown key type {key[0]:#04x}")
    if len(key) != 1 + KEY_SIZE:
        raise KeyFormatError("an Ed25519 key is 32 bytes")
    return key[1:]


def _check_key_id(key_id: str, verifier: Verifier) -> None:
    """A key string's key id must be the one its name and key give (signed-note "Verifier keys")."""
    if verifier.key_id != int(key_id, 16):
        raise KeyFormatError("the key id does not match the key")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _b64decode(text: str) -> bytes | None:
    try:
        return base64.b64decode(text, validate=True) if text else None
    except ValueError:  # binascii.Error, or characters outside ASCII
        return None


def _encodes(text: str) -> bool:
    """Whether the text is valid UTF-8 once encoded (no lone surrogates)."""
    try:
        text.encode()
    except UnicodeError:
        return False
    return True
