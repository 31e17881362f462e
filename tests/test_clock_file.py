"""The shared clock file (`hub.core.clock`, CREDITHUB_CLOCK_FILE): how `credithub demo`
moves the clock of every process it starts."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from hub.core import clock

XIAMEN = timezone(timedelta(hours=8))


@pytest.fixture
def clock_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    path = tmp_path / "clock"
    monkeypatch.setenv(clock.CLOCK_FILE_VARIABLE, str(path))
    yield path
    clock.set_now(None)


def test_the_clock_reads_the_file_each_time(clock_file: Path) -> None:
    morning = datetime(2026, 3, 2, 8, 0, tzinfo=XIAMEN)
    clock.write_clock_file(clock_file, morning)
    assert clock.now() == morning and clock.now().tzinfo == UTC
    clock.write_clock_file(clock_file, morning + timedelta(hours=15, minutes=30))
    assert clock.now() == datetime(2026, 3, 2, 15, 30, tzinfo=UTC)  # 23:30 in Xiamen
    assert clock.business_date(clock.now(), "Asia/Shanghai").isoformat() == "2026-03-02"
    assert [p.name for p in clock_file.parent.iterdir()] == ["clock"]  # no partial file left


def test_a_clock_set_in_the_process_comes_first(clock_file: Path) -> None:
    clock.write_clock_file(clock_file, datetime(2026, 3, 2, tzinfo=UTC))
    clock.set_now(datetime(2030, 1, 1, tzinfo=UTC))
    assert clock.now() == datetime(2030, 1, 1, tzinfo=UTC)
    clock.set_now(None)
    assert clock.now() == datetime(2026, 3, 2, tzinfo=UTC)


def test_a_missing_or_bad_clock_file_is_an_error_never_the_wall_clock(clock_file: Path) -> None:
    with pytest.raises(RuntimeError, match="holds no instant"):
        clock.now()
    clock_file.write_text("tomorrow\n")
    with pytest.raises(RuntimeError, match="holds no instant"):
        clock.now()
    clock_file.write_text("2026-03-02T08:00:00\n")
    with pytest.raises(RuntimeError, match="without a time zone"):
        clock.now()
    with pytest.raises(ValueError, match="aware"):
        clock.write_clock_file(clock_file, datetime(2026, 3, 2, 8, 0))


def test_without_the_setting_the_clock_is_the_wall_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(clock.CLOCK_FILE_VARIABLE, raising=False)
    before = datetime.now(UTC)
    assert before <= clock.now() <= datetime.now(UTC)
