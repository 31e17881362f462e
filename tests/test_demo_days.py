"""`credithub demo --days N`: a fast-forwarded world of its own — the parts `up` starts,
as processes on free ports, moved by a shared clock — settled every night, with the
books at zero at the end and no personal data in what it prints or logs."""

from __future__ import annotations

import json
import logging
import re
from collections import Counter
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from credithub.cli import app
from hub.core import clock
from hub.settings import get_settings
from models.medical.tables import SettlementWindow, Visit

# An identity number as a token of its own: request ids are hex, and 18 digits in a row
# turn up inside one every few hundred requests.
ID_NUMBER = re.compile(r"(?<![0-9A-Za-z])\d{17}[\dX](?![0-9A-Za-z])")


def xiamen(instant: datetime) -> datetime:
    return clock.as_utc(instant).astimezone(ZoneInfo("Asia/Shanghai"))


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A CREDITHUB_HOME of its own, with no `up` running in it."""
    monkeypatch.setenv("CREDITHUB_HOME", str(tmp_path))
    monkeypatch.delenv("CREDITHUB_DATABASE_URL", raising=False)
    get_settings.cache_clear()
    yield tmp_path
    get_settings.cache_clear()
    clock.set_now(None)


def test_three_days_settle_each_night_and_the_books_balance(
    home: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    result = CliRunner().invoke(app, ["demo", "--days", "3", "--visits-per-day", "5"])
    assert result.exit_code == 0, result.output
    assert "books balance" in result.output and "its own Prefect server" in result.output

    summary = json.loads((home / "demo-days" / "summary.json").read_text())
    assert summary["books_ok"] and summary["trial_balance_fen"] == 0 and summary["failures"] == []
    days = summary["days"]
    assert len(days) == 3
    assert all(d["day"] in result.output for d in days)  # a table row a day
    assert sum(d["approved"] for d in days) > 0 and sum(d["visits"] for d in days) > 0
    for d in days:
        assert d["window_status"] == "settled"  # settlement with close, every night
        # Every capture and refund of the day falls into that night's window.
        assert d["settled_fen"] == d["captured_fen"] - d["refunded_fen"]
        assert d["open_mismatches"] == 0  # the hospitals' and banks' lists agree
    assert sum(d["repaid_fen"] for d in days) > 0
    # Loans: the channel's firms apply, the banks' desks answer, accepted loans are paid out.
    assert sum(d["applications"] for d in days) == 3 * 2  # --firms-per-day defaults to 2
    assert sum(d["loans"] for d in days) > 0 and sum(d["lent_fen"] for d in days) > 0
    assert "credit-easy loans" in result.output
    demo_home = home / "demo-days"
    assert (demo_home / "credithub.db").exists()
    assert not (home / "credithub.db").exists()  # the hub's own database is left alone
    assert not (home / "up.json").exists()  # nor `up`'s file
    assert (demo_home / "up.json").stat().st_mode & 0o777 == 0o600  # it holds API keys

    # One clock for every process: the API server closed the visits on the simulated
    # days, the flows closed each night's window at 23:30 of its day.
    engine = create_engine(f"sqlite:///{demo_home / 'credithub.db'}")
    with Session(engine) as session:
        opens = session.scalars(select(Visit.opened_at))
        closes = session.scalars(select(Visit.closed_at).where(Visit.closed_at.is_not(None)))
        windows = session.scalars(
            select(SettlementWindow.closed_at).where(SettlementWindow.closed_at.is_not(None))
        )
        opened_by_day = Counter(xiamen(t).date().isoformat() for t in opens)
        close_days = {xiamen(t).date().isoformat() for t in closes}
        nights = sorted(xiamen(t).isoformat(timespec="minutes") for t in windows)
    engine.dispose()
    # Which residents the bureau and banks approve depends on the day (their identity
    # numbers carry a birth date), so a day may see no patient: compare with the desks.
    assert opened_by_day == {d["day"]: d["visits"] for d in days if d["visits"]}
    assert close_days and close_days <= {d["day"] for d in days}
    assert nights == [f"{d['day']}T23:30+08:00" for d in days]

    # The parts ran as `up` runs them, each with its log: no identity number in any.
    logs = {p.name: p.read_text() for p in (demo_home / "logs").glob("*.log")}
    assert {"prefect.log", "api.log", "credit-bureau.log", "hospitals.log"} <= set(logs)
    for text in (result.output, caplog.text, json.dumps(summary), *logs.values()):
        assert not ID_NUMBER.search(text)  # no identity number printed or logged


def test_the_days_must_be_at_least_one(home: Path) -> None:
    result = CliRunner().invoke(app, ["demo", "--days", "0"])
    assert result.exit_code == 2
