"""`credithub up`'s supervisor: the order it stops the parts in, and what up.json says.

The parts are stood in for by small processes that note when they are told to
stop, so the order is the one `stop` really follows (no Prefect server needed).
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from credithub import supervisor
from credithub.supervisor import Part, plan, stop, up_file_content, with_demo_systems
from hub.settings import Settings

# Appends its name to the log when SIGTERM arrives, after `linger` seconds' work.
_PART = """
import signal, sys, time
name, log, linger = sys.argv[1], sys.argv[2], float(sys.argv[3])
def on_term(*_):
    time.sleep(linger)
    with open(log, "a") as f:
        f.write(name + "\\n")
    sys.exit(0)
signal.signal(signal.SIGTERM, on_term if linger >= 0 else signal.SIG_IGN)
open(log + "." + name, "w").close()
while True:
    time.sleep(0.05)
"""


def _settings(tmp_path: Path) -> Settings:
    return with_demo_systems(Settings(home=tmp_path / "home"))


def _parts(tmp_path: Path) -> list[Part]:
    ports = {"prefect": 4200, "bureau": 8101}
    return plan(_settings(tmp_path), ports, tmp_path / "up.json")


def _start_stand_ins(parts: list[Part], log: Path, linger: dict[str, float]) -> None:
    for part in parts:
        part.process = subprocess.Popen(
            [sys.executable, "-c", _PART, part.name, str(log), str(linger.get(part.name, 0))],
            start_new_session=True,
        )
    for part in parts:  # each has its SIGTERM handler in place
        while not Path(f"{log}.{part.name}").exists():
            assert part.process is not None and part.process.poll() is None
            time.sleep(0.05)


def test_parts_stop_in_order_the_runner_first_the_prefect_server_last(tmp_path: Path) -> None:
    parts = _parts(tmp_path)
    names = [p.name for p in parts]
    assert names[0] == "prefect" and names[-1] == "flows"  # started: Prefect first, flows last
    log = tmp_path / "stopped.log"
    # The runner takes a while to stop its runs: nothing else may stop meanwhile.
    _start_stand_ins(parts, log, linger={"flows": 1.0})
    stop(parts)
    stopped = log.read_text().split()
    assert sorted(stopped) == sorted(names)
    stand_ins = {"credit-bureau", "bank-XMBANK", "bank-XMRCB"} & set(names)
    assert stopped[0] == "flows" and stopped[1] == "hospitals"
    assert set(stopped[2 : 2 + len(stand_ins)]) == stand_ins
    assert stopped[-2:] == ["api", "prefect"]
    assert all(p.process is not None and p.process.returncode == 0 for p in parts)


def test_a_part_that_ignores_sigterm_is_killed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(supervisor, "DEFAULT_GRACE_S", 0.5)
    parts = [p for p in _parts(tmp_path) if p.name in ("api", "prefect")]
    log = tmp_path / "stopped.log"
    _start_stand_ins(parts, log, linger={"api": -1})  # the API ignores SIGTERM
    stop(parts)
    _prefect, api = parts
    assert api.process is not None and api.process.returncode == -signal.SIGKILL
    assert log.read_text().split() == ["prefect"]  # still stopped, after the API


def test_a_second_ctrl_c_stops_what_is_left_at_once(tmp_path: Path) -> None:
    parts = [p for p in _parts(tmp_path) if p.name in ("flows", "prefect")]
    log = tmp_path / "stopped.log"
    _start_stand_ins(parts, log, linger={"flows": -1})  # would hold up the stop for 30 s
    stop(parts, hurry=lambda: True)
    assert all(p.process is not None and p.process.returncode == -signal.SIGKILL for p in parts)


def test_up_file_gives_base_urls_and_every_stand_in_key(tmp_path: Path) -> None:
    parts = _parts(tmp_path)
    content = up_file_content(parts)
    addresses = content["addresses"]
    for name, url in addresses.items():
        parsed = urlsplit(url)
        assert parsed.scheme == "http" and parsed.netloc and " " not in url, (name, url)
    assert addresses["api"] == "http://127.0.0.1:8000"  # the base: `$api/v1/...` works
    assert addresses["api_docs"] == "http://127.0.0.1:8000/docs"
    assert addresses["prefect"] == "http://127.0.0.1:4200"
    assert addresses["hospitals"] == "http://127.0.0.1:8121"
    stand_ins = content["stand_ins"]
    assert set(stand_ins) == {"credit-bureau", "bank-XMBANK", "bank-XMRCB", "hospitals"}
    assert stand_ins["credit-bureau"] == {
        "url": "http://127.0.0.1:8101",
        "api_key": _settings(tmp_path).bureau_api_key,
    }
    assert all(s["api_key"] and s["url"] == addresses[name] for name, s in stand_ins.items())
