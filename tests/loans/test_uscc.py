"""Firm codes (GB 32100-2015): alphabet, check character, letter-first codes, masking."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from stdnum.cn import uscc as stdnum_uscc

from hub.core.uscc import ALPHABET, check_character, mask_uscc, normalize_uscc

# python-stdnum's own example, a real firm's code.
REAL = "91110000600037341L"
bodies = st.text(alphabet=ALPHABET, min_size=17, max_size=17)


def with_check(body: str) -> str:
    """A code completed by python-stdnum's check character (an independent oracle)."""
    return body + stdnum_uscc.calc_check_digit(body)


def test_a_real_code_is_valid_and_upper_cased() -> None:
    assert normalize_uscc(REAL) == REAL
    assert normalize_uscc(REAL.lower()) == REAL


@pytest.mark.parametrize(
    "body",
    [
        "N2350200MA2Y3K4Q1",  # agriculture department: rural collective
        "Y1350203MA8RWTB2H",  # other organisations
        "A1110000600037341",  # the letter stdnum's own doc refuses
        "51350200MA2Y3K4Q1",  # civil affairs: social organisation
    ],
)
def test_letter_first_and_other_authorities_are_valid(body: str) -> None:
    code = with_check(body)
    assert normalize_uscc(code) == code
    assert normalize_uscc(code.lower()) == code
    if not body[0].isdigit():
        assert not stdnum_uscc.is_valid(code)  # why stdnum is not used


@pytest.mark.parametrize("code", [REAL, with_check("N2350200MA2Y3K4Q1"), with_check("Y" * 17)])
def test_every_wrong_check_character_is_refused(code: str) -> None:
    wrong = [c for c in ALPHABET if c != code[-1]]
    assert len(wrong) == 30
    for char in wrong:
        assert normalize_uscc(code[:17] + char) is None


def test_check_character_31_is_written_0() -> None:
    # Find bodies whose sum is divisible by 31: check "0", not "Y" or an index error.
    body = next(b for b in (f"9135020{n:010d}" for n in range(1000)) if check_character(b) == "0")
    assert stdnum_uscc.calc_check_digit(body) == "0"
    assert normalize_uscc(body + "0") == body + "0"


@pytest.mark.parametrize(
    "text",
    [
        "",
        REAL[:17],
        REAL + "0",
        f" {REAL}",
        f"{REAL} ",
        f"{REAL[:8]}-{REAL[8:]}",
        "I1110000600037341L",  # I, O, Z, S, V are not in the alphabet
        REAL[:9] + "O" + REAL[10:],
        REAL[:9] + "Z" + REAL[10:],
        REAL[:9] + "S" + REAL[10:],
        REAL[:9] + "V" + REAL[10:],
        "９1110000600037341L",  # a full-width digit
        "ﬀ" + REAL[2:],  # a ligature that upper-cases to two letters
        REAL[:17] + "\n",
    ],
)
def test_malformed_codes_are_refused(text: str) -> None:
    assert normalize_uscc(text) is None


@given(bodies)
def test_our_check_character_is_stdnum_s(body: str) -> None:
    code = with_check(body)
    assert check_character(body) == code[-1]
    assert normalize_uscc(code) == code
    if body[:8].isdigit():  # the codes stdnum accepts, it agrees on
        assert stdnum_uscc.is_valid(code)


@given(bodies, st.sampled_from(ALPHABET))
def test_a_code_is_valid_exactly_when_its_check_character_matches(body: str, last: str) -> None:
    assert (normalize_uscc(body + last) is not None) == (stdnum_uscc.calc_check_digit(body) == last)


def test_check_character_wants_a_body_of_the_alphabet() -> None:
    for body in ("", "9" * 16, "9" * 18, "I" * 17):
        with pytest.raises(ValueError):
            check_character(body)


def test_masked_as_identity_numbers_are() -> None:
    assert mask_uscc(REAL) == "9111**********341L"
