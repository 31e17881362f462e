"""The summary of `credithub demo --days N`: a row a simulated day, the checks of the
books at the end, as a table for the operator and as JSON next to the demo's database.
No personal data is in either."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import date, timedelta
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
    loans_overdue: int = 0  # loans that became overdue that morning
    loans_defaulted: int = 0
    subsidies: int = 0  # granted that morning (the 1st of a month)


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


DAILY_UP_TO = 31  # longer runs are shown a row a week


def periods(rows: list[DayRow]) -> list[tuple[str, list[DayRow]]]:
    """The rows to show: a row a day, or for a long run a row a week (Monday to Sunday)."""
    if len(rows) <= DAILY_UP_TO:
        return [(f"{r.day:%Y-%m-%d %a}", [r]) for r in rows]
    weeks: dict[date, list[DayRow]] = {}
    for r in rows:
        weeks.setdefault(r.day - timedelta(days=r.day.weekday()), []).append(r)
    return [(f"{rs[0].day:%m-%d}..{rs[-1].day:%m-%d}", rs) for rs in weeks.values()]


def _total(rows: list[DayRow]) -> Tally:
    total = Tally()
    for r in rows:
        total = total.plus(r.tally)
    return total


def _table(title: str, columns: list[str]) -> Table:
    table = Table(title=title, box=box.SIMPLE_HEAD)
    for column in columns:
        table.add_column(column, justify="left" if column in ("day", "days") else "right")
    return table


def summary_table(summary: Summary) -> Table:
    """Treat first, pay later: enrolments, care, money moved, collections, reconciliation."""
    shown = periods(summary.rows)
    table = _table(
        "credithub demo: treat first, pay later (amounts in yuan)",
        ["day" if len(shown) == len(summary.rows) else "days", "enrolled", "declined",
         "visits", "turned\naway", "captured", "refunded", "repaid", "settled",
         "reminders", "suspended", "open\nmismatches"],
    )  # fmt: skip
    for label, rows in shown:
        t = _total(rows)
        table.add_row(
            label,
            str(t.approved),
            str(t.declined),
            str(t.visits),
            str(t.turned_away),
            yuan(t.captured_fen),
            yuan(t.refunded_fen),
            yuan(t.repaid_fen),
            yuan(sum(r.settled_fen for r in rows)),
            str(sum(r.reminders for r in rows)),
            str(sum(r.suspensions for r in rows)),
            str(rows[-1].open_mismatches),
        )
    return table


def loans_table(summary: Summary) -> Table:
    """Credit-easy loans: applications, loans, money lent and repaid, delinquency, the
    fund's claims and the subsidies granted."""
    shown = periods(summary.rows)
    table = _table(
        "credithub demo: credit-easy loans (amounts in yuan)",
        ["day" if len(shown) == len(summary.rows) else "days", "applied", "offers",
         "not lent", "loans", "lent", "repaid", "overdue", "defaulted", "claims", "subsidies"],
    )  # fmt: skip
    for label, rows in shown:
        t = _total(rows)
        table.add_row(
            label,
            str(t.applications),
            str(t.offers),
            str(t.not_lent),
            str(t.loans),
            yuan(t.lent_fen),
            yuan(t.loan_repaid_fen),
            str(sum(r.loans_overdue for r in rows)),
            str(sum(r.loans_defaulted for r in rows)),
            str(t.claims),
            str(sum(r.subsidies for r in rows)),
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
                "loans_overdue": r.loans_overdue,
                "loans_defaulted": r.loans_defaulted,
                "subsidies": r.subsidies,
            }
            for r in summary.rows
        ],
    }
    path.write_text(json.dumps(content, indent=2))
