"""`make bench`: how fast the enrolment flow decides pending enrolments, stand-ins included.

The credit-database and bank stand-ins run as their own processes on loopback
(latency 0 unless --latency-ms), a local Prefect server as a third, and the
hub's PostgreSQL database is a scratch one made for the run. N residents are
planned with valid identity numbers and a known outcome each (minors, unknown
to the database, a wrong name, dishonest debtors, low scores, bank declines,
approvals); their records are pinned in the database stand-in, their
enrolments recorded with `hub.enrollment.start`, and then the real flow
`enroll_pending` decides them, timed from its start to its end — with its
helper runs (the `enrollment-lane` deployment, served here as `credithub up`
serves it) when the setting allows more than one run. Afterwards every
enrolment must be decided exactly once, as planned, with one line per approval
and nothing left pending. The peak memory of the flow's process (its growth
while the flow runs: the bench itself keeps the plan) and of a helper run is
sampled twice a second.

Targets, a city's launch day on a 2-core machine, stand-ins and a real Prefect
server included: 10,000 enrolments in under 30 s, 100,000 in under 5 minutes,
memory flat between the two. Results go to .credithub/bench/enrollments.json.

Environment: CREDITHUB_BENCH_ADMIN_URL (a database to connect to for CREATE
DATABASE; default postgresql+psycopg://root@127.0.0.1:5432/test); the flow's
knobs CREDITHUB_ENROLLMENT_BATCH_SIZE / _CONCURRENCY and CREDITHUB_POOL_SIZE
apply unless --batch-size / --concurrency / --pool-size say otherwise.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import IO, Any

import httpx
from sqlalchemy import Engine, event, func, select
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
from hub.core.db import dispose_engines, get_engine, unit_of_work
from hub.core.personal_data import get_vault
from hub.medical import enrollment
from hub.settings import Settings
from models.core.tables import Event
from models.medical.tables import CreditLine, Enrollment
from simulators.knobs import stable_fraction

LANE_DEPLOYMENT = "enrollment-lane/enrollment-lane"  # flows/medical/enrollment.py

DATABASE = "credithub_bench_enrollments"
BUREAU_KEY, BANK_KEY, BANK_CODE = "bench-bureau-key", "bench-bank-key", "BENCH-BANK"
TARGET_COUNT = 10_000
TARGET_SECONDS = {10_000: 30.0, 100_000: 300.0}  # a launch day (issue 10)
# Memory "flat": at 100,000 at most a quarter more than at 10,000, give or take the
# sampling's noise (growing with the count would be ten times as much).
FLAT, NOISE_MB = 1.25, 16.0

# The mix of residents (fractions of N); everyone else is an adult the database
# knows under the name given, scored about like the city (mean 675, sd 115).
MINORS, UNKNOWN, WRONG_NAME, DISHONEST = 0.02, 0.02, 0.02, 0.03
REGIONS = ("350203", "350102", "350104", "110101", "310101", "440305", "510104")
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾"
GIVEN = "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超兰霞平刚桂华建国志红玉文斌浩宇晨欣怡子轩"


# --- the residents -----------------------------------------------------------------


@dataclass(frozen=True)
class Resident:
    id_number: str
    name: str  # what the enrolment says
    record: dict[str, Any] | None  # what the credit database says; None: unknown to it
    minor: bool


def id_number(region: str, born: date, sequence: int) -> str:
    """A valid resident identity number (GB 11643: mod 11-2 check character)."""
    first17 = f"{region}{born:%Y%m%d}{sequence:03d}"
    total = sum(int(d) * pow(2, 17 - i, 11) for i, d in enumerate(first17))
    return first17 + "10X98765432"[total % 11]


def plan_residents(count: int, seed: int) -> list[Resident]:
    """`count` distinct residents: (birth date, sequence) is unique per index."""
    rng = random.Random(seed)
    bands = (MINORS, UNKNOWN, WRONG_NAME, DISHONEST)
    edges = [sum(bands[: i + 1]) for i in range(len(bands))]
    people = []
    for i in range(count):
        roll = rng.random()
        kind = next((k for k, edge in enumerate(edges) if roll < edge), len(edges))
        minor, unknown, wrong_name, dishonest = (kind == k for k in range(4))
        born = (date(2012, 1, 1) if minor else date(1955, 1, 1)) + timedelta(days=(i // 1000) * 7)
        number = id_number(REGIONS[i % len(REGIONS)], born, i % 1000)
        name = rng.choice(SURNAMES) + "".join(rng.choices(GIVEN, k=rng.choice((1, 2))))
        record = {
            "name": name,
            "score": min(1000, max(0, round(rng.gauss(675, 115)))),
            "dishonest_debtor": dishonest,
            "insured": rng.random() < 0.9,
        }
        people.append(Resident(number, name + "某" if wrong_name else name,
                               None if unknown else record, minor))  # fmt: skip
    return people


def expected(person: Resident, enrollment_id: str, settings: Settings, bank_seed: int,
             decline_rate: float) -> tuple[str, int | None]:  # fmt: skip
    """The outcome the rules and the stand-ins must give: (status or reason, limit)."""
    record = person.record
    limit = max((lim for floor, lim in settings.limit_tiers if record and record["score"] >= floor),
                default=0)  # fmt: skip
    if person.minor:
        return "under_age", None
    if record is None or record["name"] != person.name:
        return "identity_not_verified", None
    if record["dishonest_debtor"]:
        return "dishonest_debtor", None
    if record["score"] < settings.min_score or limit <= 0:
        return "score_too_low", None
    if stable_fraction(bank_seed, "decline", enrollment_id) < decline_rate:
        return "bank_declined", None
    return "approved", limit


def pin_records(bureau_url: str, people: Sequence[Resident], workers: int = 16) -> None:
    """Tell the credit-database stand-in exactly what it knows (PUT, or DELETE: unknown)."""
    auth = {"Authorization": f"Bearer {BUREAU_KEY}"}
    limits = httpx.Limits(max_connections=workers, max_keepalive_connections=workers)
    with httpx.Client(base_url=bureau_url, headers=auth, limits=limits, timeout=30) as http:

        def pin(person: Resident) -> None:
            path = f"/persons/{person.id_number}"
            known = person.record
            (http.delete(path) if known is None else http.put(path, json=known)).raise_for_status()

        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(pin, (p for p in people if not p.minor)))


# --- the database ------------------------------------------------------------------


def seed_partners(settings: Settings) -> str:
    """A hospital (with a webhook URL: decisions queue events) and the bank; the hospital's id."""
    vault, now = get_vault(settings), clock.now()
    with unit_of_work(get_engine(settings)) as session:
        hospital = partners.add_partner(
            session, vault, kind="hospital", name="bench hospital", code="BENCH-HOSPITAL",
            webhook_url="http://127.0.0.1:9/hooks", now=now,
        )  # fmt: skip
        partners.add_partner(session, vault, kind="bank", name="bench bank", code=BANK_CODE,
                             webhook_url=None, now=now)  # fmt: skip
    return hospital.partner_id


def record_enrollments(settings: Settings, hospital_id: str, people: Sequence[Resident],
                       chunk: int = 250, workers: int = 4) -> dict[str, Resident]:  # fmt: skip
    """Pending enrolments through the API's use case, `chunk` per transaction; by id."""
    engine, vault = get_engine(settings), get_vault(settings)
    granted = datetime.fromisoformat("2026-03-01T09:00:00+08:00")

    def record(part: Sequence[Resident]) -> list[tuple[str, Resident]]:
        with unit_of_work(engine) as session:
            now = clock.now()
            return [
                (enrollment.start(
                    session, vault, partner_id=hospital_id, id_number=p.id_number, name=p.name,
                    phone="13800001234", bank_code=BANK_CODE, purpose="medical_credit",
                    granted_at=granted, text_version="v1", now=now,
                ).id, p)
                for p in part
            ]  # fmt: skip

    parts = [people[i : i + chunk] for i in range(0, len(people), chunk)]
    with ThreadPoolExecutor(workers) as pool:
        return {eid: p for done in pool.map(record, parts) for eid, p in done}


def verify(settings: Settings, planned: dict[str, Resident], bank_seed: int,
           decline_rate: float) -> tuple[Counter[str], list[str]]:  # fmt: skip
    """Outcomes by status/reason, and every way the stored result departs from the plan."""
    problems: list[str] = []
    with unit_of_work(get_engine(settings), write=False) as session:
        rows = session.execute(
            select(Enrollment.id, Enrollment.status, Enrollment.decline_reason,
                   Enrollment.attempts, CreditLine.limit_fen)
            .outerjoin(CreditLine, CreditLine.id == Enrollment.credit_line_id)
        ).all()  # fmt: skip
        lines = session.scalar(
            select(func.count()).select_from(CreditLine).where(CreditLine.source == "enrollment")
        )
        announced = Counter(
            str(payload["enrollment_id"])
            for payload in session.scalars(
                select(Event.payload).where(Event.type.like("enrollment.%"))
            )
        )
    outcomes: Counter[str] = Counter()
    wrong: Counter[str] = Counter()
    for row in rows:
        got = "approved" if row.status == "approved" else row.decline_reason or row.status
        outcomes[got] += 1
        want = expected(planned[row.id], row.id, settings, bank_seed, decline_rate)
        if (got, row.limit_fen) != want:
            wrong[f"{want[0]} -> {got}"] += 1
        if announced[row.id] != (0 if row.status == "pending" else 1):
            wrong["events != 1"] += 1
        if row.attempts:
            wrong["postponed at least once"] += 1
    if len(rows) != len(planned):
        problems.append(f"{len(rows)} enrolments stored, {len(planned)} planned")
    if outcomes["pending"]:
        problems.append(f"{outcomes['pending']} still pending")
    if lines != outcomes["approved"]:
        problems.append(f"{lines} lines opened for {outcomes['approved']} approvals")
    problems += [f"{n} x {what}" for what, n in sorted(wrong.items())]
    return outcomes, problems


# --- child processes -------------------------------------------------------------


def simulator(module: str, port: int, key: str, args: argparse.Namespace, *extra: str,
              log: IO[bytes]) -> Child:  # fmt: skip
    command = [sys.executable, "-m", f"simulators.{module}", "--port", str(port),
               "--api-key", key, "--seed", str(args.seed), "--latency-ms",
               str(args.latency_ms), *extra]  # fmt: skip
    return spawn(module, command, {}, f"http://127.0.0.1:{port}/_sim/knobs", log)


def serve_lanes(settings: Settings, prefect_port: int, log: IO[bytes]) -> Child:
    """The `enrollment-lane` deployment served as `credithub up` serves it (each run a
    process of its own): where the flow's helper runs for a large backlog go. Up once
    the deployment exists on the Prefect server."""
    code = "from flows.medical.enrollment import enroll_lane as f; f.serve(name='enrollment-lane')"
    env = {
        **settings.as_environment(),
        **prefect_env(prefect_port, OUT / "prefect"),
        "PREFECT_RUNNER_POLL_FREQUENCY": "1",  # a helper starts within a second of its run
        "PREFECT_LOGGING_LEVEL": "WARNING",
    }
    deployment = f"http://127.0.0.1:{prefect_port}/api/deployments/name/{LANE_DEPLOYMENT}"
    return spawn("enrolment helpers (served)", [sys.executable, "-c", code], env, deployment, log)


# --- CPU accounting (Linux /proc) --------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and its reaped children so far (0 if gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    """A process's resident memory now, in MB (0 if gone)."""
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE_BYTES / 1e6
    except (OSError, IndexError, ValueError):
        return 0.0


PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")


class PeakMemory:
    """The peak resident memory of the flow's process, and of each helper run (the
    processes of the lanes' server's group), sampled twice a second while the flow runs."""

    def __init__(self, lanes: Child | None) -> None:
        self.lanes = lanes.process.pid if lanes else None
        self.peaks = {"flow (this process)": 0.0, "a helper run": 0.0}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def _helpers(self) -> list[int]:
        found = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            with contextlib.suppress(OSError, IndexError, ValueError):
                fields = stat.read_text().rpartition(")")[2].split()
                pid = int(stat.parent.name)
                if int(fields[2]) == self.lanes and pid != self.lanes:  # its group, not itself
                    found.append(pid)
        return found

    def wait_for_helpers_to_end(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while self._helpers() and time.monotonic() < deadline:
            time.sleep(0.2)

    def _watch(self) -> None:
        while not self._stop.wait(0.5):
            flow = self.peaks["flow (this process)"]
            self.peaks["flow (this process)"] = max(flow, rss_mb(os.getpid()))
            for pid in self._helpers() if self.lanes else []:
                self.peaks["a helper run"] = max(self.peaks["a helper run"], rss_mb(pid))

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


def postgres_pids() -> list[int]:
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            if stat.read_text().startswith(f"{stat.parent.name} (postgres)"):
                pids.append(int(stat.parent.name))
    return pids


def cpu_snapshot(running: Sequence[Child]) -> dict[str, float]:
    """CPU seconds so far of this process, each child, and every postgres process."""
    snapshot = {"flow (this process)": time.process_time()}
    snapshot.update({c.name: cpu_seconds(c.process.pid) for c in running})
    snapshot["postgres (all backends)"] = sum(cpu_seconds(p) for p in postgres_pids())
    return snapshot


# --- the run -----------------------------------------------------------------------


def wired_settings(args: argparse.Namespace, database_url: str, bureau_port: int,
                   bank_port: int) -> Settings:  # fmt: skip
    overrides: dict[str, Any] = {
        "enrollment_batch_size": args.batch_size,
        "enrollment_concurrency": args.concurrency,
        "enrollment_lanes": 1 if args.harness else args.lanes,
        "pool_size": args.pool_size,
    }
    return Settings(
        home=OUT,
        database_url=database_url,
        secret_key=SECRET,
        bureau_url=f"http://127.0.0.1:{bureau_port}",
        bureau_api_key=BUREAU_KEY,
        bank_systems={BANK_CODE: {"url": f"http://127.0.0.1:{bank_port}", "api_key": BANK_KEY}},
        **{k: v for k, v in overrides.items() if v is not None},
    )


class RoundTrips:
    """Transactions and statements this process sends to the database while it counts."""

    def __init__(self, engine: Engine) -> None:
        self.engine, self.transactions, self.statements = engine, 0, 0

    def _begin(self, *_: Any) -> None:
        self.transactions += 1

    def _statement(self, *_: Any) -> None:
        self.statements += 1

    @contextlib.contextmanager
    def counting(self) -> Iterator[RoundTrips]:
        event.listen(self.engine, "begin", self._begin)
        event.listen(self.engine, "before_cursor_execute", self._statement)
        try:
            yield self
        finally:
            event.remove(self.engine, "begin", self._begin)
            event.remove(self.engine, "before_cursor_execute", self._statement)


def run_flow(settings: Settings, count: int) -> tuple[float, dict[str, int], RoundTrips]:
    """The real flow, under the Prefect server PREFECT_API_URL names; (seconds, totals, trips)."""
    # Imported here: Prefect reads its settings (PREFECT_API_URL) from the environment.
    from flows.medical.enrollment import enroll_pending
    from hub import context

    ctx = context.use(settings)
    batches = math.ceil(count / settings.enrollment_batch_size) + 1
    with RoundTrips(ctx.engine).counting() as trips:
        started = time.perf_counter()
        state = enroll_pending(max_batches=batches, return_state=True)
        seconds = time.perf_counter() - started
    totals = Counter(state.result())
    totals.update(helpers_totals(state.state_details.flow_run_id))
    # Send the run's last logs and events now, while the server is still up.
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    for service in (APILogWorker, EventsWorker):
        service.drain_all(timeout=30)
    return seconds, totals, trips


def helpers_totals(parent_run_id: Any) -> Counter[str]:
    """What the run's helpers decided, as their summaries show it in the UI."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterFlowRunId,
        ArtifactFilterKey,
        FlowRunFilter,
        FlowRunFilterParentFlowRunId,
    )

    totals: Counter[str] = Counter()
    with get_client(sync_client=True) as client:
        parent = FlowRunFilterParentFlowRunId(any_=[parent_run_id])
        runs = client.read_flow_runs(flow_run_filter=FlowRunFilter(parent_flow_run_id=parent))
        helpers = [r.id for r in runs]
        if not helpers:
            return totals
        summaries = client.read_artifacts(
            artifact_filter=ArtifactFilter(
                key=ArtifactFilterKey(any_=["enrollment-summary"]),
                flow_run_id=ArtifactFilterFlowRunId(any_=helpers),
            )
        )
    for artifact in summaries:
        for row in str(artifact.data).splitlines():
            cells = [c.strip() for c in row.strip().strip("|").split("|")]
            if len(cells) == 2 and cells[1].isdigit() and not cells[0].startswith("("):
                totals[cells[0]] += int(cells[1])
    say(f"{len(helpers)} helper run(s) decided {sum(totals.values())} of the enrolments")
    return totals


def prepare(args: argparse.Namespace, settings: Settings, bureau: Child,
            bank: Child) -> dict[str, Resident]:  # fmt: skip
    say(f"preparing database {DATABASE}: migrations, a hospital and the bank {BANK_CODE}")
    migrate.upgrade(settings)
    hospital_id = seed_partners(settings)
    people = plan_residents(args.count, args.seed)
    auth = {"Authorization": f"Bearer {BUREAU_KEY}"}
    wait_until_up(bureau, headers=auth)
    wait_until_up(bank, headers={"Authorization": f"Bearer {BANK_KEY}"})
    t0 = time.perf_counter()
    pin_records(settings.bureau_url, people)
    say(f"pinned {sum(not p.minor for p in people)} records in the credit-database stand-in "
        f"({time.perf_counter() - t0:.1f} s)")  # fmt: skip
    t0 = time.perf_counter()
    planned = record_enrollments(settings, hospital_id, people)
    say(f"recorded {len(planned)} pending enrolments with hub.enrollment.start "
        f"({time.perf_counter() - t0:.1f} s)")  # fmt: skip
    return planned


def report(args: argparse.Namespace, settings: Settings, seconds: float, totals: dict[str, int],
           outcomes: Counter[str], problems: list[str], cpu: dict[str, float],
           trips: RoundTrips, load: float, memory: dict[str, float]) -> dict[str, Any]:  # fmt: skip
    rate = args.count / seconds
    at_target = TARGET_COUNT / rate  # seconds 10,000 would take at this rate
    target = TARGET_SECONDS.get(args.count)
    say("")
    print(f"{args.count} enrolments decided in {seconds:.1f} s: {rate:.0f} enrolments/s "
          f"(batch {settings.enrollment_batch_size}, concurrency "
          f"{settings.enrollment_concurrency}, pool {settings.pool_size}, partner latency "
          f"{args.latency_ms} ms)")  # fmt: skip
    print(f"\n  {'outcome':<24}{'count':>7}{'share':>8}")
    for outcome, n in sorted(outcomes.items(), key=lambda kv: -kv[1]):
        print(f"  {outcome:<24}{n:>7}{n / args.count:>8.1%}")
    print(f"\n  CPU seconds during the flow ({os.cpu_count()} CPUs, {seconds:.1f} s wall):")
    for name, used in sorted(cpu.items(), key=lambda kv: -kv[1]):
        print(f"  {name:<24}{used:>7.1f}  ({used / args.count * 1000:.2f} ms per enrolment)")
    print(f"\n  database round trips per enrolment: {trips.transactions / args.count:.1f} "
          f"transactions, {trips.statements / args.count:.1f} statements")  # fmt: skip
    print("\n  peak memory: " + ", ".join(f"{k} {v:.0f} MB" for k, v in memory.items()))
    speed = (
        {f"{args.count:,} enrolments in under {target:g} s": seconds < target}
        if target
        else {
            f"{TARGET_COUNT:,} enrolments in under {TARGET_SECONDS[TARGET_COUNT]:g} s "
            f"(at this rate: {at_target:.0f} s)": at_target < TARGET_SECONDS[TARGET_COUNT]
        }
    )
    targets = {
        **speed,
        "every enrolment decided once, as planned; one line per approval": not problems,
        "the flow's totals match what is stored": totals == dict(outcomes),
    }
    print()
    for name, met in targets.items():
        print(f"  [{'met' if met else 'MISSED'}] {name}")
    for problem in problems:
        print(f"    {problem}")
    return {
        "count": args.count,
        "seconds": round(seconds, 3),
        "enrollments_per_second": round(rate, 1),
        "seconds_for_10000": round(at_target, 1),
        "outcomes": dict(outcomes),
        "flow_totals": totals,
        "problems": problems,
        "cpu_seconds_during_flow": {k: round(v, 2) for k, v in cpu.items()},
        "peak_memory_mb": {k: round(v, 1) for k, v in memory.items()},
        "per_enrollment": {
            "transactions": round(trips.transactions / args.count, 2),
            "statements": round(trips.statements / args.count, 2),
        },
        "targets": targets,
        "setup": {
            "batch_size": settings.enrollment_batch_size,
            "concurrency": settings.enrollment_concurrency,
            "lanes": settings.enrollment_lanes,
            "pool_size": settings.pool_size,
            "latency_ms": args.latency_ms,
            "bank_decline_rate": args.decline_rate,
            "prefect": "test harness" if args.harness else "local server",
            "database": "PostgreSQL",
            "cpus": os.cpu_count(),
            "load_average_at_start": round(load, 2),
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, nargs="+", default=[TARGET_COUNT, 100_000],
                        help="enrolments to decide, a run for each count")  # fmt: skip
    parser.add_argument("--latency-ms", type=int, default=0, help="each partner call's delay")
    parser.add_argument("--batch-size", type=int, help="default: the setting (500)")
    parser.add_argument("--concurrency", type=int, help="default: the setting (16)")
    parser.add_argument("--lanes", type=int, help="runs deciding a backlog (default: the setting)")
    parser.add_argument("--pool-size", type=int, help="default: the setting (40)")
    parser.add_argument("--decline-rate", type=float, default=0.05, help="the bank's")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--harness", action="store_true",
                        help="Prefect's test harness instead of a local server")  # fmt: skip
    args = parser.parse_args()
    # A SIGTERM unwinds like Ctrl-C, so the child processes are always stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    OUT.mkdir(parents=True, exist_ok=True)
    if len(args.count) == 1:
        run = measure(argparse.Namespace(**{**vars(args), "count": args.count[0]}))
        (OUT / f"enrollments-{args.count[0]}.json").write_text(json.dumps(run))
        runs = [run]
    else:  # each count in a process of its own: Prefect keeps its server's address per process
        for count in args.count:
            subprocess.run([sys.executable, __file__, *one_count(args, count)], check=True)
        runs = [json.loads((OUT / f"enrollments-{n}.json").read_text()) for n in args.count]
    flat = memory_flat(runs)
    path = OUT / "enrollments.json"
    path.write_text(json.dumps({"runs": runs, **flat}, indent=2, ensure_ascii=False) + "\n")
    print(f"\nwritten to {path.relative_to(ROOT)}")


def one_count(args: argparse.Namespace, count: int) -> list[str]:
    """The command line of a run of this bench for one count, the other options kept."""
    argv = ["--count", str(count), "--seed", str(args.seed), "--decline-rate",
            str(args.decline_rate), "--latency-ms", str(args.latency_ms)]  # fmt: skip
    for option in ("batch_size", "concurrency", "lanes", "pool_size"):
        if getattr(args, option) is not None:
            argv += [f"--{option.replace('_', '-')}", str(getattr(args, option))]
    return argv + (["--harness"] if args.harness else [])


def memory_flat(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Whether the peak memory at 100,000 stays within FLAT of that at 10,000."""
    by_count = {run["count"]: run["peak_memory_mb"] for run in runs}
    if TARGET_COUNT not in by_count or 100_000 not in by_count:
        return {}
    small, large = by_count[TARGET_COUNT], by_count[100_000]
    flat = all(large[k] <= small[k] * FLAT + NOISE_MB for k in small)
    print(f"\n  [{'met' if flat else 'MISSED'}] memory flat from 10,000 to 100,000 enrolments: "
          + "; ".join(f"{k} {small[k]:.0f} -> {large[k]:.0f} MB" for k in small))  # fmt: skip
    return {"memory_flat": flat}


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """One count: a fresh database, stand-ins and Prefect server; the flow timed; checked."""
    load = os.getloadavg()[0]
    say(f"load average {load:.2f} on {os.cpu_count()} CPUs (other work here skews the figures)")
    bureau_port, bank_port, prefect_port = free_port(), free_port(), free_port()
    settings = wired_settings(args, fresh_database(DATABASE), bureau_port, bank_port)
    with (OUT / "enrollments.log").open("wb") as log, children() as running:
        say(f"starting the stand-ins (latency {args.latency_ms} ms) and "
            f"{'' if args.harness else 'a local Prefect server'}")  # fmt: skip
        bureau = simulator("credit_bureau", bureau_port, BUREAU_KEY, args, log=log)
        bank = simulator("bank", bank_port, BANK_KEY, args, "--decline-rate",
                         str(args.decline_rate), log=log)  # fmt: skip
        running += [bureau, bank]
        if not args.harness:
            shutil.rmtree(OUT / "prefect", ignore_errors=True)  # a fresh server, no old runs
            running.append(prefect_server(prefect_port, log, OUT / "prefect"))
            os.environ.update(prefect_env(prefect_port, OUT / "prefect"))
        planned = prepare(args, settings, bureau, bank)
        dispose_engines()
        with contextlib.ExitStack() as stack:
            if args.harness:
                from prefect.testing.utilities import prefect_test_harness

                stack.enter_context(prefect_test_harness(server_startup_timeout=60))
            else:
                t0 = time.perf_counter()
                wait_until_up(running[-1], timeout=120)
                say(f"Prefect server up on 127.0.0.1:{prefect_port} "
                    f"(waited {time.perf_counter() - t0:.1f} s more)")  # fmt: skip
                if settings.enrollment_lanes > 1:
                    running.append(serve_lanes(settings, prefect_port, log))
                    wait_until_up(running[-1], timeout=120)
                    say("the enrollment-lane deployment is served: the flow's helpers run there")
            say(f"running the flow enroll_pending over {args.count} pending enrolments ...")
            before = cpu_snapshot(running)
            at_start = rss_mb(os.getpid())
            lanes = running[-1] if settings.enrollment_lanes > 1 and not args.harness else None
            with PeakMemory(lanes) as peaks:
                seconds, totals, trips = run_flow(settings, args.count)
                if lanes:  # a helper's CPU is counted once its process has ended
                    peaks.wait_for_helpers_to_end(timeout=15)
            after = cpu_snapshot(running)
    memory = {
        "flow process, growth": max(0.0, peaks.peaks["flow (this process)"] - at_start),
        **({"a helper run": peaks.peaks["a helper run"]} if lanes else {}),
    }
    cpu = {name: after[name] - before[name] for name in before}
    outcomes, problems = verify(settings, planned, args.seed, args.decline_rate)
    dispose_engines()
    return report(args, settings, seconds, totals, outcomes, problems, cpu, trips, load, memory)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(130)
