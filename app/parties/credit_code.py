"""The unified social credit code (统一社会信用代码, GB 32100-2015) and its check character."""

from __future__ import annotations

CHARSET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)
LENGTH = 18


def check_character(first17: str) -> str:
    """The check character for the first 17 characters of a code."""
    total = sum(CHARSET.index(char) * weight for char, weight in zip(first17, WEIGHTS, strict=True))
    return CHARSET[(31 - total % 31) % 31]


def is_valid_credit_code(code: str) -> bool:
    """True when the code has 18 characters from the charset and the right check character."""
    if len(code) != LENGTH or any(char not in CHARSET for char in code):
        return False
    return check_character(code[:17]) == code[17]


def normalize_credit_code(code: str) -> str:
    """Codes are upper case; people paste them with spaces and lower case."""
    return code.strip().upper()
