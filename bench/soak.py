"""`bench/soak.py --minutes N`: both programmes under partner faults and `kill -9`,
then every invariant checked.

The whole hub runs as `credithub up` runs it — the Prefect server, the
stand-ins, the API, the flow runner serving every deployment — on a scratch
PostgreSQL database, with the stand-ins' fault knobs on (errors, timeouts and
garbage from the credit database and the banks). For N minutes:

- hospitals enrol residents (decided by the enrolment flow through the credit
  database and the bank), and open visits, hold charges and close them with
  their bills;
- a bank reports loan repayments;
- an operator closes the settlement window now and then (the settlement flow
  pays each hospital's net through the bank);
- at seeded random moments the API or the flow runner is killed with SIGKILL
  and started again.

Partners act as the contract asks: a request that gets no answer, a 429 or a
5xx is sent again under the same Idempotency-Key. Then the faults stop, the
flows finish their work, every acknowledged request is sent once more, and the
soak checks: each acknowledged write stored with its acknowledged amount and
replayed with its first answer; each key one effect; no line over its limit;
the ledger agreeing with the lines, loans and payables; each settlement line
paid once at the bank and each enrolment decided once there; every event
delivered. It prints what it did and found, and exits 1 if anything is wrong.

Environment: CREDITHUB_BENCH_ADMIN_URL (a PostgreSQL database to connect to for
CREATE DATABASE; default postgresql+psycopg://root@127.0.0.1:5432/test).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import itertools
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import redis
from sqlalchemy import func, select, text
from support import (  # bench/support.py
    drop_databases,
    free_port,
    fresh_database,
    prefect_apart,
    say,
)

from credithub import demo, supervisor
from credithub.demo_world import STAND_IN_KEY, as_environment, overrides
from credithub.threaded_server import serve
from hub import books
from hub.core import clock, migrate
from hub.core.books import describe
from hub.core.db import dispose_engines, get_engine, unit_of_work
from hub.core.personal_data import get_vault
from hub.medical.lines import grant_access, open_line
from hub.medical.settlement import payout_id
from hub.settings import Settings
from models.core.tables import Event, Partner
from models.loans.tables import LoanRepayment
from models.medical.tables import Authorization, CreditLine, Enrollment, SettlementLine
from simulators.webhook_receiver import WebhookReceiver

FAULTS = {"error_rate": 0.1, "timeout_rate": 0.03, "timeout_sleep_s": 3.0, "garbage_rate": 0.02}
LINES, LOANS, LINE_LIMIT_FEN = 40, 20, 1_500_000  # 15,000 yuan: a few holds refused (402)
PATIENCE_S = 180  # for the flows to finish once the faults stop


# --- the hub, started as `up` starts it ------------------------------------------------


@dataclass
class Hub:
    settings: Settings
    parts: dict[str, supervisor.Part]
    env: dict[str, str]
    logs: Path
    keys: dict[str, str]
    kills: Counter[str] = field(default_factory=Counter)

    apart: bool = False  # the parts run apart: two APIs, two Prefect servers, two workers

    @property
    def api(self) -> str:
        return self.apis[0]

    @property
    def apis(self) -> list[str]:
        """Each API process's base URL (partners spread over them)."""
        return [p.address for name, p in sorted(self.parts.items()) if name.startswith("api")]

    @property
    def victims(self) -> list[str]:
        """The parts the chaos kills in turn: an API and what runs the flows."""
        return ["api-1", "worker-1"] if self.apart else ["api", "flows"]

    def restart(self, name: str) -> None:
        part = self.parts[name]
        supervisor.start(part, self.env, self.logs)
        supervisor.wait_healthy(part, 90)

    def kill(self, name: str) -> None:
        """SIGKILL to the part's whole process group, as `kill -9` would. A worker is
        killed as its machine would die: while it runs a flow (if one starts within
        20 s), together with its flow runs' processes (each in a group of its own)."""
        part = self.parts[name]
        assert part.process is not None
        doomed = []
        if name.startswith("worker"):
            deadline = time.monotonic() + 20
            while not (doomed := descendants(part.process.pid)) and time.monotonic() < deadline:
                time.sleep(0.2)
            if doomed:
                self.kills[f"{name}'s flow runs"] += 1
        with contextlib.suppress(ProcessLookupError):
            os.killpg(part.process.pid, signal.SIGKILL)
        for pid in doomed:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        part.process.wait()
        self.kills[name] += 1


def descendants(pid: int) -> list[int]:
    """Every process below `pid` (from /proc), however its groups are set."""
    parents: dict[int, list[int]] = defaultdict(list)
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            parents[int(fields[1])].append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        children = parents.get(todo.pop(), [])
        found += children
        todo += children
    return found


def soak_settings(
    home: Path, database_url: str, ports: dict[str, int], redis_url: str | None = None
) -> dict[str, Any]:
    """The demo's world (its partners, the stand-ins' addresses), polled more often,
    with the partners' limits as in production (shared in Redis when `redis_url`)."""
    window = Settings.model_fields["repayment_window_days"].default
    shared = {"redis_url": redis_url, "redis_key_prefix": f"soak-{uuid.uuid4().hex}"}
    return {
        **overrides(home, database_url, window, ports),
        "secret_key": "credithub-soak-secret",
        "enrollment_interval_seconds": 5,
        "webhook_interval_seconds": 5,
        "enrollment_retry_seconds": 5,
        "enrollment_claim_seconds": 15,  # a killed run's batch is taken again this soon
        "rate_limit_per_second": Settings.model_fields["rate_limit_per_second"].default,
        **(shared if redis_url else {}),
    }


def seed_world(settings: Settings, keys: dict[str, str]) -> dict[str, list[str]]:
    """Lines every hospital may use, and active loans of the first bank."""
    sys.path.insert(0, str(Path(__file__).parent))
    from loans import load_loans  # bench/loans.py

    from hub.loans import servicing

    vault, now, engine = get_vault(settings), clock.now(), get_engine(settings)
    with unit_of_work(engine) as session:
        ids = {
            code: partner_id
            for code, partner_id in session.execute(select(Partner.code, Partner.id))
        }
        hospitals = [ids[c] for k, c, _ in demo.demo_partners() if k == "hospital"]
        lines = []
        for n in range(LINES):
            line = open_line(
                session,
                vault,
                id_number=f"soak-{n:04d}",
                name="浸泡",
                phone=None,
                bank_id=ids["XMBANK"],
                limit_fen=LINE_LIMIT_FEN,
                source="soak",
                now=now,
            )
            for hospital in hospitals:
                grant_access(session, hospital, line.id)
            lines.append(line.id)
    load_loans(engine, ids["IXM"], [ids["XMBANK"]], LOANS, 10_000_000, None)
    paid_out = clock.now()  # after the offers were accepted
    with unit_of_work(engine) as session:
        loans = list(session.scalars(text("SELECT id FROM loans ORDER BY id")))
        for loan_id in loans:
            servicing.disburse(
                session,
                bank_id=ids["XMBANK"],
                loan_id=loan_id,
                amount_fen=10_000_000,
                bank_txn_id=f"D-{loan_id}",
                disbursed_at=paid_out,
                zone=settings.business_timezone,
                now=paid_out,
            )
    return {"lines": lines, "loans": loans}


def parts_apart(plan: list[supervisor.Part], ports: dict[str, int]) -> list[supervisor.Part]:
    """The stand-ins of `plan`, and instead of `up`'s one Prefect server, flow runner
    and API: two Prefect servers with the background services apart, two workers
    (one on each server) and two API processes (each asking its own server)."""
    credithub = str(supervisor.BIN / "credithub")
    servers, services, workers = prefect_apart(ports, "soak")
    prefect = {n: server.address for n, server in zip("ab", servers, strict=True)}

    def on(server: str, *argv: str) -> list[str]:  # a command talking to one server
        return ["env", f"PREFECT_API_URL={prefect[server]}/api", credithub, *argv]

    def part(name: str, argv: list[str], health: str, address: str, rank: int) -> supervisor.Part:
        return supervisor.Part(name, argv, health, address, stop_rank=rank)

    kept = [p for p in plan if p.name not in ("prefect", "flows", "api")]
    apis = [
        part(
            f"api-{n}",
            on(s, "api", "--port", str(ports[f"api-{n}"])),
            f"http://127.0.0.1:{ports[f'api-{n}']}/v1/health",
            f"http://127.0.0.1:{ports[f'api-{n}']}",
            3,
        )
        for n, s in (("1", "a"), ("2", "b"))
    ]
    return [*servers, services, *kept, *apis, *workers]


@contextlib.contextmanager
def running_hub(database_url: str, hook_url: str, redis_url: str | None = None) -> Iterator[Hub]:
    """The hub as `up` runs it; with `redis_url`, its parts apart (`parts_apart`)."""
    home = Path(tempfile.mkdtemp(prefix="credithub-soak-"))
    logs = home / "logs"
    logs.mkdir()
    apart = redis_url is not None
    names = ["prefect", "api", "bureau", "his", "XMBANK", "XMRCB"]
    names += ["prefect-a", "prefect-b", "api-1", "api-2"] if apart else []
    ports = {name: free_port() for name in names}
    changes = soak_settings(home, database_url, ports, redis_url)
    settings = Settings(**changes)
    migrate.upgrade(settings)
    keys = demo.ensure_partners(settings, {}, webhook_url=hook_url)
    up_file = home / "up.json"
    demo.write_up_file(up_file, {"partner_keys": keys})
    plan = supervisor.plan(settings, ports, up_file)
    prefect_port = ports["prefect-a" if apart else "prefect"]
    if apart:
        plan = parts_apart(plan, ports)
    parts = {p.name: p for p in plan}
    env = {
        **os.environ,
        **supervisor.prefect_env(settings, prefect_port),
        **as_environment(changes),
        "PREFECT_LOGGING_LEVEL": "WARNING",
        "PREFECT_RUNNER_POLL_FREQUENCY": "2",
    }
    if apart:  # eleven processes on one PostgreSQL (100 connections) beside the tests'
        env |= {
            "CREDITHUB_FLOW_RUNS_AT_ONCE": "2",
            "PREFECT_SERVER_DATABASE_SQLALCHEMY_POOL_SIZE": "3",
            "PREFECT_SERVER_DATABASE_SQLALCHEMY_MAX_OVERFLOW": "4",
        }
    os.environ.update(supervisor.prefect_env(settings, prefect_port))
    from flows.serve import schedules

    deployments = list(schedules(settings))
    hub = Hub(settings, parts, env, logs, keys, apart=apart)
    try:
        for part in plan:
            if part.name == "prefect-services":  # the servers are up: deploy to them
                deployed = subprocess.run(
                    [str(supervisor.BIN / "credithub"), "deploy"],
                    env=env,
                    stdout=(logs / "deploy.log").open("ab"),
                    stderr=subprocess.STDOUT,
                )
                assert deployed.returncode == 0, (logs / "deploy.log").read_text()[-3000:]
            if part.name == "flows":
                part.ready = functools.partial(
                    supervisor.deployments_served,
                    part.address.rsplit("/", 1)[0],
                    deployments,
                    datetime.now(UTC),
                )
            supervisor.start(part, env, logs)
            supervisor.wait_healthy(part, 90)
        yield hub
    finally:
        supervisor.stop(plan)
        say(f"  (the parts' logs: {logs})")


def stand_ins(hub: Hub) -> dict[str, str]:
    """Each faulty stand-in's base URL, by part name."""
    return {
        name: p.address for name, p in hub.parts.items() if name.startswith(("bank-", "credit"))
    }


def set_faults(hub: Hub, knobs: dict[str, Any]) -> None:
    for url in stand_ins(hub).values():
        httpx.put(f"{url}/_sim/knobs", json=knobs, headers=_bearer(STAND_IN_KEY), timeout=10)


def _bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


# --- partners' traffic -----------------------------------------------------------------


@dataclass(eq=False)
class Sent:
    """One request and what became of it."""

    who: str
    path: str
    body: dict[str, Any]
    key: str = field(default_factory=lambda: uuid.uuid4().hex)
    tries: int = 0
    unanswered: int = 0  # tries that got no answer, a 429 or a 5xx
    answer: httpx.Response | None = None


class Partners:
    """The partners' systems: each request sent until answered, under its key."""

    def __init__(self, hub: Hub, stop: threading.Event):
        self.hub, self.stop, self.sent, self.lock = hub, stop, list[Sent](), threading.Lock()

    def post(
        self,
        client: httpx.Client,
        who: str,
        path: str,
        body: dict[str, Any],
        until_answered: bool = False,
    ) -> Sent:
        """Send until answered, or (`until_answered` aside) until the soak stops."""
        sent = Sent(who, path, body)
        with self.lock:
            self.sent.append(sent)
        self.deliver(client, sent, give_up=None if until_answered else self.stop)
        return sent

    def deliver(self, client: httpx.Client, sent: Sent, give_up: threading.Event | None) -> None:
        headers = {**_bearer(self.hub.keys[sent.who]), "Idempotency-Key": sent.key}
        while give_up is None or not give_up.is_set():
            sent.tries += 1
            try:
                answer = client.post(sent.path, json=sent.body, headers=headers)
            except httpx.TransportError:
                answer = None
            if answer is not None and answer.status_code != 429 and answer.status_code < 500:
                sent.answer = answer
                return
            sent.unanswered += 1
            time.sleep(0.2)


def hospital_desk(partners: Partners, world: dict[str, list[str]], seed: int) -> None:
    """Visits: opened, a few charges held, closed with the bill; now and then an enrolment."""
    rng, hospitals = random.Random(seed), [c for k, c, _ in demo.demo_partners() if k == "hospital"]
    api = partners.hub.apis[seed % len(partners.hub.apis)]  # the desks spread over the APIs
    with httpx.Client(base_url=api, timeout=30) as client:
        for n in itertools.count():
            if partners.stop.is_set():
                return
            who, ref = rng.choice(hospitals), f"S{seed}-{n}"
            if rng.random() < 0.2:
                number = _resident(seed * 1_000_000 + n)
                pin_resident(partners.hub, number)
                consent = {
                    "purpose": "medical_credit",
                    "granted_at": clock.now().isoformat(),
                    "text_version": "v1",
                }
                partners.post(
                    client,
                    who,
                    "/v1/enrollments",
                    {
                        "id_number": number,
                        "name": "浸泡",
                        "phone": "13800001234",
                        "bank_code": "XMBANK",
                        "consent": consent,
                    },
                )
                continue
            line = rng.choice(world["lines"])
            opened = partners.post(
                client,
                who,
                "/v1/visits",
                {"credit_line_id": line, "his_visit_id": ref, "kind": "outpatient"},
            )
            if opened.answer is None or opened.answer.status_code != 201:
                continue
            visit = opened.answer.json()["visit_id"]
            held = 0
            for item in range(rng.randint(1, 3)):
                amount = rng.randint(1, 50) * 100
                hold = partners.post(
                    client,
                    who,
                    f"/v1/visits/{visit}/authorizations",
                    {"amount_fen": amount, "his_order_id": f"{ref}-{item}"},
                )
                if hold.answer is not None and hold.answer.status_code == 201:
                    held += amount
            bill = {
                "his_bill_id": ref,
                "total_fen": held,
                "insurance_fen": 0,
                "self_pay_fen": held,
                "items": [{"code": "X", "name": "care", "amount_fen": held}],
            }
            partners.post(client, who, f"/v1/visits/{visit}/close", bill)


def pin_resident(hub: Hub, number: str) -> None:
    """The resident as the public credit database knows them (until it answers)."""
    bureau = hub.parts["credit-bureau"].address
    person = {"name": "浸泡", "score": 720, "dishonest_debtor": False, "insured": True}
    for _ in range(50):
        with contextlib.suppress(httpx.HTTPError):
            r = httpx.put(
                f"{bureau}/persons/{number}", json=person, headers=_bearer(STAND_IN_KEY), timeout=5
            )
            if r.status_code == 200:
                return
        time.sleep(0.1)


def bank_desk(partners: Partners, world: dict[str, list[str]], seed: int) -> None:
    """Loan repayments of a few yuan, on loans chosen at random."""
    rng = random.Random(seed)
    paid_at = clock.now().isoformat()
    with httpx.Client(base_url=partners.hub.apis[-1], timeout=30) as client:
        for n in itertools.count():
            if partners.stop.is_set():
                return
            loan = rng.choice(world["loans"])
            body = {
                "amount_fen": rng.randint(1, 10) * 100,
                "bank_txn_id": f"R{seed}-{n}",
                "paid_at": paid_at,
            }
            partners.post(client, "XMBANK", f"/v1/loans/{loan}/repayments", body)
            time.sleep(0.05)


def operator_desk(partners: Partners, every_s: float) -> None:
    """Closes the settlement window now and then (a settlement run follows)."""
    with httpx.Client(base_url=partners.hub.api, timeout=30) as client:
        while not partners.stop.wait(every_s):
            partners.post(client, "OPS", "/v1/settlement-windows/close", {})


def _resident(n: int) -> str:
    """A valid resident identity number, nearly always distinct per n (GB 11643)."""
    born = f"{1960 + n // 336_000 % 40}{1 + n // 28_000 % 12:02d}{1 + n // 1000 % 28:02d}"
    first17 = f"350203{born}{n % 1000:03d}"
    weights = [pow(2, 17 - i, 11) for i in range(17)]
    return (
        first17 + "10X98765432"[sum(int(d) * w for d, w in zip(first17, weights, strict=True)) % 11]
    )


def chaos(hub: Hub, stop: threading.Event, seed: int, mean_gap_s: float) -> None:
    """At seeded random moments, SIGKILL the API and the flow runner (a worker, when
    the parts run apart) in turn, each at least once, then start it again after a
    random pause."""
    rng, victims = random.Random(seed), itertools.cycle(hub.victims)
    for n in itertools.count():
        # Each victim at least once, however short the soak.
        if stop.wait(rng.uniform(0.5, 1.5) * mean_gap_s) and n >= len(hub.victims):
            return
        victim = next(victims)
        say(f"  kill -9 {victim}")
        hub.kill(victim)
        time.sleep(rng.uniform(0.2, 2.0))
        hub.restart(victim)


# --- the end: quiet, replay, check --------------------------------------------------------


def wait_until(what: str, done: Callable[[], bool], patience: float) -> bool:
    deadline = time.monotonic() + patience
    while time.monotonic() < deadline:
        if done():
            return True
        time.sleep(2)
    say(f"  not done within {patience:g} s: {what}")
    return False


def events_delivered(settings: Settings) -> bool:
    undelivered = select(func.count()).where(Event.delivered_at.is_(None))
    return wait_until("events delivered", lambda: scalar(settings, undelivered) == 0, PATIENCE_S)


def scalar(settings: Settings, statement: Any) -> int:
    with unit_of_work(get_engine(settings), write=False) as session:
        return int(session.scalar(statement) or 0)


def checks(hub: Hub, partners: Partners, receiver: WebhookReceiver) -> list[tuple[str, bool, str]]:
    """(invariant, holds, what was found) for each invariant."""
    s, found = hub.settings, []
    answered = [x for x in partners.sent if x.answer is not None]
    found.append(
        (
            "every request answered in the end",
            len(answered) == len(partners.sent),
            f"{len(answered)} of {len(partners.sent)}",
        )
    )

    # Replays: each acknowledged request again under its key, the same answer back.
    differing = 0
    with httpx.Client(base_url=hub.api, timeout=30) as client:
        for sent in answered:
            first = sent.answer
            assert first is not None
            if first.status_code not in (200, 201, 202, 402, 409):
                continue
            headers = {**_bearer(hub.keys[sent.who]), "Idempotency-Key": sent.key}
            again = client.post(sent.path, json=sent.body, headers=headers)
            same = (again.status_code, again.text) == (first.status_code, first.text)
            if not same or again.headers.get("idempotent-replayed") != "true":
                differing += 1
    found.append(
        (
            "each acknowledged request replays with its first answer",
            differing == 0,
            f"{differing} differ",
        )
    )

    # The flows run on while the requests are replayed (crons, polling): what they
    # queued meanwhile is delivered before the events are counted.
    events_delivered(s)
    with unit_of_work(get_engine(s), write=False) as session:
        holds = {
            i: fen for i, fen in session.execute(select(Authorization.id, Authorization.amount_fen))
        }
        repaid = {
            i: fen for i, fen in session.execute(select(LoanRepayment.id, LoanRepayment.amount_fen))
        }
        over = session.scalar(
            select(func.count()).where(
                CreditLine.held_fen + CreditLine.outstanding_fen > CreditLine.limit_fen
            )
        )
        lost_books = books.discrepancies(session)
        enrolments = {i: st for i, st in session.execute(select(Enrollment.id, Enrollment.status))}
        settled = session.execute(
            select(
                SettlementLine.id, SettlementLine.net_fen, SettlementLine.status, Partner.code
            ).join(Partner, Partner.id == SettlementLine.bank_id)
        ).all()
        undelivered = session.scalar(select(func.count()).where(Event.delivered_at.is_(None)))
        enrolment_lines = session.scalar(
            select(func.count()).where(CreditLine.source == "enrollment")
        )
        events = set(session.scalars(select(Event.event_id)))

    def made(marker: str, id_field: str) -> dict[str, int]:
        return {
            x.answer.json()[id_field]: x.answer.json()["amount_fen"]
            for x in answered
            if marker in x.path and x.answer is not None and x.answer.status_code == 201
        }

    acked_holds, acked_repaid = (
        made("/authorizations", "authorization_id"),
        made("/repayments", "repayment_id"),
    )
    found.append(
        (
            "each hold key one hold, stored with its acknowledged amount",
            holds == acked_holds,
            f"{len(holds)} stored, {len(acked_holds)} acknowledged",
        )
    )
    found.append(
        (
            "each repayment key one repayment, with its amount",
            repaid == acked_repaid,
            f"{len(repaid)} stored, {len(acked_repaid)} acknowledged",
        )
    )
    found.append(("no line over its limit", over == 0, f"{over} over"))
    found.append(
        (
            "the ledger agrees with the lines, loans, payables",
            not lost_books,
            describe(lost_books) if lost_books else "every account",
        )
    )

    bank = hub.parts["bank-XMBANK"].address
    effects = httpx.get(f"{bank}/_sim/effects", headers=_bearer(STAND_IN_KEY), timeout=30).json()
    pending = [i for i, status in enrolments.items() if status == "pending"]
    found.append(
        (
            "every enrolment decided",
            not pending,
            ", ".join(f"{n} {status}" for status, n in Counter(enrolments.values()).most_common()),
        )
    )
    approved_at_bank = {e for e, decision in effects["decisions"].items() if decision == "approved"}
    approved = {i for i, status in enrolments.items() if status == "approved"}
    found.append(
        (
            "each approved enrolment one line, granted once by the bank",
            approved == approved_at_bank and enrolment_lines == len(approved),
            f"{len(approved)} approved, {len(approved_at_bank)} granted at the bank, "
            f"{enrolment_lines} lines opened",
        )
    )
    owed = {
        payout_id(line_id): net
        for line_id, net, status, code in settled
        if code == "XMBANK" and net > 0
    }
    unpaid = [line_id for line_id, net, status, _ in settled if net > 0 and status != "settled"]
    paid = effects["payouts"]
    found.append(
        (
            "each settlement line paid once at the bank, its net amount",
            paid == owed and not unpaid,
            f"{len(paid)} payouts for {len(owed)} lines, {len(unpaid)} unpaid",
        )
    )
    told = {delivery.event_id for delivery in receiver.received}  # after the count above
    found.append(
        (
            "every event delivered (at least once)",
            undelivered == 0 and events <= told,
            f"{len(events)} events, {undelivered} undelivered",
        )
    )
    return found


def faults_injected(hub: Hub) -> Counter[str]:
    total: Counter[str] = Counter()
    for url in stand_ins(hub).values():
        total.update(
            httpx.get(f"{url}/_sim/faults", headers=_bearer(STAND_IN_KEY), timeout=10).json()
        )
    return total


def flow_runs() -> tuple[dict[str, Counter[str]], float]:
    """Our deployments' runs due by now, by state; the longest a run waited to start (s)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterDeploymentId,
        FlowRunFilterExpectedStartTime,
    )

    from flows.serve import read_all_runs

    with get_client(sync_client=True) as client:
        names = {d.id: d.name for d in client.read_deployments()}
        where = FlowRunFilter(
            deployment_id=FlowRunFilterDeploymentId(any_=list(names)),
            expected_start_time=FlowRunFilterExpectedStartTime(before_=datetime.now(UTC)),
        )
        runs = read_all_runs(client, where)
    by_state: dict[str, Counter[str]] = defaultdict(Counter)
    longest = 0.0
    for run in runs:
        by_state[names[run.deployment_id]][run.state_name or "?"] += 1
        if run.start_time and run.expected_start_time:
            longest = max(longest, (run.start_time - run.expected_start_time).total_seconds())
    return by_state, longest


def soak(minutes: float, seed: int, database: str, redis_url: str | None = None) -> bool:
    """Run the soak on a scratch database (dropped after, and Prefect's beside it);
    whether every invariant held."""
    url = fresh_database(database)
    try:
        return run_soak(minutes, seed, url, redis_url)
    finally:
        dispose_engines()
        drop_databases(database, f"{database}_prefect")


def run_soak(minutes: float, seed: int, url: str, redis_url: str | None = None) -> bool:
    receiver = WebhookReceiver()
    if redis_url:  # Prefect's streams from an earlier run must not reach this one
        redis.Redis.from_url(redis_url).flushdb()

    with serve(receiver) as hook_url, running_hub(url, hook_url, redis_url) as hub:
        world = seed_world(hub.settings, hub.keys)
        set_faults(hub, {**FAULTS, "seed": seed})
        stop = threading.Event()
        partners = Partners(hub, stop)
        desks = [
            threading.Thread(target=hospital_desk, args=(partners, world, seed * 10 + n))
            for n in range(3)
        ] + [
            threading.Thread(target=bank_desk, args=(partners, world, seed * 10 + 7)),
            threading.Thread(target=operator_desk, args=(partners, max(5.0, minutes * 6))),
            threading.Thread(target=chaos, args=(hub, stop, seed, max(8.0, minutes * 6))),
        ]
        started = time.monotonic()
        say(f"soak: {minutes:g} min of traffic, faults {FAULTS}, seed {seed}")
        for desk in desks:
            desk.start()
        while time.monotonic() - started < minutes * 60:
            time.sleep(1)
        stop.set()
        for desk in desks:
            desk.join()
        for name in hub.victims:  # the chaos may have left one down between kill and start
            part = hub.parts[name]
            if part.process is None or part.process.poll() is not None:
                hub.restart(name)
        faults = faults_injected(hub)
        set_faults(hub, {"error_rate": 0.0, "timeout_rate": 0.0, "garbage_rate": 0.0})
        say("quiet: faults off; finishing what is left")
        with httpx.Client(base_url=hub.api, timeout=30) as client:
            for sent in [x for x in partners.sent if x.answer is None]:
                partners.deliver(client, sent, give_up=None)
            last = partners.post(
                client, "OPS", "/v1/settlement-windows/close", {}, until_answered=True
            )
            assert last.answer is not None and last.answer.status_code == 202, last.answer
        s = hub.settings
        wait_until(
            "enrolments decided",
            lambda: scalar(s, select(func.count()).where(Enrollment.status == "pending")) == 0,
            PATIENCE_S,
        )
        wait_until(
            "settlement lines paid",
            lambda: (
                scalar(
                    s,
                    select(func.count()).where(
                        SettlementLine.net_fen > 0, SettlementLine.status != "settled"
                    ),
                )
                == 0
            ),
            PATIENCE_S,
        )
        events_delivered(s)
        found = checks(hub, partners, receiver)
        if hub.apart:  # collections too, on whichever worker takes it
            from credithub import runner

            collected = runner.run_now(s, "collections", None)
            found.append(("collections ran on a worker", collected.ok, collected.state))
        report(minutes, partners, faults, hub.kills, found, flow_runs())
    return all(ok for _, ok, _ in found)


def report(
    minutes: float,
    partners: Partners,
    faults: Counter[str],
    kills: Counter[str],
    found: list[tuple[str, bool, str]],
    runs: tuple[dict[str, Counter[str]], float],
) -> None:
    sent = partners.sent
    by_kind = Counter(_kind(x.path) for x in sent)
    acknowledged = sum(1 for x in sent if x.answer is not None and x.answer.status_code < 300)
    print(f"\n## Soak: {minutes:g} minutes\n")
    print(
        f"- requests: {len(sent)} ({', '.join(f'{k} {n}' for k, n in by_kind.most_common())}); "
        f"tries {sum(x.tries for x in sent)}, of which unanswered (killed, 429, 5xx) "
        f"{sum(x.unanswered for x in sent)}"
    )
    print(f"- acknowledged (2xx): {acknowledged}")
    print(f"- faults injected by the stand-ins: {dict(faults)}")
    print(f"- kill -9: {dict(kills)}")
    by_state, longest = runs
    print(  # a poll due while one runs is cancelled (flows/serve.py)
        "- flow runs: "
        + "; ".join(
            f"{name} {', '.join(f'{n} {state}' for state, n in states.most_common())}"
            for name, states in sorted(by_state.items())
        )
        + f"; the longest wait for a start {longest:.0f} s"
    )
    print("\n| invariant | holds | found |\n|---|---|---|")
    for name, ok, what in found:
        print(f"| {name} | {'yes' if ok else '**NO**'} | {what} |")
    lost = not all(ok for _, ok, _ in found)
    print(
        "\n" + ("SOMETHING IS WRONG: see the table" if lost else "nothing lost, nothing done twice")
    )


def _kind(path: str) -> str:
    """The route of a path: `/v1/visits/vis_01.../close` → `visits/{id}/close`."""
    return re.sub(r"/[a-z]+_[0-9a-z]{16,}", "/{id}", path.removeprefix("/v1/"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10, help="how long the traffic runs")
    parser.add_argument("--seed", type=int, default=1, help="the random choices and the faults")
    parser.add_argument("--database", default=f"credithub_soak_{os.getpid()}")
    parser.add_argument(
        "--apart",
        metavar="REDIS_URL",
        help="run the parts apart on this Redis database (emptied first: give one of its "
        "own, e.g. redis://127.0.0.1:6379/15): two APIs, two Prefect servers, two workers",
    )
    args = parser.parse_args()
    sys.exit(0 if soak(args.minutes, args.seed, args.database, args.apart) else 1)


if __name__ == "__main__":
    main()
