"""The books checked in tests: every account against the rows it stands for."""

from __future__ import annotations

from hub import books
from hub.core.books import describe
from hub.core.db import get_engine, unit_of_work
from hub.settings import Settings


def books_agree(settings: Settings) -> bool:
    """True when the ledger and the lines agree with the business rows; else fails
    the test with the discrepancies (a bool, so `assert books_agree(s)` reads well).
    Both programmes' checks: medical, loans, the fund and subsidies."""
    with unit_of_work(get_engine(settings), write=False) as session:
        found = books.discrepancies(session)
    assert not found, "the books disagree with the business:\n" + describe(found)
    return True


def medical_books_agree(settings: Settings) -> bool:
    """`books_agree` for a test that moves only the medical programme's money: its
    checks, and no account they do not explain (the loans' checks, on empty tables,
    would only cost time in a state machine that asks after every step)."""
    from hub.medical import books as medical

    with unit_of_work(get_engine(settings), write=False) as session:
        found = medical.discrepancies(session)
    assert not found, "the books disagree with the business:\n" + describe(found)
    return True
