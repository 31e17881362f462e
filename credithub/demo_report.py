"""The summary of `credithub demo --days N`: a row a simulated day, the checks of the
books at the end, as a table for the operator and as JSON next to the demo's database.
No personal data is in either."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import date
from pathlib import Path

from rich import box
from rich.table import Table

from hub.core.money import yuan
from simulators.traffic.world import Tally


@dataclass
class DayRow:
    """One simulated day, as the operator's summary shows it."""

    day: date
    tally: Tally
    settled_fen: int = 0
    window_status: str = "none"  # of the window closed that night
    reminders: int = 0
    suspensions: int = 0
    open_mismatches: int = 0


@dataclass
class Summary:
    """The run: which Prefect server, each day, and the end-of-run checks of the books."""

    prefect: str
    rows: list[DayRow] = field(default_factory=list)
    trial_balance_fen: int | None = None
    failures: list[str] = field(default_factory=list)

    @property
    def books_ok(self) -> bool:
        return not self.failures


def summary_table(summary: Summary) -> Table:
    """One row a day: enrolments, care, money moved, collections, reconciliation."""
    table = Table(
        title="credithub demo: one row a simulated day (amounts in yuan)", box=box.SIMPLE_HEAD
    )
    for column in (
        "day",
        "enrolled",
        "declined",
        "visits",
        "turned\naway",
        "captured",
        "refunded",
        "repaid",
        "settled",
        "reminders",
        "suspended",
        "open\nmismatches",
    ):
        table.add_column(column, justify="left" if column == "day" else "right")
    for r in summary.rows:
        t = r.tally
        table.add_row(
            f"{r.day:%Y-%m-%d %a}",
            str(t.approved),
            str(t.declined),
            str(t.visits),
            str(t.turned_away),
            yuan(t.captured_fen),
            yuan(t.refunded_fen),
            yuan(t.repaid_fen),
            yuan(r.settled_fen),
            str(r.reminders),
            str(r.suspensions),
            str(r.open_mismatches),
        )
    return table


def write_summary(path: Path, summary: Summary) -> None:
    """The summary as JSON next to the demo's database (no personal data in it)."""
    content = {
        "prefect": summary.prefect,
        "books_ok": summary.books_ok,
        "trial_balance_fen": summary.trial_balance_fen,
        "failures": summary.failures,
        "days": [
            {
                "day": r.day.isoformat(),
                **asdict(r.tally),
                "settled_fen": r.settled_fen,
                "window_status": r.window_status,
                "reminders": r.reminders,
                "suspensions": r.suspensions,
                "open_mismatches": r.open_mismatches,
            }
            for r in summary.rows
        ],
    }
    path.write_text(json.dumps(content, indent=2))
