"""The books against the business, the shared part: what a disagreement is, and
how one is described. Each programme checks its own accounts against its own
rows (`hub.medical.books`, `hub.loans.books`, `hub.loans.fund_views`);
`hub.books` runs them all and reports any account no programme explains."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

UNEXPLAINED = "no rule of the books names this account"


@dataclass(frozen=True)
class Discrepancy:
    """One figure that disagrees with what the rows say it must be."""

    subject: str  # the ledger account, or the stored column, that disagrees
    found_fen: int
    expected_fen: int
    rule: str  # what the expected figure is

    def __str__(self) -> str:
        return f"{self.subject} is {self.found_fen} fen, not {self.expected_fen}: {self.rule}"


def describe(found: Iterable[Discrepancy]) -> str:
    """The discrepancies one to a line, for an assertion message or a report."""
    return "\n".join(str(d) for d in found)
