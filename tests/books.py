"""The books checked in tests: every account against the rows it stands for."""

from __future__ import annotations

from hub.core.db import get_engine, unit_of_work
from hub.loans import books as loan_books
from hub.loans import fund_views
from hub.medical import books
from hub.settings import Settings

_UNEXPLAINED = "no rule of the books names this account"


def _explained_by_loans(account: str) -> bool:
    return loan_books.explains(account) or fund_views.FAMILY.fullmatch(account) is not None


def books_agree(settings: Settings) -> bool:
    """True when the ledger and the lines agree with the business rows; else fails
    the test with the discrepancies (a bool, so `assert books_agree(s)` reads well).

    Both programmes' checks: the medical ones report every account they do not
    know, so those the loans' checks explain (loans, the fund, subsidies) are
    left to them."""
    with unit_of_work(get_engine(settings), write=False) as session:
        found = [
            d
            for d in books.discrepancies(session)
            if not (d.rule == _UNEXPLAINED and _explained_by_loans(d.subject))
        ]
        found += loan_books.discrepancies(session)
        found += fund_views.discrepancies(session)
    assert not found, "the books disagree with the business:\n" + books.describe(found)
    return True
