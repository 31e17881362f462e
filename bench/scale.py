"""`make bench`: the hub's parts scaled out on one machine, each shape against a
baseline measured in the same run.

1. Authorizations (holds): one `credithub api` process against two, on one
   scratch PostgreSQL database and one Redis (each partner's rate and
   concurrency limits counted together there, set high enough never to refuse,
   so that their cost is in the figures). wrk drives POST
   /v1/visits/{id}/authorizations (bench/holds.lua, through
   bench/scale_holds.lua) with --clients connections for --seconds after a
   --warmup; with two processes, two wrk at once, half the connections each, one
   per process, their rates summed (p50 and p99: the worse of the two). Checked:
   every hold acknowledged (201) is stored, no hold is acknowledged twice, only
   holds in flight when wrk stopped are stored unacknowledged, and the books
   agree (hub/medical/books.py; held credit = live holds; the ledger balances).
2. Enrolments decided by flows on workers: one `credithub worker` against two,
   on two Prefect servers on PostgreSQL with Redis messaging and the background
   services apart (as `bench/soak.py --apart` runs them), the deployments from
   `credithub deploy`. --count residents planned as bench/enrollments.py plans
   them (their records pinned in the credit-database stand-in) are recorded
   pending in a fresh database, then one run of `enrollment/enrollment` is
   triggered through the Prefect API and timed until no enrolment is pending
   (another run is triggered if one ends with some left). Checked: each
   decided once, as planned, one line and one event each.
3. Prefect's server on PostgreSQL against SQLite: the same enrolments with one
   Prefect server (its services inside, as `credithub up` runs it) and one
   worker; the wall time and the flow runs' own time.

On two cores the point of 1 and 2 is that nothing is lost or done twice and
that a second process costs little, not a speed-up: the processes share the
same two cores with PostgreSQL. (A backlog of four batches or more is shared
with a helper run of `enrollment-lane`, which any worker with a free slot
takes.) Prefect's scheduler is off, so the only flow runs are the bench's.

Targets: nothing lost or done twice in any shape; two API processes at >= 80 %
of one's holds/s; two workers at >= 80 % of one's enrolments/s. Results go to
.credithub/bench/scale.json.

Environment: CREDITHUB_BENCH_ADMIN_URL (a database to connect to for CREATE
DATABASE; default postgresql+psycopg://root@127.0.0.1:5432/test),
CREDITHUB_BENCH_REDIS_URL (default redis://127.0.0.1:6379/14: a database of its
own, emptied at the start and at the end).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import httpx
import redis
from authorizations import check_books, parse_wrk, seed  # bench/authorizations.py
from enrollments import (  # bench/enrollments.py
    BANK_CODE,
    BANK_KEY,
    BUREAU_KEY,
    Resident,
    pin_records,
    plan_residents,
    record_enrollments,
    seed_partners,
    simulator,
    verify,
    wired_settings,
)
from sqlalchemy import func, make_url, select
from support import (  # bench/support.py (bench/ is on the path: run as a script)
    ADMIN_URL,
    OUT,
    ROOT,
    SECRET,
    children,
    drop_databases,
    free_port,
    fresh_database,
    prefect_apart,
    run_wrk,
    say,
    settle,
    wait_until_up,
)

from credithub import prefect_roles, supervisor
from hub.core import migrate
from hub.core.books import describe
from hub.core.db import dispose_engines, get_engine, unit_of_work
from hub.medical import books as medical_books
from hub.settings import Settings
from models.medical.tables import Authorization, Enrollment

LUA = ROOT / "bench" / "scale_holds.lua"
DATABASE = "credithub_bench_scale"
PREFECT_DATABASE = f"{DATABASE}_prefect"  # beside the hub's, as Prefect's own would be
REDIS_URL = os.environ.get("CREDITHUB_BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")
DEPLOYMENT = "enrollment/enrollment"
SETTLEMENT = "settlement/settlement"
OVERHEAD_FLOOR = 0.8  # two processes at least this share of one's rate
PATIENCE_S = 600  # for one shape's enrolments to be decided
WORK = OUT / "scale"  # logs, wrk's files, Prefect's homes (emptied at each run)


def on_path_of_tests() -> None:
    """The project's root on the path, for tests/ (not installed): its helper that
    starts `credithub api`."""
    if str(ROOT) not in sys.path:
        sys.path.append(str(ROOT))


# --- 1. authorizations: one API process against two ---------------------------------


@dataclass
class Holds:
    processes: int
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    failed: int  # non-2xx answers and socket errors
    acknowledged: int  # 201s, warm-up included
    stored: int  # holds in the database from this shape's requests
    lost: int  # acknowledged, not stored
    acknowledged_twice: int
    unacknowledged: int  # stored without a 201: in flight when wrk stopped
    in_flight_bound: int  # at most this many could be


def hold_settings(args: argparse.Namespace, database_url: str) -> Settings:
    return Settings(
        home=OUT,
        database_url=database_url,
        secret_key=SECRET,
        redis_url=REDIS_URL,
        redis_key_prefix=f"scale-{uuid.uuid4().hex}",
        # Counted in Redis by every process, never refusing: their cost, not their effect.
        rate_limit_per_second=1e6,
        partner_concurrency=args.clients * 4,
        pool_size=args.pool_size,
    )


def run_wrks(
    ports: Sequence[int], clients: int, seconds: float, visits: Sequence[Path], key: str, tag: str
) -> list[tuple[str, Path]]:
    """wrk at once against each port, the connections shared out; (output, acked file) each."""
    share = [clients // len(ports) + (i < clients % len(ports)) for i in range(len(ports))]

    def one(i: int) -> tuple[str, Path]:
        acked = WORK / f"acked-{tag}{i}.txt"
        acked.unlink(missing_ok=True)
        args = ["authorizations", str(visits[i]), key, f"{tag}{i}", str(acked)]
        return run_wrk(ports[i], LUA, share[i], seconds, args), acked

    with ThreadPoolExecutor(len(ports)) as pool:
        return list(pool.map(one, range(len(ports))))


def hold_shape(
    args: argparse.Namespace, settings: Settings, processes: int, visits: Sequence[Path], key: str
) -> Holds:
    on_path_of_tests()
    from tests.live import api_process  # `credithub api` as its own process

    ports = [free_port() for _ in range(processes)]
    settle(patience=args.settle)
    with contextlib.ExitStack() as stack:
        for n, port in enumerate(ports, 1):
            log = WORK / f"api-{processes}-{n}.log"
            stack.enter_context(api_process(settings, port, log))
        say(
            f"  {processes} API process(es) on {', '.join(map(str, ports))}: warm-up "
            f"{args.warmup:g} s, measure {args.seconds:g} s, {args.clients} connections ..."
        )
        warm = run_wrks(ports, args.clients, args.warmup, visits, key, f"w{processes}p")
        measured = run_wrks(ports, args.clients, args.seconds, visits, key, f"m{processes}p")
    # The processes have stopped: whatever was in flight has landed or never will.
    results = [parse_wrk(out, "authorizations", args.clients, None) for out, _ in measured]
    acked = [line for _, path in warm + measured for line in path.read_text().split() if line]
    with unit_of_work(get_engine(settings), write=False) as session:
        stored = {
            hold_id
            for hold_id, order in session.execute(
                select(Authorization.id, Authorization.his_order_id)
            )
            if order.startswith((f"w{processes}p", f"m{processes}p"))
        }
    shape = Holds(
        processes=processes,
        rps=round(sum(r.rps for r in results), 1),
        p50_ms=max(r.p50_ms for r in results),
        p99_ms=max(r.p99_ms for r in results),
        requests=sum(r.requests for r in results),
        failed=sum(r.non_2xx + r.socket_errors for r in results),
        acknowledged=len(acked),
        stored=len(stored),
        lost=len(set(acked) - stored),
        acknowledged_twice=len(acked) - len(set(acked)),
        unacknowledged=len(stored - set(acked)),
        in_flight_bound=2 * args.clients,  # each connection, at the end of each wrk run
    )
    say(
        f"{'':>4}{shape.rps:8.0f} holds/s  p50 {shape.p50_ms:.2f} ms  p99 {shape.p99_ms:.2f} ms"
        f"  failed {shape.failed}; {shape.acknowledged} acknowledged, {shape.stored} stored, "
        f"{shape.lost} lost"
    )
    return shape


def measure_holds(args: argparse.Namespace) -> tuple[list[Holds], list[str]]:
    """Both shapes on one database; (shapes, problems with the books)."""
    settings = hold_settings(args, fresh_database(DATABASE))
    say(f"preparing database {DATABASE}: migrations, {args.lines} lines with one open visit each")
    migrate.upgrade(settings)
    key, rows = seed(settings, args.lines)
    dispose_engines()
    # Each wrk starts at its own place in the visits, so that two do not take turns
    # on the same lines where one would not.
    visits = []
    for i in range(2):
        turned = rows[i * len(rows) // 2 :] + rows[: i * len(rows) // 2]
        path = WORK / f"visits-{i}.txt"
        path.write_text("".join(f"{v} {line} {h}\n" for v, line, h in turned))
        visits.append(path)
    shapes = [hold_shape(args, settings, n, visits, key) for n in (1, 2)]
    books = check_books(settings)
    say(books)
    with unit_of_work(get_engine(settings), write=False) as session:
        found = medical_books.discrepancies(session)
    dispose_engines()
    problems = [] if "INCONSISTENT" not in books else [books]
    problems += describe(found).splitlines() if found else []
    return shapes, problems


# --- 2 and 3. enrolments through deployments on workers -----------------------------


@dataclass
class Enrolments:
    shape: str
    prefect: str
    workers: int
    count: int
    seconds: float  # from the trigger until none is pending
    run_seconds: float  # the flow runs' own time, start to end (Prefect's)
    flow_runs: dict[str, int]  # the runs since the trigger, by deployment and state
    outcomes: dict[str, int]
    problems: list[str] = field(default_factory=list)
    settlement: dict[str, Any] = field(default_factory=dict)  # a run after, if asked

    @property
    def rate(self) -> float:
        return self.count / self.seconds


@dataclass
class Prefect:
    """A Prefect shape that runs: its API, the environment of its parts, its parts."""

    label: str
    api: str
    env: dict[str, str]
    parts: list[supervisor.Part]
    workers: list[supervisor.Part]


def flow_environment(settings: Settings, home: Path) -> dict[str, str]:
    """What every part needs: the hub's settings (workers' flow runs read them), Prefect
    quiet and its schedules off (only the bench's runs), pools fit for 100 connections."""
    return {
        **os.environ,
        **settings.as_environment(),
        "PREFECT_HOME": str(home),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
        "PREFECT_LOGGING_LEVEL": "WARNING",
        "PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW": "ignore",
        "PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED": "false",
        "PREFECT_SERVER_DATABASE_SQLALCHEMY_POOL_SIZE": "3",
        "PREFECT_SERVER_DATABASE_SQLALCHEMY_MAX_OVERFLOW": "4",
        "CREDITHUB_FLOW_RUNS_AT_ONCE": "2",
    }


@contextlib.contextmanager
def prefect(kind: str, settings: Settings) -> Iterator[Prefect]:
    """Prefect's parts of one shape, running, deployed, with no worker started yet:
    `sqlite` and `postgres`, one server with its services inside (`up`'s way);
    `apart`, two servers on PostgreSQL with Redis and the services apart."""
    home = WORK / f"prefect-{kind}"
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    logs = home / "logs"
    logs.mkdir()
    drop_databases(PREFECT_DATABASE)
    credithub, prefect_bin = str(supervisor.BIN / "credithub"), str(supervisor.BIN / "prefect")
    if kind == "apart":
        redis.Redis.from_url(REDIS_URL).flushdb()  # no streams of an earlier shape
        settings = settings.model_copy(update={"redis_url": REDIS_URL})
        ports = {"prefect-a": free_port(), "prefect-b": free_port()}
        servers, services, workers = prefect_apart(ports, "scale")
        parts = [*servers, services, *workers]
        label = "PostgreSQL, 2 servers + services apart, Redis"
    else:
        port = free_port()
        address = f"http://127.0.0.1:{port}"
        listen = ["--host", "127.0.0.1", "--port", str(port)]
        argv = (
            [prefect_bin, "server", "start", *listen]  # SQLite under PREFECT_HOME
            if kind == "sqlite"
            else [credithub, "prefect-server", "--port", str(port)]  # beside the hub's
        )
        servers = [supervisor.Part("prefect", argv, f"{address}/api/health", address, stop_rank=4)]
        services = None
        worker = supervisor.Part(
            "worker-1", [credithub, "worker", "--name", "scale-1"], "", "", stop_rank=0
        )
        worker.ready = lambda: True
        workers, parts = [worker], [*servers, worker]
        label = "SQLite, 1 server" if kind == "sqlite" else "PostgreSQL, 1 server"
    api = f"{servers[0].address}/api"
    env = {**flow_environment(settings, home), "PREFECT_API_URL": api}
    try:
        t0 = time.perf_counter()
        for server in servers:
            supervisor.start(server, env, logs)
            supervisor.wait_healthy(server, 120)
        up = time.perf_counter() - t0
        with (logs / "deploy.log").open("ab") as log:
            command = [credithub, "deploy"]
            deployed = subprocess.run(command, env=env, stdout=log, stderr=log, check=False)
        deploying = time.perf_counter() - t0 - up
        say(f"  Prefect ({label}) up in {up:.1f} s, deployed in {deploying:.1f} s")
        if deployed.returncode:
            raise SystemExit(
                f"credithub deploy failed: {(logs / 'deploy.log').read_text()[-2000:]}"
            )
        if services is not None:
            supervisor.start(services, env, logs)
        yield Prefect(label, api, env, parts, workers)
    finally:
        supervisor.stop(parts)
        drop_databases(PREFECT_DATABASE)
        say(f"  (Prefect's logs: {logs.relative_to(ROOT)})")


def start_worker(shape: Prefect, n: int) -> None:
    """Worker `n` started, once it polls the work pool (else its start would be timed)."""
    worker = shape.workers[n - 1]
    name = worker.argv[worker.argv.index("--name") + 1]
    since = datetime.now(UTC)

    def polling() -> bool:
        try:
            answer = httpx.post(
                f"{shape.api}/work_pools/{prefect_roles.WORK_POOL}/workers/filter",
                json={},
                timeout=2,
            )
            answer.raise_for_status()
        except httpx.HTTPError:
            return False
        return any(
            w["name"] == name and datetime.fromisoformat(w["last_heartbeat_time"]) >= since
            for w in answer.json()
            if w.get("last_heartbeat_time")
        )

    worker.ready = polling
    t0 = time.perf_counter()
    supervisor.start(worker, shape.env, Path(shape.env["PREFECT_HOME"]) / "logs")
    supervisor.wait_healthy(worker, 60)
    say(f"  worker {name} polling the work pool ({time.perf_counter() - t0:.1f} s)")


def pending(settings: Settings) -> int:
    with unit_of_work(get_engine(settings), write=False) as session:
        statement = select(func.count()).where(Enrollment.status == "pending")
        return int(session.scalar(statement) or 0)


def decide(api: str, settings: Settings) -> tuple[float, float, dict[str, int]]:
    """Trigger the enrolment deployment on Prefect at `api` and wait until no enrolment
    is pending (triggering again if a run ends with some left), then until every run
    since the trigger has ended; (seconds until none pending, the runs' own seconds,
    the runs by deployment and state)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterExpectedStartTime
    from prefect.client.schemas.objects import FlowRun
    from prefect.deployments import run_deployment
    from prefect.settings import PREFECT_API_URL, temporary_settings

    since = datetime.now(UTC)
    where = FlowRunFilter(expected_start_time=FlowRunFilterExpectedStartTime(after_=since))
    with temporary_settings(updates={PREFECT_API_URL: api}), get_client(sync_client=True) as client:

        def all_ended() -> bool:  # every run since the trigger, fan-out runs included
            runs = client.read_flow_runs(flow_run_filter=where)
            return all(r.state is not None and r.state.is_final() for r in runs)

        started = time.perf_counter()
        run = cast(FlowRun, run_deployment(DEPLOYMENT, timeout=0, as_subflow=False))
        triggered = 1
        while (left := pending(settings)) > 0:
            state = client.read_flow_run(run.id).state
            if state is not None and state.is_final() and all_ended():
                if not state.is_completed() or triggered >= 10:
                    raise SystemExit(
                        f"{DEPLOYMENT} run {run.name}: {state.name} ({state.message})"
                        f" with {left} enrolments pending"
                    )
                run = cast(FlowRun, run_deployment(DEPLOYMENT, timeout=0, as_subflow=False))
                triggered += 1
            if time.perf_counter() - started > PATIENCE_S:
                raise SystemExit(f"{left} enrolments still pending after {PATIENCE_S} s")
            time.sleep(0.2)
        seconds = time.perf_counter() - started
        names = {d.id: d.name for d in client.read_deployments()}
        deadline = time.monotonic() + 120
        while not all_ended() and time.monotonic() < deadline:
            time.sleep(0.5)
        runs = client.read_flow_runs(flow_run_filter=where)  # counted as they stand
    by_state = Counter(f"{names.get(r.deployment_id, '?')} {r.state_name}" for r in runs)  # type: ignore[arg-type]
    own = sum(
        (r.end_time - r.start_time).total_seconds() for r in runs if r.start_time and r.end_time
    )
    return seconds, own, dict(by_state)


def run_once(api: str, deployment: str) -> tuple[float, float, str]:
    """One run of `deployment` on Prefect at `api`, waited for; (seconds from the
    trigger to its end, its own seconds, its final state)."""
    from prefect.deployments import run_deployment
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: api}):
        started = time.perf_counter()
        run = cast(
            Any, run_deployment(deployment, timeout=PATIENCE_S, poll_interval=0.5, as_subflow=False)
        )
        seconds = time.perf_counter() - started
    own = (run.end_time - run.start_time).total_seconds() if run.end_time and run.start_time else 0
    return seconds, own, str(run.state_name)


def enrol(
    args: argparse.Namespace,
    settings: Settings,
    people: Sequence[Resident],
    shape: Prefect,
    workers: int,
    name: str,
) -> Enrolments:
    """Pending enrolments in a fresh database, decided through `shape` by its workers."""
    dispose_engines()
    fresh_database(DATABASE)
    migrate.upgrade(settings)
    hospital_id = seed_partners(settings)
    t0 = time.perf_counter()
    planned = record_enrollments(settings, hospital_id, people)
    say(
        f"  {name}: recorded {len(planned)} pending enrolments ({time.perf_counter() - t0:.1f} s);"
        f" triggering {DEPLOYMENT} ..."
    )
    settle(patience=args.settle)
    seconds, own, runs = decide(shape.api, settings)
    outcomes, problems = verify(settings, planned, args.seed, args.decline_rate)
    dispose_engines()
    result = Enrolments(
        name,
        shape.label,
        workers,
        len(planned),
        round(seconds, 2),
        round(own, 2),
        runs,
        dict(outcomes),
        problems,
    )
    say(
        f"{'':>4}{result.count} decided in {seconds:.1f} s ({result.rate:.0f}/s; the runs' own "
        f"time {own:.1f} s); runs: {runs}; {len(problems)} problems"
    )
    return result


def measure_enrolments(args: argparse.Namespace) -> list[Enrolments]:
    bureau_port, bank_port = free_port(), free_port()
    knobs = argparse.Namespace(  # bench/enrollments.py's options; lanes: the setting
        batch_size=None,
        concurrency=None,
        lanes=None,
        harness=False,
        pool_size=args.pool_size,
        seed=args.seed,
        latency_ms=0,
    )
    hub_url = make_url(ADMIN_URL).set(database=DATABASE).render_as_string(hide_password=False)
    settings = wired_settings(knobs, hub_url, bureau_port, bank_port)
    people = plan_residents(args.count, args.seed)
    results = []
    with (WORK / "stand-ins.log").open("wb") as log, children() as running:
        say("enrolments: starting the stand-ins (the credit database, the bank)")
        bureau = simulator("credit_bureau", bureau_port, BUREAU_KEY, knobs, log=log)
        bank = simulator(
            "bank", bank_port, BANK_KEY, knobs, "--decline-rate", str(args.decline_rate), log=log
        )
        running += [bureau, bank]
        wait_until_up(bureau, headers={"Authorization": f"Bearer {BUREAU_KEY}"})
        wait_until_up(bank, headers={"Authorization": f"Bearer {BANK_KEY}"})
        pin_records(settings.bureau_url, people)
        say(
            f"pinned {sum(not p.minor for p in people)} records in the credit-database stand-in "
            f"(the bank {BANK_CODE} declines {args.decline_rate:.0%})"
        )
        for kind in ("sqlite", "postgres"):
            with prefect(kind, settings) as shape:
                start_worker(shape, 1)
                results.append(enrol(args, settings, people, shape, 1, f"{kind}, 1 worker"))
                if not args.no_settlement:  # the day's close over those lines (no visits)
                    seconds, own, state = run_once(shape.api, SETTLEMENT)
                    results[-1].settlement = {
                        "seconds": round(seconds, 2),
                        "run_seconds": round(own, 2),
                        "state": state,
                    }
                    say(f"    {SETTLEMENT}: {state} in {seconds:.1f} s (its own {own:.1f} s)")
        with prefect("apart", settings) as shape:
            for n in (1, 2):
                start_worker(shape, n)
                results.append(
                    enrol(args, settings, people, shape, n, f"apart, {n} worker{'s' * (n > 1)}")
                )
    return results


# --- the report ----------------------------------------------------------------------


def report(
    holds: list[Holds],
    books: list[str],
    enrolments: list[Enrolments],
    args: argparse.Namespace,
    load: float,
) -> dict[str, Any]:
    say("")
    ratios: dict[str, float] = {}
    targets: dict[str, bool] = {}
    if holds:
        one, two = holds
        print(
            f"Authorizations: {args.clients} connections in all, {args.seconds:g} s per shape "
            "(PostgreSQL; each partner's limits shared in Redis)"
        )
        print(
            f"  {'shape':<20}{'holds/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'failed':>8}{'acked':>8}"
            f"{'stored':>8}{'lost':>6}{'vs 1':>7}"
        )
        for h in holds:
            print(
                f"  {f'{h.processes} API process(es)':<20}{h.rps:>9.0f}{h.p50_ms:>9.2f}"
                f"{h.p99_ms:>9.2f}{h.failed:>8}{h.acknowledged:>8}{h.stored:>8}{h.lost:>6}"
                f"{h.rps / one.rps:>7.2f}"
            )
        print("  (two processes: two wrk at once, half the connections each; p50/p99 the worse)")
        ratios["holds_2_over_1_processes"] = round(two.rps / one.rps, 3)
        wrong = [
            h
            for h in holds
            if h.lost or h.acknowledged_twice or h.unacknowledged > h.in_flight_bound
        ]
        targets["every acknowledged hold stored once, in both shapes"] = not wrong
        targets["the books agree (hub/medical/books.py)"] = not books
        targets[f"two API processes >= {OVERHEAD_FLOOR:.0%} of one's holds/s"] = (
            ratios["holds_2_over_1_processes"] >= OVERHEAD_FLOOR
        )
    if enrolments:
        by = {e.shape: e for e in enrolments}
        sqlite, postgres = by["sqlite, 1 worker"], by["postgres, 1 worker"]
        apart1, apart2 = by["apart, 1 worker"], by["apart, 2 workers"]
        print(
            f"\nEnrolments: {args.count} per shape, `{DEPLOYMENT}` triggered, timed until "
            "none is pending"
        )
        print(
            f"  {'shape':<20}{'Prefect':<46}{'seconds':>8}{'/s':>6}{'runs own s':>11}"
            f"{'vs base':>8}{'problems':>9}"
        )
        for e, base in ((sqlite, sqlite), (postgres, sqlite), (apart1, apart1), (apart2, apart1)):
            print(
                f"  {e.shape:<20}{e.prefect:<46}{e.seconds:>8.1f}{e.rate:>6.0f}"
                f"{e.run_seconds:>11.1f}{e.rate / base.rate:>8.2f}{len(e.problems):>9}"
            )
        print(
            "  (vs base: the rate against SQLite's with one server, against one worker's apart;"
            " runs own s: Prefect's start to end of the flow runs)"
        )
        ratios |= {
            "enrolments_2_over_1_workers": round(apart2.rate / apart1.rate, 3),
            "prefect_postgres_over_sqlite_seconds": round(postgres.seconds / sqlite.seconds, 3),
            "prefect_postgres_over_sqlite_run_seconds": round(
                postgres.run_seconds / max(sqlite.run_seconds, 1e-9), 3
            ),
        }
        if sqlite.settlement and postgres.settlement:
            a, b = sqlite.settlement, postgres.settlement
            print(
                f"  then `{SETTLEMENT}` (the day's close; no visits to settle): SQLite "
                f"{a['seconds']:.1f} s (own {a['run_seconds']:.1f}), {a['state']}; PostgreSQL "
                f"{b['seconds']:.1f} s (own {b['run_seconds']:.1f}), {b['state']}"
            )
            ratios["prefect_postgres_over_sqlite_settlement_seconds"] = round(
                b["seconds"] / a["seconds"], 3
            )
            targets["the settlement runs completed"] = a["state"] == b["state"] == "Completed"
        targets["every enrolment decided once, as planned, in every shape"] = not any(
            e.problems for e in enrolments
        )
        targets[f"two workers >= {OVERHEAD_FLOOR:.0%} of one's enrolments/s"] = (
            ratios["enrolments_2_over_1_workers"] >= OVERHEAD_FLOOR
        )
    print(f"\n  ratios: {', '.join(f'{k} {v:.2f}' for k, v in ratios.items())}")
    print(
        f"  On {os.cpu_count()} cores the point is that nothing is lost and a second process "
        "costs little, not a speed-up:\n  the processes share the cores with PostgreSQL (an "
        "enrolment run and its helper run take both cores with one worker already)."
    )
    print()
    for name, met in targets.items():
        print(f"  [{'met' if met else 'MISSED'}] {name}")
    for problem in books + [f"{e.shape}: {p}" for e in enrolments for p in e.problems]:
        print(f"    {problem}")
    return {
        "holds": [asdict(h) for h in holds],
        "books": books,
        "enrolments": [{**asdict(e), "per_second": round(e.rate, 1)} for e in enrolments],
        "ratios": ratios,
        "targets": targets,
        "setup": {
            "clients": args.clients,
            "seconds": args.seconds,
            "warmup": args.warmup,
            "lines": args.lines,
            "count": args.count,
            "pool_size": args.pool_size,
            "decline_rate": args.decline_rate,
            "only": args.only,
            "cpus": os.cpu_count(),
            "load_average_at_start": round(load, 2),
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=32, help="wrk connections, all processes")
    parser.add_argument("--seconds", type=float, default=20, help="wrk per shape")
    parser.add_argument("--warmup", type=float, default=3, help="wrk seconds before each shape")
    parser.add_argument("--lines", type=int, default=512, help="lines to spread holds over")
    parser.add_argument("--count", type=int, default=2000, help="enrolments per shape")
    parser.add_argument(
        "--pool-size",
        type=int,
        default=16,
        help="PostgreSQL connections per API process and flow run",
    )
    parser.add_argument("--decline-rate", type=float, default=0.05, help="the bank's")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--settle",
        type=float,
        default=5,
        help="seconds at most to wait for a quiet machine before each shape",
    )
    parser.add_argument(
        "--no-settlement",
        action="store_true",
        help="no settlement run after the enrolments on SQLite and PostgreSQL",
    )
    parser.add_argument("--only", choices=("holds", "enrolments"), help="one part alone")
    args = parser.parse_args()
    # A SIGTERM unwinds like Ctrl-C, so every process is stopped and every database dropped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)
    load = os.getloadavg()[0]
    say(f"load average {load:.2f} on {os.cpu_count()} CPUs (other work here skews the figures)")
    store = redis.Redis.from_url(REDIS_URL)
    store.flushdb()
    try:
        holds, books = ([], []) if args.only == "enrolments" else measure_holds(args)
        enrolments = [] if args.only == "holds" else measure_enrolments(args)
    finally:
        dispose_engines()
        drop_databases(DATABASE, PREFECT_DATABASE)
        store.flushdb()
    summary = report(holds, books, enrolments, args, load)
    path = OUT / "scale.json"
    path.write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n")
    print(f"\nwritten to {path.relative_to(ROOT)}")


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(130)
