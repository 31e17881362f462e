"""The loans programme's ledger accounts (debits positive; see `hub.core.ledger`).

loan:{L}:principal        the firm owes the bank loan L's unpaid principal (Dr)
bank:{B}:lent             what bank B has paid out in loans (Cr)
bank:{B}:loan_receipts    what firms repaid bank B (Dr)
bank:{B}:interest_earned  the interest in those repayments (Cr)
fund:cash                 the risk-compensation fund's money: its balance (Dr)
fund:contributions        what the operator put into the fund (Cr)
bank:{B}:fund_claims      what the fund paid bank B for defaulted loans (Dr)
bank:{B}:fund_returns     bank B's recoveries shared back to the fund (Cr)
subsidies:granted         interest subsidies the programme granted (Dr)
bank:{B}:subsidies_due    subsidies bank B is to pay firms for the programme (Cr)
"""

from __future__ import annotations


def loan_principal(loan_id: str) -> str:
    return f"loan:{loan_id}:principal"


def bank_lent(bank_id: str) -> str:
    return f"bank:{bank_id}:lent"


def bank_loan_receipts(bank_id: str) -> str:
    return f"bank:{bank_id}:loan_receipts"


def bank_interest_earned(bank_id: str) -> str:
    return f"bank:{bank_id}:interest_earned"


FUND_CASH = "fund:cash"
FUND_CONTRIBUTIONS = "fund:contributions"
SUBSIDIES_GRANTED = "subsidies:granted"


def bank_fund_claims(bank_id: str) -> str:
    return f"bank:{bank_id}:fund_claims"


def bank_fund_returns(bank_id: str) -> str:
    return f"bank:{bank_id}:fund_returns"


def bank_subsidies_due(bank_id: str) -> str:
    return f"bank:{bank_id}:subsidies_due"
