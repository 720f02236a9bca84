"""The unified social credit code (统一社会信用代码, GB 32100-2015): its structure and check
character.

1 registration authority, 2 organisation type (which types each authority registers),
3-8 the administrative division of the registering office (GB/T 2260: six digits, the first
two a province, or 10 for the national level), 9-17 the organisation code (GB 11714), 18 the
check character over the first 17.
"""

from __future__ import annotations

CHARSET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)
LENGTH = 18

# Registration authority → the organisation types it registers (GB 32100-2015, table 1).
ORGANISATION_TYPES = {
    "1": "1239",  # establishment offices: organs, public institutions, mass organisations
    "2": "19",  # foreign affairs
    "3": "123459",  # justice: law firms, notaries, legal services, forensics, arbitration
    "4": "19",  # culture
    "5": "1239",  # civil affairs: social organisations, private non-enterprises, foundations
    "6": "129",  # tourism
    "7": "129",  # religious affairs
    "8": "19",  # trade unions
    "9": "123",  # market regulation: enterprises, individual businesses, cooperatives
    "A": "19",  # the Central Military Commission's establishment office
    "N": "1239",  # agriculture: rural collective economic organisations
    "Y": "1",  # other
}
PROVINCES = frozenset({
    "10", "11", "12", "13", "14", "15", "21", "22", "23", "31", "32", "33", "34", "35", "36",
    "37", "41", "42", "43", "44", "45", "46", "50", "51", "52", "53", "54", "61", "62", "63",
    "64", "65", "71", "81", "82"})


def check_character(first17: str) -> str:
    """The check character for the first 17 characters of a code."""
    total = sum(CHARSET.index(char) * weight for char, weight in zip(first17, WEIGHTS, strict=True))
    return CHARSET[(31 - total % 31) % 31]


def is_valid_credit_code(code: str) -> bool:
    """True when the code has 18 characters from the charset, the structure of GB 32100-2015
    and the right check character."""
    if len(code) != LENGTH or any(char not in CHARSET for char in code):
        return False
    division, organisation = code[2:8], code[8:16]
    if (code[1] not in ORGANISATION_TYPES.get(code[0], "")
            or not division.isdigit() or division[:2] not in PROVINCES
            or organisation == "0" * len(organisation)):
        return False
    return check_character(code[:17]) == code[17]


def normalize_credit_code(code: str) -> str:
    """Codes are upper case; people paste them with spaces and lower case."""
    return code.strip().upper()
