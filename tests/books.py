"""The books checked in tests: every account against the rows it stands for."""

from __future__ import annotations

from hub.core.db import get_engine, unit_of_work
from hub.loans import books as loan_books
from hub.medical import books
from hub.settings import Settings

_UNEXPLAINED = "no rule of the books names this account"


def books_agree(settings: Settings) -> bool:
    """True when the ledger and the lines agree with the business rows; else fails
    the test with the discrepancies (a bool, so `assert books_agree(s)` reads well).

    Both programmes' checks: the medical ones report every account they do not
    know, so those the loans' checks explain are left to them."""
    with unit_of_work(get_engine(settings), write=False) as session:
        found = [
            d
            for d in books.discrepancies(session)
            if not (d.rule == _UNEXPLAINED and loan_books.explains(d.subject))
        ]
        found += loan_books.discrepancies(session)
    assert not found, "the books disagree with the business:\n" + books.describe(found)
    return True
