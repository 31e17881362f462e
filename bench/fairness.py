"""`make bench`: can one partner, or someone guessing keys, slow another partner down?

One `credithub api` process (defaults: 200 requests a second per partner, 8 at
once per partner, unknown keys looked up at 20 a second per address) serves a
scratch PostgreSQL database. A bystander bank reads its credit line
(`GET /v1/credit-lines/{id}`, a database-bound read) at about 20 a second
while, in turn:

- nothing else runs (quiet),
- another bank floods the same route at about 300 a second,
- an unauthenticated client floods it at about 300 a second, a new guessed
  key each request.

The same three phases run first with those guards off (the rate limit only,
as before issue 9): the baseline of the same run. Reported: the bystander's
p50/p99 in each phase and its p99 over the quiet p99, and what the flooder
got. Target: the bystander's p99 under either flood within a few times (≤ 5×)
its quiet value. Results go to .credithub/bench/fairness.json.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from authorizations import parse_wrk  # bench/authorizations.py: wrk's report read
from support import (  # bench/support.py (bench/ is on the path: run as a script)
    OUT,
    ROOT,
    SECRET,
    children,
    free_port,
    fresh_database,
    run_wrk,
    say,
    settle,
    spawn,
    wait_until_up,
)

from hub.core import clock, migrate, partners
from hub.core.db import dispose_engines, get_engine, unit_of_work
from hub.core.personal_data import get_vault
from hub.medical.lines import open_line
from hub.settings import Settings

LUA = ROOT / "bench" / "fairness.lua"
DATABASE = "credithub_bench_fairness"
BYSTANDER = (4, 200)  # connections, ms between requests on each: about 20 a second
FLOOD = (600, 2000)  # about 300 a second, kept up while answers take up to 2 s
PHASES = ("quiet", "partner flood", "random-key flood")
GUARDS_OFF = {"CREDITHUB_PARTNER_CONCURRENCY": "0", "CREDITHUB_UNKNOWN_KEY_LOOKUPS_PER_SECOND": "0"}


@dataclass(frozen=True)
class Phase:
    guards: str
    phase: str
    p50_ms: float
    p99_ms: float
    bystander_requests: int
    bystander_errors: int
    flood_requests: int
    flood_refused: int  # 401/429 answers to the flood


def seed(settings: Settings) -> dict[str, tuple[str, str]]:
    """Two banks, each with one credit line: {name: (api key, line id)}."""
    vault, now, banks = get_vault(settings), clock.now(), {}
    with unit_of_work(get_engine(settings)) as session:
        for name in ("bystander", "flooder"):
            bank = partners.add_partner(
                session, vault, kind="bank", name=f"bench {name}", code=f"BENCH-{name.upper()}",
                webhook_url=None, now=now,
            )  # fmt: skip
            line = open_line(
                session, vault, id_number=f"bench-{name}", name="压测", phone=None,
                bank_id=bank.partner_id, limit_fen=10**9, source="bench", now=now,
            )  # fmt: skip
            banks[name] = (bank.api_key, line.id)
    return banks


def flood(port: int, path: str, key: str, seconds: float) -> subprocess.Popen[str]:
    connections, interval = FLOOD
    command = [
        "wrk", "-t", "2", "-c", str(connections), "-d", f"{seconds:g}s", "--timeout", "10s",
        "--latency", "-s", str(LUA), f"http://127.0.0.1:{port}", "--", path, key, str(interval),
    ]  # fmt: skip
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def measure(port: int, banks: dict[str, tuple[str, str]], guards: str, phase: str,
            seconds: float) -> Phase:  # fmt: skip
    key, line = banks["bystander"]
    flooder = None
    if phase == "partner flood":
        flood_key, flood_line = banks["flooder"]
        flooder = flood(port, f"/v1/credit-lines/{flood_line}", flood_key, seconds + 2)
    elif phase == "random-key flood":
        flooder = flood(port, f"/v1/credit-lines/{line}", "random", seconds + 2)
    if flooder is not None:
        time.sleep(2)  # the flood is under way before the bystander is measured
    connections, interval = BYSTANDER
    path = f"/v1/credit-lines/{line}"
    seen = run_wrk(port, LUA, connections, seconds, [path, key, str(interval)])
    bystander = parse_wrk(seen, "bystander", connections, None)
    flooded = parse_wrk(flooder.communicate()[0], "flood", FLOOD[0], None) if flooder else None
    return Phase(
        guards=guards,
        phase=phase,
        p50_ms=bystander.p50_ms,
        p99_ms=bystander.p99_ms,
        bystander_requests=bystander.requests,
        bystander_errors=bystander.non_2xx,
        flood_requests=flooded.requests if flooded else 0,
        flood_refused=flooded.non_2xx if flooded else 0,
    )


def run(seconds: float) -> list[Phase]:
    url = fresh_database(DATABASE)
    home = Path(tempfile.mkdtemp(prefix="credithub-fairness-"))
    settings = Settings(home=home, database_url=url, secret_key=SECRET)
    migrate.upgrade(settings)
    banks = seed(settings)
    dispose_engines()
    results: list[Phase] = []
    OUT.mkdir(parents=True, exist_ok=True)
    for guards, extra in (("off", GUARDS_OFF), ("on", {})):
        port = free_port()
        env = {
            "CREDITHUB_DATABASE_URL": url, "CREDITHUB_SECRET_KEY": SECRET,
            "CREDITHUB_HOME": str(home), **extra,
        }  # fmt: skip
        command = [str(Path(sys.executable).parent / "credithub"), "api", "--port", str(port)]
        with (OUT / f"fairness-api-{guards}.log").open("wb") as log, children() as started:
            api = spawn("credithub api", command, env, f"http://127.0.0.1:{port}/v1/health", log)
            started.append(api)
            wait_until_up(api)
            for name in PHASES:
                load = settle()
                say(f"guards {guards}: {name} ({seconds:g} s, load {load:.2f})")
                results.append(measure(port, banks, guards, name, seconds))
                say(f"  bystander p50 {results[-1].p50_ms:.1f} ms, p99 {results[-1].p99_ms:.1f} ms")
    return results


def report(results: list[Phase]) -> str:
    quiet = {r.guards: r.p99_ms for r in results if r.phase == "quiet"}
    lines = [
        "| guards | phase | bystander p50 | bystander p99 | p99 / quiet | bystander errors "
        "| flood sent | flood refused |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r.guards} | {r.phase} | {r.p50_ms:.1f} ms | {r.p99_ms:.1f} ms "
            f"| {r.p99_ms / quiet[r.guards]:.1f}× | {r.bystander_errors} "
            f"| {r.flood_requests} | {r.flood_refused} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20, help="length of each phase")
    args = parser.parse_args()
    results = run(args.seconds)
    (OUT / "fairness.json").write_text(json.dumps([asdict(r) for r in results], indent=2))
    print(report(results))
    worst = max(r.p99_ms for r in results if r.guards == "on") / min(
        r.p99_ms for r in results if r.guards == "on" and r.phase == "quiet"
    )
    print(f"\nwith the guards on, the bystander's worst p99 is {worst:.1f}× its quiet p99")


if __name__ == "__main__":
    main()
