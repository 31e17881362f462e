"""The programme's money rules (CONTRACT.md §4): the risk-compensation fund, recoveries,
interest subsidies, and the overdue ratio that stops new offers.

All amounts are integer fen; every division rounds down to the fen (in the
firm's or the bank's disfavour by at most a fen, never in the fund's):

- **claim** on a defaulted loan: ``floor(unpaid principal × share_bps / 10000)``,
  no more than the fund's balance (and nothing from an empty or negative fund).
- **recoveries** after a claim go back to the fund in the proportion the fund
  bore: ``claimed / unpaid principal at the claim`` — the share, or less when
  the balance capped the claim. Worked out on the running total of recoveries
  (``floor(total × claimed / unpaid)`` less what went back before), so the fund
  gets the same whether the bank recovers in one payment or many; never more
  than it paid out.
- **subsidy** for a month: ``floor(interest paid in the month × min(points_bps,
  annual_rate_bps) / annual_rate_bps)`` — one percentage point of the rate by
  default, never more than the interest; to firms of grade A or B (settings)
  that are not dishonest.
- **offers paused** while overdue principal / outstanding principal is at
  least 5% (settings; integer comparison, no rounding). With nothing
  outstanding the ratio is 0.
"""

from __future__ import annotations

from collections.abc import Collection

BPS = 10_000
DEFAULT_SHARE_BPS = 5_000  # the fund's share of a default
DEFAULT_SUBSIDY_POINTS_BPS = 100  # one percentage point of the rate
DEFAULT_SUBSIDY_GRADES: frozenset[str] = frozenset({"A", "B"})
DEFAULT_OVERDUE_STOP_BPS = 500  # 5%


def claim_amount(
    unpaid_principal_fen: int, fund_balance_fen: int, share_bps: int = DEFAULT_SHARE_BPS
) -> int:
    """What the fund pays the bank on a defaulted loan."""
    _not_negative(unpaid_principal_fen=unpaid_principal_fen)
    if not 0 <= share_bps <= BPS:
        raise ValueError("share_bps is between 0 and 10000")
    return min(unpaid_principal_fen * share_bps // BPS, max(0, fund_balance_fen))


def recovery_share(
    recovered_before_fen: int,
    recovered_fen: int,
    claimed_fen: int,
    unpaid_principal_at_claim_fen: int,
) -> int:
    """The fund's part of a recovery of `recovered_fen`, after `recovered_before_fen` earlier."""
    _not_negative(
        recovered_before_fen=recovered_before_fen,
        recovered_fen=recovered_fen,
        claimed_fen=claimed_fen,
    )
    if unpaid_principal_at_claim_fen < 1:
        return 0  # nothing was unpaid, so the fund paid nothing to share in
    if claimed_fen > unpaid_principal_at_claim_fen:
        raise ValueError("a claim is never more than the unpaid principal")

    def returned(total: int) -> int:
        return min(claimed_fen, total * claimed_fen // unpaid_principal_at_claim_fen)

    return returned(recovered_before_fen + recovered_fen) - returned(recovered_before_fen)


def subsidy_amount(
    interest_paid_fen: int, annual_rate_bps: int, points_bps: int = DEFAULT_SUBSIDY_POINTS_BPS
) -> int:
    """The month's interest subsidy on a loan (0 on an interest-free loan)."""
    _not_negative(interest_paid_fen=interest_paid_fen, points_bps=points_bps)
    if annual_rate_bps <= 0:
        return 0
    return interest_paid_fen * min(points_bps, annual_rate_bps) // annual_rate_bps


def subsidy_eligible(
    grade: str, dishonest: bool, grades: Collection[str] = DEFAULT_SUBSIDY_GRADES
) -> bool:
    """Whether the firm gets the month's subsidy (its grade and record at the time)."""
    return grade in grades and not dishonest


def offers_paused(
    overdue_principal_fen: int,
    outstanding_principal_fen: int,
    stop_bps: int = DEFAULT_OVERDUE_STOP_BPS,
) -> bool:
    """Whether the programme's overdue ratio stops new applications being offered."""
    _not_negative(overdue=overdue_principal_fen, outstanding=outstanding_principal_fen)
    if outstanding_principal_fen == 0:
        return False
    return overdue_principal_fen * BPS >= stop_bps * outstanding_principal_fen


def _not_negative(**amounts: int) -> None:
    for name, value in amounts.items():
        if value < 0:
            raise ValueError(f"{name} is not negative")
