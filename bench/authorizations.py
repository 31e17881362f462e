"""`make bench`: how fast the hub places holds, against two baselines on the same server.

One uvicorn process (one worker, partner limits off, auth cache on) serves the real
app on a scratch PostgreSQL database, plus two routes mounted only here
(bench/bench_app.py): a trivial endpoint (the framework's ceiling) and a bare
hold (one pooled transaction: the conditional UPDATE and the two INSERTs).
wrk, in another process, drives each at 1, 8 and 32 concurrent clients.

Targets: at 32 clients, authorizations at >= 50% of the bare hold's rate;
at 1 client, p99 under 10 ms. Results go to .credithub/bench/authorizations.json.

Environment: CREDITHUB_BENCH_ADMIN_URL (a database to connect to for CREATE
DATABASE; default postgresql+psycopg://root@127.0.0.1:5432/test).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any

import httpx
from sqlalchemy import text
from support import (  # bench/support.py (bench/ is on the path: run as a script)
    OUT,
    ROOT,
    SECRET,
    free_port,
    fresh_database,
    run_wrk,
    say,
)

from hub.core import clock, logs, migrate, partners
from hub.core.db import dispose_engines, get_engine, unit_of_work
from hub.core.personal_data import get_vault
from hub.medical.lines import grant_access, open_line
from hub.medical.visits import open_visit
from hub.settings import Settings

LUA = ROOT / "bench" / "holds.lua"
DATABASE = "credithub_bench"
ENDPOINTS = ("trivial", "bare", "authorizations")
LABELS = {"trivial": "trivial endpoint", "bare": "bare hold", "authorizations": "authorizations"}


@dataclass(frozen=True)
class Result:
    endpoint: str
    clients: int
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    non_2xx: int
    socket_errors: int
    server_cpu_ms: float | None  # the server process's CPU time per request


# --- the database ------------------------------------------------------------------


def seed(settings: Settings, lines: int) -> tuple[str, list[tuple[str, str, str]]]:
    """A hospital, a bank, and `lines` lines with huge limits, each with one open visit.

    Returns the hospital's API key and (visit, line, hospital) rows.
    """
    vault, now = get_vault(settings), clock.now()
    rows = []
    with unit_of_work(get_engine(settings)) as session:
        hospital, bank = (
            partners.add_partner(session, vault, kind=kind, name=f"bench {kind}",
                                 code=f"BENCH-{kind.upper()}", webhook_url=None, now=now)
            for kind in ("hospital", "bank")
        )  # fmt: skip
        for i in range(lines):
            line = open_line(
                session, vault, id_number=f"bench-{i:06d}", name="压测", phone=None,
                bank_id=bank.partner_id, limit_fen=10**15, source="bench", now=now,
            )  # fmt: skip
            grant_access(session, hospital.partner_id, line.id)
            visit, _ = open_visit(
                session, hospital_id=hospital.partner_id, credit_line_id=line.id,
                his_visit_id=f"BV{i}", kind="outpatient", department="bench", now=now,
            )  # fmt: skip
            rows.append((visit.id, line.id, hospital.partner_id))
    return hospital.api_key, rows


def check_books(settings: Settings) -> str:
    """The held credit equals the live holds, and the ledger balances."""
    with get_engine(settings).connect() as conn:
        holds, held_on_lines, ledger = conn.execute(text(
            "SELECT (SELECT count(*) FROM authorizations),"
            " (SELECT coalesce(sum(amount_fen), 0) - (SELECT coalesce(sum(held_fen), 0)"
            "  FROM credit_lines) FROM authorizations),"
            " (SELECT coalesce(sum(amount_fen), 0) FROM ledger_postings)"
        )).one()  # fmt: skip
    ok = held_on_lines == 0 and ledger == 0
    return f"{holds} holds stored; books {'consistent' if ok else 'INCONSISTENT'}"


# --- the server and the load ----------------------------------------------------


def spawn_server(database_url: str, port: int, log: IO[bytes]) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "CREDITHUB_DATABASE_URL": database_url,
        "CREDITHUB_SECRET_KEY": SECRET,
        "CREDITHUB_HOME": str(OUT),
        # One partner's traffic measures the hot path: its limits (rate, requests
        # at once) are off here; bench/fairness.py measures them.
        "CREDITHUB_RATE_LIMIT_PER_SECOND": "0",
        "CREDITHUB_PARTNER_CONCURRENCY": "0",
    }
    # Logging as `credithub api` logs: the app's JSON access line for every request.
    log_config = OUT / "authorizations-logging.json"
    log_config.write_text(json.dumps(logs.logging_config("json", "INFO")))
    return subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "bench.bench_app:create_bench_app", "--factory",
         "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
         "--log-level", "warning", "--no-access-log", "--log-config", str(log_config)],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip


def wait_until_up(server: subprocess.Popen[bytes], port: int) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"the server exited with {server.returncode}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/v1/health", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise SystemExit("the server did not come up within 30 s")


def stop_server(server: subprocess.Popen[bytes]) -> None:
    if server.poll() is None:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process so far (Linux /proc; None elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


_UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def _ms(value: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", value).groups()  # type: ignore[union-attr]
    return float(number) * _UNIT_MS[unit]


def parse_wrk(output: str, endpoint: str, clients: int, cpu: float | None) -> Result:
    def find(pattern: str, default: str | None = None) -> str:
        match = re.search(pattern, output, re.MULTILINE)
        if match is None:
            if default is None:
                raise ValueError(f"wrk output has no {pattern!r}:\n{output}")
            return default
        return match.group(1)

    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)",
                       output)  # fmt: skip
    requests = int(find(r"^\s+(\d+) requests in"))
    return Result(
        endpoint=endpoint,
        clients=clients,
        rps=float(find(r"^Requests/sec:\s+([\d.]+)")),
        p50_ms=_ms(find(r"^\s+50%\s+(\S+)")),
        p99_ms=_ms(find(r"^\s+99%\s+(\S+)")),
        requests=requests,
        non_2xx=int(find(r"Non-2xx or 3xx responses: (\d+)", "0")),
        socket_errors=sum(int(n) for n in errors.groups()) if errors else 0,
        server_cpu_ms=None if cpu is None else round(cpu * 1000 / max(requests, 1), 3),
    )


def wrk(port: int, endpoint: str, clients: int, seconds: float, visits: Path, key: str,
        tag: str) -> str:  # fmt: skip
    return run_wrk(port, LUA, clients, seconds, [endpoint, str(visits), key, tag])


# --- the report ------------------------------------------------------------------


def report(results: list[Result]) -> dict[str, Any]:
    by = {(r.endpoint, r.clients): r for r in results}
    clients = sorted({r.clients for r in results})
    say("")
    print(f"{'clients':>7}  {'endpoint':<17}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'failed':>8}"
          f"{'server CPU ms/req':>19}")  # fmt: skip
    for c in clients:
        for e in ENDPOINTS:
            r = by[(e, c)]
            cpu = "-" if r.server_cpu_ms is None else f"{r.server_cpu_ms:.2f}"
            print(f"{c:>7}  {LABELS[e]:<17}{r.rps:>9.0f}{r.p50_ms:>9.2f}{r.p99_ms:>9.2f}"
                  f"{r.non_2xx + r.socket_errors:>8}{cpu:>19}")  # fmt: skip
    print()
    ratios = {}
    for c in clients:
        trivial, bare, auth = (by[(e, c)] for e in ENDPOINTS)
        ratios[c] = {
            "auth_over_bare": auth.rps / bare.rps,
            "bare_over_trivial": bare.rps / trivial.rps,
        }
        print(f"{c:>3} clients: authorizations / bare hold = {ratios[c]['auth_over_bare']:6.1%}"
              f"   bare hold / trivial = {ratios[c]['bare_over_trivial']:6.1%}")  # fmt: skip
    most, least = max(clients), min(clients)
    targets = {
        f"authorizations >= 50% of bare hold at {most} clients":
            ratios[most]["auth_over_bare"] >= 0.5,
        f"authorizations p99 < 10 ms at {least} client(s)":
            by[("authorizations", least)].p99_ms < 10,
        "no failed authorizations": all(
            by[("authorizations", c)].non_2xx + by[("authorizations", c)].socket_errors == 0
            for c in clients
        ),
    }  # fmt: skip
    print()
    for name, met in targets.items():
        print(f"  [{'met' if met else 'MISSED'}] {name}")
    return {
        "results": [asdict(r) for r in results],
        "ratios": {str(c): v for c, v in ratios.items()},
        "targets": targets,
    }


def measure_all(server: subprocess.Popen[bytes], port: int, args: argparse.Namespace,
                visits: Path, key: str) -> list[Result]:  # fmt: skip
    """Each endpoint at each concurrency: a warm-up, then a measurement."""
    results = []
    for clients in args.clients:
        for endpoint in ENDPOINTS:
            say(f"  {clients:>2} clients  {LABELS[endpoint]:<16} warm-up {args.warmup:g} s, "
                f"measure {args.seconds:g} s ...")  # fmt: skip
            wrk(port, endpoint, clients, args.warmup, visits, key, f"w{clients}{endpoint[0]}")
            before = cpu_seconds(server.pid)
            tag = f"m{clients}{endpoint[0]}"
            out = wrk(port, endpoint, clients, args.seconds, visits, key, tag)
            after = cpu_seconds(server.pid)
            cpu = None if before is None or after is None else after - before
            r = parse_wrk(out, endpoint, clients, cpu)
            results.append(r)
            say(f"{'':>32}{r.rps:8.0f} req/s  p50 {r.p50_ms:.2f} ms  p99 {r.p99_ms:.2f} ms  "
                f"failed {r.non_2xx + r.socket_errors}  "
                f"server CPU {r.server_cpu_ms} ms/req")  # fmt: skip
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--seconds", type=float, default=8, help="per measurement")
    parser.add_argument("--warmup", type=float, default=2, help="seconds before each measurement")
    parser.add_argument("--lines", type=int, default=512, help="lines to spread holds over")
    args = parser.parse_args()
    # A SIGTERM unwinds like Ctrl-C, so the server is always stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    OUT.mkdir(parents=True, exist_ok=True)
    load = os.getloadavg()[0]
    say(f"load average {load:.2f} on {os.cpu_count()} CPUs (other work here skews the figures)")
    say(f"preparing database {DATABASE}: migrations, {args.lines} lines with one open visit each")
    database_url = fresh_database(DATABASE)
    settings = Settings(home=OUT, database_url=database_url, secret_key=SECRET)
    migrate.upgrade(settings)
    key, rows = seed(settings, args.lines)
    visits = OUT / "visits.txt"
    visits.write_text("".join(f"{v} {line} {h}\n" for v, line, h in rows))
    dispose_engines()

    port = free_port()
    say(f"starting the API on 127.0.0.1:{port} (uvicorn, 1 worker, no partner limits, auth cache)")
    log_path = OUT / "server.log"
    with log_path.open("wb") as log:
        server = spawn_server(database_url, port, log)
    try:
        wait_until_up(server, port)
        results = measure_all(server, port, args, visits, key)
    finally:
        stop_server(server)
    say(check_books(settings))
    logged = log_path.read_text(errors="replace").count("\n")
    if logged:  # e.g. ClientDisconnect as wrk stops mid-request
        say(f"the server logged {logged} lines: {log_path.relative_to(ROOT)}")
    dispose_engines()
    summary = report(results)
    summary["setup"] = {
        "server": "uvicorn, 1 worker", "database": "PostgreSQL", "lines": args.lines,
        "seconds": args.seconds, "warmup": args.warmup, "cpus": os.cpu_count(),
        "load_average_at_start": round(load, 2),
    }  # fmt: skip
    path = OUT / "authorizations.json"
    path.write_text(json.dumps(summary, indent=2) + "\n")
    print(f"\nwritten to {path.relative_to(ROOT)}")


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(130)
