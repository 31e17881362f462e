"""What the fund shows: the fund in total, claims as partners list them, the fund's
report for operators, and the books of the fund and of subsidies against the tables.

The books (debits positive), each worked out from the rows:

    fund:cash               deposits - claims + recovered shares returned
    fund:contributions      - deposits
    bank:{B}:fund_claims    the claims bank B was paid
    bank:{B}:fund_returns   - the recovered shares bank B returned to the fund
    subsidies:granted       every subsidy granted
    bank:{B}:subsidies_due  - the subsidies bank B is to pay (or paid) firms
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from hub.core.books import Discrepancy
from hub.core.db import unit_of_work
from hub.core.pagination import Page, newest_first
from hub.loans import accounts, fund
from models.core.tables import LedgerPosting, Partner
from models.loans.tables import FundClaim, FundDeposit, Subsidy

if TYPE_CHECKING:
    from hub.context import HubContext

# The accounts these books explain (ids hold no colon).
FAMILY = re.compile(
    r"fund:(cash|contributions)|subsidies:granted"
    r"|bank:[^:]+:(fund_claims|fund_returns|subsidies_due)"
)


def fund_view(session: Session, share_bps: int) -> dict[str, Any]:
    """`GET /v1/risk-compensation/fund`: balance = deposited - claimed + recovered."""
    t = fund.totals(session)
    return {
        "balance_fen": t.balance_fen,
        "deposited_fen": t.deposited_fen,
        "claimed_fen": t.claimed_fen,
        "recovered_fen": t.recovered_fen,
        "share_bps": share_bps,
    }


def deposit_view(item: FundDeposit) -> dict[str, Any]:
    """A deposit as it answered: the fund's balance just after it."""
    return {"deposit_id": item.id, "balance_fen": item.balance_after_fen}


def claim_view(session: Session, item: FundClaim) -> dict[str, Any]:
    """A claim: the contract's three fields, then how it came about and what came back."""
    return {
        "claim_id": item.id,
        "loan_id": item.loan_id,
        "amount_fen": item.amount_fen,
        "bank_code": session.scalar(select(Partner.code).where(Partner.id == item.bank_id)),
        "unpaid_principal_fen": item.unpaid_principal_fen,
        "share_bps": item.share_bps,
        "recovered_fen": item.recovered_fen,
        "returned_fen": item.returned_fen,
        "created_at": item.created_at,
    }


def claims(
    session: Session, partner_id: str, kind: str, params: Mapping[str, str]
) -> Page[FundClaim]:
    """Claims newest first: every claim for operators, a bank's own for a bank."""
    query = select(FundClaim)
    if kind != "operator":
        query = query.where(FundClaim.bank_id == partner_id)
    return newest_first(session, query, FundClaim.id, params)


def report(session: Session) -> dict[str, Any]:
    """The fund for the operators' artifact: totals, each deposit, each claim (fen)."""
    codes = {pid: code for pid, code in session.execute(select(Partner.id, Partner.code))}
    deposits = session.scalars(select(FundDeposit).order_by(FundDeposit.id)).all()
    claimed = session.scalars(select(FundClaim).order_by(FundClaim.id)).all()
    return {
        "totals": fund.totals(session),
        "deposits": [
            {"reference": d.reference, "amount_fen": d.amount_fen, "at": d.created_at}
            for d in deposits
        ],
        "claims": [
            {
                "loan_id": c.loan_id,
                "bank_code": codes.get(c.bank_id, c.bank_id),
                "unpaid_principal_fen": c.unpaid_principal_fen,
                "amount_fen": c.amount_fen,
                "recovered_fen": c.recovered_fen,
                "returned_fen": c.returned_fen,
            }
            for c in claimed
        ],
    }


def fund_report(ctx: HubContext) -> dict[str, Any]:
    """`report` in a read-only transaction of its own (the flows' artifact)."""
    with unit_of_work(ctx.engine, write=False) as session:
        return report(session)


def explains(account: str) -> bool:
    """Whether `discrepancies` stands behind `account`."""
    return FAMILY.fullmatch(account) is not None


def discrepancies(session: Session) -> list[Discrepancy]:
    """Each account of the fund and of subsidies against the rows; empty when they agree."""
    t = fund.totals(session)
    expected: dict[str, tuple[int, str]] = {
        accounts.FUND_CASH: (t.balance_fen, "deposits - claims + recovered shares"),
        accounts.FUND_CONTRIBUTIONS: (-t.deposited_fen, "- deposits"),
    }
    per_bank = select(
        FundClaim.bank_id, func.sum(FundClaim.amount_fen), func.sum(FundClaim.returned_fen)
    ).group_by(FundClaim.bank_id)
    for bank_id, claimed, returned in session.execute(per_bank):
        expected[accounts.bank_fund_claims(bank_id)] = (int(claimed), "its claims")
        expected[accounts.bank_fund_returns(bank_id)] = (-int(returned), "- shares returned")
    granted = 0
    by_bank = select(Subsidy.bank_id, func.sum(Subsidy.amount_fen)).group_by(Subsidy.bank_id)
    for bank_id, amount in session.execute(by_bank):
        granted += int(amount)
        expected[accounts.bank_subsidies_due(bank_id)] = (-int(amount), "- its subsidies")
    expected[accounts.SUBSIDIES_GRANTED] = (granted, "every subsidy granted")
    balances = _family_balances(session)
    found = []
    for account in sorted(set(balances) | set(expected)):
        want, rule = expected.get(account, (0, "no row stands behind this account"))
        if balances.get(account, 0) != want:
            found.append(Discrepancy(account, balances.get(account, 0), want, rule))
    return found


def _family_balances(session: Session) -> dict[str, int]:
    rows = session.execute(
        select(LedgerPosting.account, func.sum(LedgerPosting.amount_fen))
        .where(
            (LedgerPosting.account.like("fund:%"))
            | (LedgerPosting.account.like("subsidies:%"))
            | (LedgerPosting.account.like("bank:%"))
        )
        .group_by(LedgerPosting.account)
    )
    return {a: int(b) for a, b in rows if FAMILY.fullmatch(a)}
