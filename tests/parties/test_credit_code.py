"""The unified social credit code (GB 32100-2015): charset, length, structure and check
character."""

from __future__ import annotations

import pytest

from app.parties.credit_code import (
    CHARSET,
    check_character,
    is_valid_credit_code,
    normalize_credit_code,
)

# The valid examples of docs/DOMAIN.md.
VALID_CODES = ["91350100M000100Y43", "911100001000079554", "91110000802100433B"]


@pytest.mark.parametrize("code", VALID_CODES)
def test_the_published_examples_are_valid(code):
    assert is_valid_credit_code(code)


@pytest.mark.parametrize("code", VALID_CODES)
def test_the_check_character_of_the_published_examples_is_their_last_character(code):
    assert check_character(code[:17]) == code[17]


def test_check_character_wraps_31_to_zero():
    # Σ ≡ 0 (mod 31) gives 31 - 0 = 31, which the standard writes as 0.
    assert check_character("0" * 17) == "0"
    assert is_valid_credit_code("91310000MA00000100")


def test_zeros_throughout_fit_their_check_character_but_are_no_code():
    assert check_character("0" * 17) == "0"
    assert not is_valid_credit_code("0" * 18)


@pytest.mark.parametrize("code", VALID_CODES)
def test_every_other_check_character_is_refused(code):
    wrong = [char for char in CHARSET if char != code[17]]
    assert len(wrong) == 30
    for char in wrong:
        assert not is_valid_credit_code(code[:17] + char), code[:17] + char


@pytest.mark.parametrize("code", VALID_CODES)
def test_a_changed_body_character_breaks_the_check(code):
    changed = code[:5] + ("1" if code[5] != "1" else "2") + code[6:]
    assert not is_valid_credit_code(changed)


@pytest.mark.parametrize("letter", ["I", "O", "S", "V", "Z"])
@pytest.mark.parametrize("position", [0, 8, 16, 17])
def test_letters_outside_the_charset_are_refused_wherever_they_stand(letter, position):
    code = "91350100M000100Y43"
    forged = code[:position] + letter + code[position + 1:]
    assert len(forged) == 18
    # Refused, not raised: the charset is checked before the check character is computed.
    assert is_valid_credit_code(forged) is False


@pytest.mark.parametrize("letter", ["I", "O", "S", "V", "Z"])
def test_the_charset_leaves_out_the_confusable_letters(letter):
    assert letter not in CHARSET
    assert len(CHARSET) == 31


@pytest.mark.parametrize("code", [
    "",
    "91350100M000100Y4",  # 17
    "91350100M000100Y433",  # 19
    "91350100M000100Y43" * 2,
    "1",
])
def test_codes_of_the_wrong_length_are_refused(code):
    assert not is_valid_credit_code(code)


def test_a_valid_body_with_its_check_character_but_one_character_short_is_refused():
    first17 = "91350100M000100Y4"
    assert not is_valid_credit_code(first17[1:] + check_character(first17))


def test_lower_case_and_surrounding_spaces_are_normalised_to_a_valid_code():
    assert normalize_credit_code("  91350100m000100y43\n") == "91350100M000100Y43"
    assert is_valid_credit_code(normalize_credit_code("91110000802100433b"))


def test_validation_itself_expects_the_normalised_form():
    assert not is_valid_credit_code("91350100m000100y43")
    assert not is_valid_credit_code(" 91350100M000100Y43")
