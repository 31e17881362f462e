"""The loans' books against the business: each loan's and bank's ledger accounts
checked against the loans, their instalments and their repayments (as
`hub.medical.books` does for the medical programme; the same `Discrepancy`).

What each account holds (debits positive; hub/loans/accounts.py):

    loan:{L}:principal        the loan's outstanding_principal_fen
    bank:{B}:lent             - the principal of the bank's loans paid out
    bank:{B}:loan_receipts    the bank's loan repayments
    bank:{B}:interest_earned  - the interest parts of those repayments

and the rows against each other: a loan's outstanding principal is its
instalments' unpaid principal (the principal paid out less the principal
parts of its repayments, too), its instalments' paid amounts sum to its
repayments, and each repayment's parts sum to its amount.

The fund's and the subsidies' accounts are checked by `hub.loans.fund_views`
(`FAMILIES` lists only the accounts checked here); `hub.books` runs every
programme's checks at once.
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from hub.core import ledger
from hub.core.books import Discrepancy
from hub.loans import accounts
from models.loans.tables import Loan, LoanInstalment, LoanRepayment, LoanStatus

FAMILIES = re.compile(r"loan:[^:]+:principal|bank:[^:]+:(lent|loan_receipts|interest_earned)")


def explains(account: str) -> bool:
    """Whether one of these checks stands behind `account`."""
    return FAMILIES.fullmatch(account) is not None


def discrepancies(session: Session) -> list[Discrepancy]:
    """Every check of the loans' books; empty when they agree with the loans."""
    balances = {a: b for a, b in ledger.trial_balance(session) if explains(a)}
    return [*_ledger(session, balances), *_rows(session)]


def _ledger(session: Session, balances: dict[str, int]) -> list[Discrepancy]:
    expected: dict[str, tuple[int, str]] = {}
    for loan_id, outstanding in session.execute(
        select(Loan.id, Loan.outstanding_principal_fen).where(Loan.status != LoanStatus.APPROVED)
    ):
        expected[accounts.loan_principal(loan_id)] = (outstanding, "the loan's outstanding")
    for bank_id, lent in _sums(
        session,
        select(Loan.bank_id, func.sum(Loan.principal_fen))
        .where(Loan.disbursed_at.is_not(None))
        .group_by(Loan.bank_id),
    ).items():
        expected[accounts.bank_lent(bank_id)] = (-lent, "- the principal of its loans paid out")
    repaid = select(
        LoanRepayment.bank_id,
        func.sum(LoanRepayment.amount_fen),
        func.sum(LoanRepayment.overdue_interest_fen + LoanRepayment.current_interest_fen),
    ).group_by(LoanRepayment.bank_id)
    for bank_id, amount, interest in session.execute(repaid):
        expected[accounts.bank_loan_receipts(bank_id)] = (int(amount), "its loan repayments")
        expected[accounts.bank_interest_earned(bank_id)] = (
            -int(interest),
            "- the interest in its loan repayments",
        )
    found = []
    for account in sorted(set(balances) | set(expected)):
        want, rule = expected.get(account, (0, "no loan or repayment stands behind it"))
        if balances.get(account, 0) != want:
            found.append(Discrepancy(account, balances.get(account, 0), want, rule))
    return found


def _rows(session: Session) -> list[Discrepancy]:
    """The loans against their instalments and repayments, and each repayment's parts."""
    unpaid_principal = _sums(
        session,
        select(
            LoanInstalment.loan_id,
            func.sum(
                LoanInstalment.principal_fen
                - case(
                    (
                        LoanInstalment.paid_fen > LoanInstalment.interest_fen,
                        LoanInstalment.paid_fen - LoanInstalment.interest_fen,
                    ),
                    else_=0,
                )
            ),
        ).group_by(LoanInstalment.loan_id),
    )
    paid = _sums(
        session,
        select(LoanInstalment.loan_id, func.sum(LoanInstalment.paid_fen)).group_by(
            LoanInstalment.loan_id
        ),
    )
    principal_part = (
        LoanRepayment.overdue_principal_fen
        + LoanRepayment.current_principal_fen
        + LoanRepayment.early_principal_fen
    )
    repaid = {
        loan_id: (int(amount), int(principal))
        for loan_id, amount, principal in session.execute(
            select(
                LoanRepayment.loan_id,
                func.sum(LoanRepayment.amount_fen),
                func.sum(principal_part),
            ).group_by(LoanRepayment.loan_id)
        )
    }
    found: list[Discrepancy] = []
    for loan_id, principal, outstanding, status in session.execute(
        select(Loan.id, Loan.principal_fen, Loan.outstanding_principal_fen, Loan.status)
    ):
        if status == LoanStatus.APPROVED:
            rules = [("outstanding_principal_fen", outstanding, 0, "nothing is owed before payout")]
        else:
            amount, principal_repaid = repaid.get(loan_id, (0, 0))
            rules = [
                (
                    "outstanding_principal_fen",
                    outstanding,
                    unpaid_principal.get(loan_id, 0),
                    "its instalments' unpaid principal",
                ),
                (
                    "outstanding_principal_fen",
                    outstanding,
                    principal - principal_repaid,
                    "its principal less the principal parts of its repayments",
                ),
                ("instalments' paid_fen", paid.get(loan_id, 0), amount, "its repayments' sum"),
            ]
        found += [
            Discrepancy(f"loans[{loan_id}].{column}", stored, want, rule)
            for column, stored, want, rule in rules
            if stored != want
        ]
    parts = LoanRepayment.overdue_interest_fen + LoanRepayment.current_interest_fen + principal_part
    for repayment_id, amount, total in session.execute(
        select(LoanRepayment.id, LoanRepayment.amount_fen, parts).where(
            LoanRepayment.amount_fen != parts
        )
    ):
        found.append(
            Discrepancy(
                f"loan_repayments[{repayment_id}].amount_fen",
                int(amount),
                int(total),
                "the sum of its allocation's parts",
            )
        )
    return found


def _sums(session: Session, query: Any) -> dict[Any, int]:
    return {key: int(total or 0) for key, total in session.execute(query)}
