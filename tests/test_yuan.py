"""Amounts for people: integer fen shown as yuan with two decimals, exactly."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hub.core.money import yuan, yuan_or_dash


@pytest.mark.parametrize(
    ("fen", "text"),
    [
        (0, "0.00"),
        (5, "0.05"),
        (-5, "-0.05"),
        (-100, "-1.00"),
        (123456, "1,234.56"),
        (-123456, "-1,234.56"),
        (100_000_000, "1,000,000.00"),
        (10**12, "10,000,000,000.00"),  # the largest amount the contract allows
        (2**53 + 1, "90,071,992,547,409.93"),  # a float would lose the last fen here
    ],
)
def test_known_amounts(fen: int, text: str) -> None:
    assert yuan(fen) == text


@given(st.integers(min_value=-(10**15), max_value=10**15))
def test_every_amount_reads_back_exactly(fen: int) -> None:
    text = yuan(fen)
    assert Decimal(text.replace(",", "")) == Decimal(fen) / 100
    assert text.split(".")[1].isdigit() and len(text.split(".")[1]) == 2


def test_only_integer_fen_is_formatted() -> None:
    for wrong in (1.5, "100", True, Decimal(1)):
        with pytest.raises(TypeError):
            yuan(wrong)  # type: ignore[arg-type]


def test_a_missing_amount_is_a_dash() -> None:
    assert yuan_or_dash(None) == "—"
    assert yuan_or_dash(-1) == "-0.01"
