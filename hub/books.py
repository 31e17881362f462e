"""The hub's books, both programmes at once: every check of every ledger account
against the rows it stands for, and any account that no programme explains (a
posting to a misnamed account). What `credithub demo` and the tests assert."""

from __future__ import annotations

from sqlalchemy.orm import Session

from hub.context import HubContext
from hub.core.books import UNEXPLAINED, Discrepancy, describe
from hub.core.db import unit_of_work
from hub.loans import books as loans
from hub.loans import fund_views
from hub.medical import books as medical


def discrepancies(session: Session) -> list[Discrepancy]:
    """Every disagreement of the books with the business; empty when they agree."""
    return [
        *medical.checks(session),
        *loans.discrepancies(session),
        *fund_views.discrepancies(session),
        *unexplained(session),
    ]


def unexplained(session: Session) -> list[Discrepancy]:
    explained = (medical.explains, loans.explains, fund_views.explains)
    return [
        Discrepancy(account, amount, 0, UNEXPLAINED)
        for account, amount in medical.balances(session).items()
        if not any(explains(account) for explains in explained)
    ]


def described(ctx: HubContext) -> list[str]:
    """Use case: the discrepancies, one description each (the demo's end-of-run check)."""
    with unit_of_work(ctx.engine, write=False) as session:
        found = discrepancies(session)
    return describe(found).splitlines() if found else []
