"""`make bench`: how fast a closed window of 1,000,000 captures is settled, stand-ins included.

For each size (--also, then --rows) a worker process gets a scratch PostgreSQL
database migrated with the project's own schema, 5 banks and 50 hospitals
(`hub.partners.add_partner`), 500 credit lines (`hub.lines.open_line`), and
then the captures: closed visits of the open window, bulk-loaded with
INSERT ... SELECT generate_series into the real `visits` table (its keys,
unique constraints and indexes), each on a line and carrying that line's bank,
and refunds of about 3% of them. The ledger postings and debts those captures
would have left are not written: settlement reads neither.

Measured in the same run, warm cache, best and median of --rounds:
- the computation: `hub.settlement.compute` from the closed window to its
  recorded lines and batches (in a transaction, rolled back each round);
- the bare aggregate `SELECT bank_id, hospital_id, SUM(captured_fen) FROM visits
  WHERE settlement_window_id = :w GROUP BY 1, 2` over the same rows;
- end to end: the real flow `flows.settlement.settle()` under a local Prefect
  server, with one bank stand-in process per bank answering, from its start to
  every positive line instructed, every line settled, and the flow's return;
- peak memory of the worker process (ru_maxrss) and the Python heap's peak
  (tracemalloc) during a computation, per size.

Targets: end to end under 10 s; the computation at most 3x the bare aggregate;
memory not growing with the row count. Results go to
.credithub/bench/settlement.json, the query plans to settlement-plans.txt.

Environment: CREDITHUB_BENCH_ADMIN_URL (a database to connect to for CREATE
DATABASE; default postgresql+psycopg://root@127.0.0.1:5432/test).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import signal
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from sqlalchemy import Engine, event, func, select, text
from support import (  # bench/support.py (bench/ is on the path: run as a script)
    OUT,
    ROOT,
    SECRET,
    Child,
    children,
    free_port,
    fresh_database,
    prefect_env,
    prefect_server,
    say,
    spawn,
    wait_until_up,
)

from hub.core import clock, migrate, partners
from hub.core.db import dispose_engines, get_engine, new_session, unit_of_work
from hub.core.personal_data import get_vault
from hub.medical import settlement, windows
from hub.medical.lines import open_line
from hub.settings import Settings
from models.medical.tables import SettlementBatch, SettlementLine, SettlementWindow

DATABASE = "credithub_bench_settlement"
BANK_KEY = "bench-bank-key"
PREFECT_HOME = OUT / "prefect-settlement"  # this bench's own server, fresh each run
BANKS, HOSPITALS, LINES_PER_BANK = 5, 50, 100
REFUND_EVERY = 32  # one visit in 32 (about 3%) has a refund
LOAD_CHUNK = 250_000
TARGET_E2E_SECONDS, TARGET_RATIO = 10.0, 3.0

BARE_AGGREGATE = text(
    "SELECT bank_id, hospital_id, SUM(captured_fen) FROM visits"
    " WHERE settlement_window_id = :w GROUP BY 1, 2"
)

# Closed visits n = lo..hi of the window: hospital n mod 50, and for each
# hospital every line in turn, so all 250 bank-hospital pairs get captures.
LOAD_VISITS = text("""
WITH h AS (SELECT id, row_number() OVER (ORDER BY code) - 1 AS k
             FROM partners WHERE kind = 'hospital'),
     l AS (SELECT id, bank_id, row_number() OVER (ORDER BY id) - 1 AS k FROM credit_lines),
     v AS (SELECT n, 1000 + (n * 7919) % 49000 AS captured,
                  CASE WHEN n % :refund_every = 0 THEN (1000 + (n * 7919) % 49000) / 4
                       ELSE 0 END AS refunded
             FROM generate_series(CAST(:lo AS bigint), CAST(:hi AS bigint)) AS n)
INSERT INTO visits (id, hospital_id, credit_line_id, bank_id, his_visit_id, kind, department,
                    status, opened_at, closed_at, his_bill_id, bill, total_fen, insurance_fen,
                    self_pay_fen, captured_fen, released_fen, refunded_fen, due_date,
                    settlement_window_id)
SELECT 'vis_' || lpad(n::text, 26, '0'), h.id, l.id, l.bank_id, 'V' || n, 'outpatient', 'ENT',
       'closed', :opened, :closed, 'B' || n,
       json_build_object('items', json_build_array(json_build_object(
           'code', 'CT', 'name', 'CT scan', 'amount_fen', 2 * captured))),
       2 * captured, captured, captured, captured, 0, refunded, :due, :window
  FROM v JOIN h ON h.k = v.n % :hospitals JOIN l ON l.k = (v.n / :hospitals) % :lines
""")

LOAD_REFUNDS = text("""
INSERT INTO refunds (id, visit_id, hospital_id, bank_id, his_refund_id, reason, amount_fen,
                     debt_reduced_fen, returned_to_patient_fen, settlement_window_id, created_at)
SELECT 'ref_' || substr(id, 5), id, hospital_id, bank_id, 'R' || his_visit_id, 'duplicate charge',
       refunded_fen, refunded_fen, 0, settlement_window_id, closed_at
  FROM visits WHERE settlement_window_id = :window AND refunded_fen > 0
""")


def peak_rss_mb() -> float:
    """This process's peak resident set so far (ru_maxrss is in KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# --- child processes ---------------------------------------------------------------


def bank_stand_in(code: str, port: int, log: IO[bytes]) -> Child:
    command = [sys.executable, "-m", "simulators.bank", "--port", str(port),
               "--api-key", BANK_KEY, "--seed", "1"]  # fmt: skip
    return spawn(f"bank {code}", command, {}, f"http://127.0.0.1:{port}/_sim/knobs", log)


# --- the data ----------------------------------------------------------------------


def bank_codes() -> list[str]:
    return [f"BANK{b + 1}" for b in range(BANKS)]


def seed_partners_and_lines(settings: Settings) -> None:
    """The banks and hospitals, and LINES_PER_BANK lines at each bank, through the hub."""
    vault, now = get_vault(settings), clock.now()
    with unit_of_work(get_engine(settings)) as session:
        bank_ids = [
            partners.add_partner(session, vault, kind="bank", name=f"bench bank {code}",
                                 code=code, webhook_url=None, now=now).partner_id
            for code in bank_codes()
        ]  # fmt: skip
        for h in range(HOSPITALS):
            partners.add_partner(session, vault, kind="hospital", name=f"bench hospital {h + 1}",
                                 code=f"HOSP{h + 1:02d}", webhook_url="http://127.0.0.1:9/hooks",
                                 now=now)  # fmt: skip
        for i in range(BANKS * LINES_PER_BANK):
            open_line(session, vault, id_number=f"350203199001{i:06d}", name="bench resident",
                      phone=None, bank_id=bank_ids[i % BANKS], limit_fen=100_000_000,
                      source="import", now=now)  # fmt: skip


def load_captures(engine: Engine, rows: int) -> str:
    """`rows` closed visits (and their refunds) in the open window; returns its id."""
    now = clock.now()
    with unit_of_work(engine) as session:
        window_id = windows.open_window_id(session, now)
    for lo in range(0, rows, LOAD_CHUNK):
        hi = min(rows, lo + LOAD_CHUNK) - 1
        with engine.begin() as conn:
            conn.execute(LOAD_VISITS, {
                "lo": lo, "hi": hi, "refund_every": REFUND_EVERY, "hospitals": HOSPITALS,
                "lines": BANKS * LINES_PER_BANK, "opened": now, "closed": now,
                "due": now.date(), "window": window_id,
            })  # fmt: skip
        say(f"  {hi + 1:>9,} visits")
    with engine.begin() as conn:
        refunds = conn.execute(LOAD_REFUNDS, {"window": window_id}).rowcount
    say(f"  {refunds:>9,} refunds")
    # What autovacuum would have done by settlement time: statistics, visibility map.
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE visits, refunds"))
    return window_id


def expected_totals(engine: Engine, window_id: str) -> tuple[int, int]:
    with engine.connect() as conn:
        captured = conn.scalar(
            text("SELECT SUM(captured_fen) FROM visits WHERE settlement_window_id = :w"),
            {"w": window_id},
        )
        refunded = conn.scalar(
            text("SELECT SUM(amount_fen) FROM refunds WHERE settlement_window_id = :w"),
            {"w": window_id},
        )
    return int(captured or 0), int(refunded or 0)


# --- the measurements --------------------------------------------------------------


def time_bare_aggregate(engine: Engine, window_id: str) -> float:
    with engine.connect() as conn:
        started = time.perf_counter()
        pairs = conn.execute(BARE_AGGREGATE, {"w": window_id}).all()
        seconds = time.perf_counter() - started
    assert len(pairs) == BANKS * HOSPITALS, len(pairs)
    return seconds


def time_compute(engine: Engine, settings: Settings, window_id: str) -> float:
    """The computation from the closed window to its lines and batches, then rolled back."""
    with new_session(engine) as session, session.begin():
        started = time.perf_counter()
        done = settlement.compute(session, window_id, settings.business_timezone, clock.now())
        session.flush()  # the window's new status is written too
        seconds = time.perf_counter() - started
        assert done
        session.rollback()
    return seconds


def measure_rounds(engine: Engine, settings: Settings, window_id: str,
                   rounds: int) -> dict[str, list[float]]:  # fmt: skip
    """Alternating rounds, after one unmeasured warm-up of each (caches, hint bits)."""
    time_bare_aggregate(engine, window_id)
    time_compute(engine, settings, window_id)
    times: dict[str, list[float]] = {"compute": [], "bare_aggregate": []}
    for _ in range(rounds):
        times["bare_aggregate"].append(time_bare_aggregate(engine, window_id))
        times["compute"].append(time_compute(engine, settings, window_id))
    return times


def heap_peak_mb(action: Callable[[], object]) -> float:
    """The Python heap's peak (tracemalloc) while `action` runs, above where it started."""
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        action()
        return (tracemalloc.get_traced_memory()[1] - base) / 2**20
    finally:
        tracemalloc.stop()


def caught_statements(engine: Engine, action: Callable[[], object]) -> list[tuple[str, Any]]:
    """The statements reading the captures that `action` sends, with their parameters."""
    sent: list[tuple[str, Any]] = []

    def catch(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if "visits" in statement:
            sent.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", catch)
    try:
        action()
    finally:
        event.remove(engine, "before_cursor_execute", catch)
    return sent


def query_plans(engine: Engine, settings: Settings, window_id: str) -> str:
    """EXPLAIN ANALYZE of compute's statements over the captures and of the bare aggregate.

    The statements are caught as they are sent, so the plans follow hub/settlement.py.
    """
    named = [
        (f"as sent by {name}", statement, parameters)
        for name, action in (
            ("hub.medical.settlement.compute", lambda: time_compute(engine, settings, window_id)),
            ("the bare aggregate", lambda: time_bare_aggregate(engine, window_id)),
        )
        for statement, parameters in caught_statements(engine, action)
    ]
    report = []
    for name, statement, parameters in named:
        with engine.connect() as conn:  # rolled back: EXPLAIN ANALYZE runs an INSERT for real
            plan = conn.exec_driver_sql(f"EXPLAIN (ANALYZE, BUFFERS) {statement}", parameters)
            report.append(f"-- {name}:\n{statement.strip()}\n\n" + "\n".join(plan.scalars()))
            conn.rollback()
    return "\n\n".join(report) + "\n"


def server_settings(engine: Engine) -> dict[str, str]:
    """The server settings that decide these plans' speed (parallel workers, JIT, cache)."""
    names = ("server_version", "max_parallel_workers_per_gather", "jit", "shared_buffers",
             "work_mem")  # fmt: skip
    with engine.connect() as conn:
        return {name: str(conn.scalar(text(f"SHOW {name}"))) for name in names}


def run_flow(settings: Settings) -> tuple[float, dict[str, dict[str, int]]]:
    """The real settlement flow, under the Prefect server PREFECT_API_URL names."""
    # Imported here: Prefect reads its settings (PREFECT_API_URL) from the environment.
    from flows.medical.settlement import settle
    from hub import context

    context.use(settings)
    started = time.perf_counter()
    report = settle()
    return time.perf_counter() - started, report


def drain_prefect() -> None:
    """Send the runs' last logs and events now, while the server is still up."""
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    for service in (APILogWorker, EventsWorker):
        service.drain_all(timeout=30)


def flow_milestones(engine: Engine, window_id: str, started: datetime) -> dict[str, Any]:
    """Seconds from the flow's start to each milestone, read from the recorded lines."""
    with unit_of_work(engine, write=False) as session:
        computing = session.scalar(
            select(func.min(SettlementBatch.created_at)).where(
                SettlementBatch.window_id == window_id
            )
        )
        first, instructed, settled, lines, paid, positive = session.execute(
            select(
                func.min(SettlementLine.instructed_at),
                func.max(SettlementLine.instructed_at),
                func.max(SettlementLine.settled_at),
                func.count(),
                func.count().filter(SettlementLine.status == "settled"),
                func.count().filter(SettlementLine.net_fen > 0),
            ).where(SettlementLine.window_id == window_id)
        ).one()
        net = session.scalar(
            select(func.sum(SettlementLine.net_fen)).where(SettlementLine.window_id == window_id)
        )
        status = session.scalar(
            select(SettlementWindow.status).where(SettlementWindow.id == window_id)
        )

    def since(instant: datetime | None) -> float | None:
        return None if instant is None else round((instant - started).total_seconds(), 3)

    return {
        "compute_started": since(computing),
        "first_instructed": since(first),
        "all_instructed": since(instructed),
        "all_settled": since(settled),
        "lines": lines,
        "positive_lines": positive,
        "settled_lines": paid,
        "net_fen": int(net or 0),
        "window_status": status,
    }


# --- one size, in its own process --------------------------------------------------


def worker(rows: int, rounds: int, result: Path) -> None:
    """Everything for one size; its own process, so that ru_maxrss is this size's alone."""
    ports = {code: free_port() for code in bank_codes()}
    settings = Settings(
        home=OUT, database_url=fresh_database(DATABASE), secret_key=SECRET,
        bank_systems={c: {"url": f"http://127.0.0.1:{p}", "api_key": BANK_KEY}
                      for c, p in ports.items()},
    )  # fmt: skip
    figures: dict[str, Any] = {"rows": rows}
    with (OUT / "settlement.log").open("ab") as log, children() as running:
        running += [bank_stand_in(code, port, log) for code, port in ports.items()]
        say(f"[{rows:,}] database {DATABASE}: migrations, {BANKS} banks, {HOSPITALS} hospitals, "
            f"{BANKS * LINES_PER_BANK} lines")  # fmt: skip
        migrate.upgrade(settings)
        seed_partners_and_lines(settings)
        engine = get_engine(settings)
        t0 = time.perf_counter()
        say(f"[{rows:,}] loading the captures into the open window")
        window_id = load_captures(engine, rows)
        figures["load_seconds"] = round(time.perf_counter() - t0, 1)
        captured, refunded = expected_totals(engine, window_id)
        for child in running:
            wait_until_up(child, headers={"Authorization": f"Bearer {BANK_KEY}"})
        say(f"[{rows:,}] warming Prefect up: the flow with no closed window")
        figures["empty_flow_seconds"] = round(run_flow(settings)[0], 3)
        with unit_of_work(engine) as session:
            assert windows.close_window(session, clock.now()) == window_id
        say(f"[{rows:,}] closed the window; timing compute and the bare aggregate, "
            f"{rounds} rounds")  # fmt: skip
        figures["rss_before_compute_mb"] = round(peak_rss_mb(), 1)
        times = measure_rounds(engine, settings, window_id, rounds)
        figures["compute_heap_peak_mb"] = round(
            heap_peak_mb(lambda: time_compute(engine, settings, window_id)), 3
        )
        figures["rss_after_compute_mb"] = round(peak_rss_mb(), 1)
        figures["plans"] = query_plans(engine, settings, window_id)
        figures["postgres"] = server_settings(engine)
        say(f"[{rows:,}] running the flow settle() with {BANKS} bank stand-ins answering")
        started = datetime.now(UTC)
        seconds, outcome = run_flow(settings)
        drain_prefect()
        figures["rss_after_flow_mb"] = round(peak_rss_mb(), 1)
    milestones = flow_milestones(engine, window_id, started)
    dispose_engines()
    figures.update(
        window_id=window_id,
        times=times,
        compute_seconds=statistics.median(times["compute"]),
        bare_seconds=statistics.median(times["bare_aggregate"]),
        flow_seconds=round(seconds, 3),
        flow_outcome=outcome,
        flow=milestones,
        expected_net_fen=captured - refunded,
    )
    result.write_text(json.dumps(figures, indent=2))


# --- the report --------------------------------------------------------------------


def problems_of(figures: dict[str, Any]) -> list[str]:
    flow, found = figures["flow"], []
    pairs = BANKS * HOSPITALS
    if flow["lines"] != pairs or flow["positive_lines"] != pairs:
        found.append(f"{flow['lines']} lines, {flow['positive_lines']} positive; {pairs} expected")
    if flow["settled_lines"] != flow["positive_lines"]:
        found.append(f"{flow['settled_lines']} of {flow['positive_lines']} lines settled")
    if flow["net_fen"] != figures["expected_net_fen"]:
        found.append(f"lines net {flow['net_fen']} fen, captures net {figures['expected_net_fen']}")
    if flow["window_status"] != "settled":
        found.append(f"window {flow['window_status']}, not settled")
    return found


def best_ratio(figures: dict[str, Any]) -> float:
    return float(min(figures["times"]["compute"]) / min(figures["times"]["bare_aggregate"]))


def report(sizes: list[dict[str, Any]], load: float) -> dict[str, Any]:
    def ms(seconds: float | None) -> str:
        return "-" if seconds is None else f"{seconds * 1000:,.0f} ms"

    def s(seconds: float | None) -> str:
        return "-" if seconds is None else f"{seconds:.2f} s"

    rows_of = [f"{f['rows']:,}" for f in sizes]
    table = [
        ("computation (median)", [ms(f["compute_seconds"]) for f in sizes]),
        ("  best", [ms(min(f["times"]["compute"])) for f in sizes]),
        ("bare GROUP BY (median)", [ms(f["bare_seconds"]) for f in sizes]),
        ("  best", [ms(min(f["times"]["bare_aggregate"])) for f in sizes]),
        ("computation / bare", [f"{f['compute_seconds'] / f['bare_seconds']:.2f}x" for f in sizes]),
        ("  best / best", [f"{best_ratio(f):.2f}x" for f in sizes]),
        ("flow: computing starts", [s(f["flow"]["compute_started"]) for f in sizes]),
        ("flow: first line instructed", [s(f["flow"]["first_instructed"]) for f in sizes]),
        ("flow: all lines instructed", [s(f["flow"]["all_instructed"]) for f in sizes]),
        ("flow: all lines settled", [s(f["flow"]["all_settled"]) for f in sizes]),
        ("flow: returned", [s(f["flow_seconds"]) for f in sizes]),
        ("flow with nothing to settle", [s(f["empty_flow_seconds"]) for f in sizes]),
        ("peak RSS after compute", [f"{f['rss_after_compute_mb']:.0f} MB" for f in sizes]),
        ("peak RSS after the flow", [f"{f['rss_after_flow_mb']:.0f} MB" for f in sizes]),
        ("Python heap peak in compute", [f"{f['compute_heap_peak_mb']:.2f} MB" for f in sizes]),
        ("load (not timed above)", [f"{f['load_seconds']:.0f} s" for f in sizes]),
    ]
    print(f"\nsettlement of one closed window, {BANKS} banks x {HOSPITALS} hospitals "
          f"({os.cpu_count()} CPUs, load average {load:.2f} at start)\n")  # fmt: skip
    print(f"  {'captures':<30}" + "".join(f"{r:>14}" for r in rows_of))
    for label, cells in table:
        print(f"  {label:<30}" + "".join(f"{c:>14}" for c in cells))
    largest, smallest = sizes[-1], sizes[0]
    growth = largest["rss_after_flow_mb"] - smallest["rss_after_flow_mb"]
    e2e = largest["flow"]["all_instructed"] or float("inf")
    ratio = largest["compute_seconds"] / largest["bare_seconds"]
    problems = [f"{f['rows']:,}: {p}" for f in sizes for p in problems_of(f)]
    targets = {
        f"end to end (all lines instructed) under {TARGET_E2E_SECONDS:g} s at "
        f"{largest['rows']:,}: {e2e:.2f} s": e2e < TARGET_E2E_SECONDS,
        f"computation at most {TARGET_RATIO:g}x the bare aggregate: {ratio:.2f}x": (
            ratio <= TARGET_RATIO
        ),
        f"peak memory not growing with the rows ({smallest['rows']:,} -> "
        f"{largest['rows']:,}: {growth:+.0f} MB)": growth < 0.1 * smallest["rss_after_flow_mb"],
        "every line right: one per pair, net = captured - refunded, all settled": not problems,
    }
    print()
    for name, met in targets.items():
        print(f"  [{'met' if met else 'MISSED'}] {name}")
    for problem in problems:
        print(f"    {problem}")
    return {
        "sizes": [{k: v for k, v in f.items() if k != "plans"} for f in sizes],
        "targets": targets,
        "problems": problems,
        "setup": {
            "banks": BANKS,
            "hospitals": HOSPITALS,
            "lines": BANKS * LINES_PER_BANK,
            "refunded_share": round(1 / REFUND_EVERY, 4),
            "prefect": "local server",
            "database": "PostgreSQL",
            "cpus": os.cpu_count(),
            "load_average_at_start": round(load, 2),
            "postgres": largest["postgres"],
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="captures in the window")
    parser.add_argument("--also", type=int, default=100_000,
                        help="a smaller size, to show memory does not grow (0: none)")  # fmt: skip
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds of each query")
    parser.add_argument("--worker", type=Path, help=argparse.SUPPRESS)  # internal: one size
    args = parser.parse_args()
    # A SIGTERM unwinds like Ctrl-C, so the child processes are always stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    OUT.mkdir(parents=True, exist_ok=True)
    if args.worker:
        worker(args.rows, args.rounds, args.worker)
        return

    load = os.getloadavg()[0]
    say(f"load average {load:.2f} on {os.cpu_count()} CPUs (other work here skews the figures)")
    sizes = sorted({args.rows, args.also} - {0})
    port = free_port()
    (OUT / "settlement.log").write_bytes(b"")
    results: list[dict[str, Any]] = []
    with (OUT / "settlement-prefect.log").open("wb") as log, children() as running:
        say("starting a local Prefect server")
        shutil.rmtree(PREFECT_HOME, ignore_errors=True)  # no runs from earlier benches
        running.append(prefect_server(port, log, PREFECT_HOME))
        wait_until_up(running[-1], timeout=120)
        for rows in sizes:
            result = OUT / f"settlement-{rows}.json"
            result.unlink(missing_ok=True)
            command = [sys.executable, str(Path(__file__).resolve()), "--rows", str(rows),
                       "--rounds", str(args.rounds), "--worker", str(result)]  # fmt: skip
            one = spawn(f"worker {rows}", command, prefect_env(port, PREFECT_HOME), "", None)
            running.append(one)
            if one.process.wait() != 0:
                raise SystemExit(f"the run at {rows:,} rows failed ({one.process.returncode})")
            results.append(json.loads(result.read_text()))
            result.unlink()
    plans = OUT / "settlement-plans.txt"
    plans.write_text("\n".join(f"==== {f['rows']:,} captures\n{f['plans']}" for f in results))
    summary = report(results, load)
    path = OUT / "settlement.json"
    path.write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n")
    print(f"\nwritten to {path.relative_to(ROOT)}; query plans in {plans.relative_to(ROOT)}")


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(130)
