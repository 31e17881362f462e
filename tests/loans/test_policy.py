"""The fund, recoveries, subsidies and the overdue ratio (CONTRACT.md §4)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hub.loans.policy import (
    DEFAULT_SHARE_BPS,
    claim_amount,
    offers_paused,
    recovery_share,
    subsidy_amount,
    subsidy_eligible,
)


def test_a_claim_is_the_share_rounded_down() -> None:
    assert DEFAULT_SHARE_BPS == 5_000
    assert claim_amount(1_000_001, 10**12) == 500_000  # 500,000.5 → down
    assert claim_amount(3, 10**12) == 1
    assert claim_amount(1, 10**12) == 0
    assert claim_amount(1_000_000, 10**12, share_bps=3_333) == 333_300
    assert claim_amount(999, 10**12, share_bps=3_333) == 332  # 332.9667


def test_a_claim_is_capped_by_the_fund() -> None:
    assert claim_amount(1_000_000, 400_000) == 400_000
    assert claim_amount(1_000_000, 500_000) == 500_000
    assert claim_amount(1_000_000, 0) == 0
    assert claim_amount(1_000_000, -5) == 0


def test_a_claim_refuses_nonsense() -> None:
    with pytest.raises(ValueError):
        claim_amount(-1, 100)
    with pytest.raises(ValueError):
        claim_amount(100, 100, share_bps=10_001)


def test_recoveries_go_back_in_the_proportion_the_fund_bore() -> None:
    # The fund paid half of 1,000,000.
    assert recovery_share(0, 200_001, 500_000, 1_000_000) == 100_000
    # Split in two, the fund gets the same as in one: the lost half fen comes back later.
    first = recovery_share(0, 1, 500_000, 1_000_000)
    second = recovery_share(1, 200_000, 500_000, 1_000_000)
    assert (first, second) == (0, 100_000)
    # Capped by the balance: the fund paid 400,000 of 1,000,000, so it gets 40%.
    assert recovery_share(0, 100_000, 400_000, 1_000_000) == 40_000
    # Never more than it paid, however much is recovered (interest, costs).
    assert recovery_share(0, 3_000_000, 500_000, 1_000_000) == 500_000
    assert recovery_share(1_000_000, 5, 500_000, 1_000_000) == 0
    assert recovery_share(0, 100, 0, 1_000_000) == 0  # an empty fund paid nothing
    assert recovery_share(0, 100, 0, 0) == 0


@given(
    unpaid=st.integers(1, 10**10),
    share=st.integers(0, 10_000),
    balance=st.integers(0, 10**10),
    recoveries=st.lists(st.integers(0, 10**9), max_size=8),
)
def test_recovery_shares_add_up_whatever_the_split(
    unpaid: int, share: int, balance: int, recoveries: list[int]
) -> None:
    claimed = claim_amount(unpaid, balance, share)
    assert 0 <= claimed <= min(balance, unpaid)
    before, returned = 0, 0
    for amount in recoveries:
        returned += recovery_share(before, amount, claimed, unpaid)
        before += amount
    assert returned == min(claimed, before * claimed // unpaid)


def test_the_subsidy_is_one_point_of_the_rate() -> None:
    # 4.35%: 43,500 fen of interest carries 10,000 fen of subsidy.
    assert subsidy_amount(43_500, 435) == 10_000
    assert subsidy_amount(43_499, 435) == 9_999  # 9,999.77 → down
    assert subsidy_amount(1, 435) == 0
    assert subsidy_amount(100_000, 100) == 100_000  # exactly one point: all of it
    assert subsidy_amount(100_000, 80) == 100_000  # below one point: never more than it
    assert subsidy_amount(100_000, 0) == 0  # an interest-free loan
    assert subsidy_amount(0, 435) == 0
    assert subsidy_amount(43_500, 435, points_bps=50) == 5_000


@given(st.integers(0, 10**10), st.integers(1, 3600))
def test_the_subsidy_never_exceeds_the_interest(interest: int, bps: int) -> None:
    amount = subsidy_amount(interest, bps)
    assert 0 <= amount <= interest
    assert amount == interest * min(100, bps) // bps


def test_subsidies_go_to_grades_a_and_b_that_are_not_dishonest() -> None:
    assert subsidy_eligible("A", dishonest=False)
    assert subsidy_eligible("B", dishonest=False)
    assert not subsidy_eligible("C", dishonest=False)
    assert not subsidy_eligible("D", dishonest=False)
    assert not subsidy_eligible("A", dishonest=True)
    assert subsidy_eligible("C", dishonest=False, grades={"A", "B", "C"})


def test_offers_pause_at_five_percent_overdue() -> None:
    assert offers_paused(5_000, 100_000)  # exactly 5%
    assert not offers_paused(4_999, 100_000)
    assert offers_paused(1, 20)
    assert not offers_paused(1, 21)
    assert not offers_paused(0, 0)  # nothing lent yet
    assert not offers_paused(999, 100_000, stop_bps=1_000)
    assert offers_paused(10_000, 100_000, stop_bps=1_000)
