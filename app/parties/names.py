"""Party names: what a name may hold, the form it is stored in, and when two are the same.

A party is known by its name on the blacklist, in payout files and on every listing, so a name
must show what it holds: control and format characters (bidirectional overrides, zero-width
spaces and joiners, soft hyphens, tags) and letters that show as nothing are refused, and two
names that read alike (the same once NFKC-normalised, case-folded and spaced alike) are one.
"""

from __future__ import annotations

import hashlib
import unicodedata

from app.parties.errors import InvalidPartyName

MAX_LENGTH = 200
# Control, format, surrogate, private-use and unassigned characters, and line and paragraph
# separators: none is seen where it stands, and some reorder the text around them.
_HIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})
# Letters and marks that are drawn as nothing (Hangul fillers, the combining grapheme joiner,
# Khmer's inherent vowels, the blank Braille pattern).
_BLANK_CHARACTERS = frozenset("\u034f\u115f\u1160\u17b4\u17b5\u2800\u3164\uffa0")


def _hidden(char: str) -> bool:
    point = ord(char)
    return (unicodedata.category(char) in _HIDDEN_CATEGORIES or char in _BLANK_CHARACTERS
            or 0xFE00 <= point <= 0xFE0F or 0xE0100 <= point <= 0xE01EF)  # variation selectors


def clean_party_name(name: str) -> str:
    """The name as stored: trimmed, each run of spaces one space; InvalidPartyName when it
    holds a hidden character, no letter or digit, or more than 200 characters."""
    hidden = sorted({f"U+{ord(char):04X}" for char in name if _hidden(char)})
    if hidden:
        _refuse("A name may not hold invisible, control or text-direction characters "
                f"({', '.join(hidden)}).")
    cleaned = " ".join(name.split())
    if not any(unicodedata.category(char)[0] in "LN" for char in cleaned):
        _refuse("A name needs at least one letter or digit.")
    if len(cleaned) > MAX_LENGTH:
        _refuse(f"A name has at most {MAX_LENGTH} characters.")
    return cleaned


def name_key(name: str) -> str:
    """What two names that read alike share: the SHA-256 of the name NFKC-normalised,
    case-folded and spaced alike (a fixed width for the unique index)."""
    folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", name).casefold())
    return hashlib.sha256(" ".join(folded.split()).encode()).hexdigest()


def _refuse(detail: str) -> None:
    raise InvalidPartyName(detail, errors={"name": [detail]})
