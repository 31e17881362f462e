"""`kill -9` the API under traffic of both programmes, restart it, replay.

A real `credithub api` process on PostgreSQL takes holds from a hospital and
loan repayments from a bank, from several threads at once, until it is killed
with SIGKILL — twice. After each restart every request that got no answer is
sent again under its Idempotency-Key, and every acknowledged one too. Then:
every acknowledged write is stored with its acknowledged amount and replays
with the same answer; every key made exactly one effect; the line is never
over its limit; the ledger agrees with the lines, loans and payables.
"""

from __future__ import annotations

import signal
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update

from hub.core import clock
from hub.core.db import get_engine, unit_of_work
from hub.medical.lines import grant_access
from hub.settings import Settings
from models.loans.tables import LoanRepayment
from models.medical.tables import Authorization, CreditLine
from tests.books import books_agree
from tests.conftest import World, make_world
from tests.live import api_process, free_port
from tests.loans.factory import disbursed_loan

pytestmark = pytest.mark.pg

LIMIT_FEN = 25_000  # the line: 35 holds, so that the traffic runs into its limit (402s)
HOLD_FEN, REPAYMENT_FEN = 700, 100
SENDERS = 3  # threads per programme
ACKNOWLEDGED_BEFORE_KILL = 40


@dataclass(frozen=True, eq=False)  # each request is itself (kept by identity)
class Request:
    path: str
    who: str
    body: dict[str, Any]
    key: str = field(default_factory=lambda: uuid.uuid4().hex)


@dataclass
class Traffic:
    """What was sent, and the answer each request got (None: no answer)."""

    answers: dict[Request, httpx.Response | None] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def acknowledged(self) -> int:
        with self.lock:
            return sum(1 for r in self.answers.values() if r is not None and r.status_code < 300)


def send(client: httpx.Client, world: World, request: Request) -> httpx.Response | None:
    headers = {**world.headers(request.who), "Idempotency-Key": request.key}
    try:
        return client.post(request.path, json=request.body, headers=headers)
    except httpx.TransportError:
        return None  # in flight when the server died, or refused while it was down


def sender(base: str, world: World, traffic: Traffic, stop: threading.Event, make: Any) -> None:
    with httpx.Client(base_url=base, timeout=30) as client:
        while not stop.is_set():
            request = make()
            answer = send(client, world, request)
            with traffic.lock:
                traffic.answers[request] = answer
            if answer is None:
                time.sleep(0.05)


def scene(world: World) -> tuple[list[str], list[str]]:
    """Four open visits on the world's line (limit LIMIT_FEN) and two active loans."""
    with unit_of_work(get_engine(world.settings)) as session:
        session.execute(update(CreditLine).values(limit_fen=LIMIT_FEN))
        grant_access(session, world.ids["h1"], world.ids["line"])
    visits = []
    for n in range(4):
        r = world.post(
            "h1",
            "/v1/visits",
            {"credit_line_id": world.ids["line"], "his_visit_id": f"V{n}", "kind": "outpatient"},
        )
        assert r.status_code == 201, r.text
        visits.append(r.json()["visit_id"])
    return visits, [disbursed_loan(world) for _ in range(2)]


def test_kill_9_under_traffic_loses_nothing_and_each_key_makes_one_effect(
    pg_settings: Settings, tmp_path: Path
) -> None:
    world = make_world(pg_settings)
    with world.client:
        visits, loans = scene(world)
    paid_at = clock.now().isoformat()
    counter = iter(range(10**9))

    def hold() -> Request:
        n = next(counter)
        body = {"amount_fen": HOLD_FEN, "his_order_id": f"O{n}", "description": "crash test"}
        return Request(f"/v1/visits/{visits[n % len(visits)]}/authorizations", "h1", body)

    def repayment() -> Request:
        n = next(counter)
        body = {"amount_fen": REPAYMENT_FEN, "bank_txn_id": f"T{n}", "paid_at": paid_at}
        return Request(f"/v1/loans/{loans[n % len(loans)]}/repayments", "b1", body)

    port, log, traffic = free_port(), tmp_path / "api.log", Traffic()
    base = f"http://127.0.0.1:{port}"
    for _round in range(2):
        with api_process(pg_settings, port, log) as api:
            stop = threading.Event()
            threads = [
                threading.Thread(target=sender, args=(base, world, traffic, stop, make))
                for make in [hold, repayment] * SENDERS
            ]
            for thread in threads:
                thread.start()
            target = traffic.acknowledged() + ACKNOWLEDGED_BEFORE_KILL
            deadline = time.monotonic() + 60
            while traffic.acknowledged() < target and time.monotonic() < deadline:
                time.sleep(0.01)
            api.send_signal(signal.SIGKILL)  # under traffic: requests in flight
            api.wait()
            time.sleep(0.2)
            stop.set()
            for thread in threads:
                thread.join(timeout=60)
    assert any(answer is None for answer in traffic.answers.values())  # some were in flight

    # Restarted: every request again under its key, the unanswered ones first.
    with api_process(pg_settings, port, log), httpx.Client(base_url=base, timeout=30) as client:
        final: dict[Request, httpx.Response] = {}
        for request, first in sorted(traffic.answers.items(), key=lambda kv: kv[1] is not None):
            again = send(client, world, request)
            assert again is not None and again.status_code < 500, again
            final[request] = again
            if first is not None and first.status_code in (201, 402, 409):
                assert again.headers.get("idempotent-replayed") == "true"
                assert (again.status_code, again.json()) == (first.status_code, first.json())

    holds = {r.key: a for r, a in final.items() if "/authorizations" in r.path}
    repayments = {r.key: a for r, a in final.items() if "/repayments" in r.path}
    assert {a.status_code for a in holds.values()} <= {201, 402}
    assert {a.status_code for a in repayments.values()} == {201}
    assert any(a.status_code == 402 for a in holds.values())  # the line ran full
    with unit_of_work(get_engine(pg_settings), write=False) as session:
        held = session.execute(select(Authorization.id, Authorization.amount_fen))
        stored_holds = {hold_id: amount for hold_id, amount in held}
        repaid = session.execute(select(LoanRepayment.id, LoanRepayment.amount_fen))
        stored_repayments = {repayment_id: amount for repayment_id, amount in repaid}
        line = session.get(CreditLine, world.ids["line"])
        assert line is not None
        assert line.held_fen + line.outstanding_fen <= line.limit_fen
    made = {a.json()["authorization_id"]: a.json()["amount_fen"] for a in holds.values()
            if a.status_code == 201}  # fmt: skip
    assert stored_holds == made  # each key one hold, each acknowledged one stored
    assert set(stored_holds.values()) == {HOLD_FEN}
    assert stored_repayments == {
        a.json()["repayment_id"]: REPAYMENT_FEN for a in repayments.values()
    }
    assert books_agree(pg_settings)
