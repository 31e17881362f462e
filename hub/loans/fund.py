"""The risk-compensation fund (CONTRACT.md §4): the operator's deposits, claims on
defaulted loans, and the fund's share of what banks recover after a claim.

The fund's balance is the ledger's `fund:cash`: deposits in, claims out,
recovered shares back in.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from hub.core import ledger
from hub.loans import accounts, policy
from models.loans.tables import FundClaim, Loan


def share_recovery(
    session: Session, loan: Loan, recovered_fen: int, ref: str, now: datetime
) -> int:
    """The fund's part of `recovered_fen` that the loan's bank recovered after a claim
    (0 when the fund paid no claim on the loan); posted to the ledger under `ref`."""
    claim = session.scalar(select(FundClaim).where(FundClaim.loan_id == loan.id).with_for_update())
    if claim is None or recovered_fen <= 0:
        return 0
    share = policy.recovery_share(
        claim.recovered_fen, recovered_fen, claim.amount_fen, claim.unpaid_principal_fen
    )
    claim.recovered_fen += recovered_fen
    claim.returned_fen += share
    ledger.transfer(
        session,
        "fund_recovery",
        ref,
        accounts.FUND_CASH,
        accounts.bank_fund_returns(loan.bank_id),
        share,
        now,
    )
    return share
