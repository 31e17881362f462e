"""Several API processes behave as one (issue 10 §3): each partner's rate and
concurrency limits are counted together in Redis, a disabled partner is
refused by every process within the key cache's time, and an Idempotency-Key
sent to two processes at once makes one effect.

The limiters are first tested as two "processes" in one (two clients of one
Redis), then through two real `credithub api` processes on PostgreSQL.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from hub.context import HubContext
from hub.core import partner_admin
from hub.core.db import get_engine
from hub.settings import Settings
from integrations.endpoints.guards import Busy
from integrations.endpoints.shared_guards import (
    SharedConcurrencyLimiter,
    SharedRateLimiter,
    SharedRedis,
)
from models.medical.tables import Visit
from tests.conftest import ID_NUMBERS, make_world
from tests.live import api_process, free_port


def _shared(redis_url: str) -> SharedRedis:
    return SharedRedis(redis_url, f"test-{uuid.uuid4().hex}")


def test_two_processes_share_one_bucket(redis_url: str) -> None:
    async def scenario() -> tuple[list[int], list[int], int]:
        one = _shared(redis_url)
        two = SharedRedis(redis_url, one.prefix)  # another process on the same Redis
        # 2 a second: a token comes back every 0.5 s, longer than these calls take.
        a, b = SharedRateLimiter(one, "partner", 2), SharedRateLimiter(two, "partner", 2)
        first = [await a.check("p"), await b.check("p")]
        over = [await a.check("p"), await b.check("p")]
        return first, over, await b.check("q")

    first, over, other = asyncio.run(scenario())
    assert first == [0, 0]  # a burst of `rate`, counted over both
    assert over == [1, 1]  # then both ask the partner to wait a second
    assert other == 0  # another partner has its own bucket


def test_two_processes_share_a_partners_slots(redis_url: str) -> None:
    async def scenario() -> list[str]:
        one = _shared(redis_url)
        two = SharedRedis(redis_url, one.prefix)
        a = SharedConcurrencyLimiter(one, 2, wait=0.2, lease=10)
        b = SharedConcurrencyLimiter(two, 2, wait=0.2, lease=10)
        patient = SharedConcurrencyLimiter(two, 2, wait=30, lease=10)
        release = asyncio.Event()
        outcomes: list[str] = []

        async def hold(limiter: SharedConcurrencyLimiter, partner: str) -> None:
            async with limiter.slot(partner):
                outcomes.append(f"{partner} in")
                await release.wait()

        holders = [asyncio.create_task(hold(a, "p")) for _ in range(2)]
        while len(outcomes) < 2:  # both slots taken
            await asyncio.sleep(0.01)
        try:
            async with b.slot("p"):
                outcomes.append("p third in")
        except Busy:
            outcomes.append("p third refused")
        async with b.slot("q"):
            outcomes.append("q in")
        waiting = asyncio.create_task(hold(patient, "p"))  # waits for a slot, then gets it
        await asyncio.sleep(0.05)
        release.set()
        await asyncio.gather(*holders, waiting)
        return outcomes

    assert asyncio.run(scenario()) == ["p in", "p in", "p third refused", "q in", "p in"]


def test_the_slots_of_a_process_that_died_come_free_after_their_lease(redis_url: str) -> None:
    async def scenario() -> tuple[bool, bool]:
        shared = _shared(redis_url)
        dead = SharedConcurrencyLimiter(shared, 1, wait=0.05, lease=0.3)
        # A slot taken and never given back: the process died mid-request.
        slot = dead.slot("p")
        await slot.__aenter__()
        alive = SharedConcurrencyLimiter(SharedRedis(redis_url, shared.prefix), 1, 0.05, 0.3)
        try:
            async with alive.slot("p"):
                refused_at_once = False
        except Busy:
            refused_at_once = True
        await asyncio.sleep(0.4)
        async with alive.slot("p"):
            later = True
        return refused_at_once, later

    assert asyncio.run(scenario()) == (True, True)


def test_without_redis_each_process_keeps_its_own_limits() -> None:
    async def scenario() -> list[int]:
        down = SharedRedis(f"redis://127.0.0.1:{free_port()}/0", "test-down")
        limiter = SharedRateLimiter(down, "partner", 2)
        slots = SharedConcurrencyLimiter(down, 1, wait=0.05, lease=10)
        async with slots.slot("p"):  # a slot of this process's own
            pass
        return [await limiter.check("p") for _ in range(3)]

    assert asyncio.run(scenario()) == [0, 0, 1]  # limited, not refused for Redis's sake


@pytest.mark.pg
@pytest.mark.slow
def test_two_api_processes_behave_as_one(
    pg_settings: Settings, redis_url: str, tmp_path: Path
) -> None:
    world = make_world(pg_settings)  # partners and a line, in the shared database
    settings = pg_settings.model_copy(
        update={
            "redis_url": redis_url,
            "redis_key_prefix": f"test-{uuid.uuid4().hex}",
            "rate_limit_per_second": 3,
            "auth_cache_seconds": 2,
        }
    )
    ports = [free_port(), free_port()]
    log = tmp_path / "api.log"
    with (
        api_process(settings, ports[0], log),
        api_process(settings, ports[1], log),
        httpx.Client(base_url=f"http://127.0.0.1:{ports[0]}", timeout=30) as a,
        httpx.Client(base_url=f"http://127.0.0.1:{ports[1]}", timeout=30) as b,
    ):
        # The rate limit: 3 a second, bursts to 3, whichever process is asked (a
        # request would have to take a third of a second for none to be refused).
        statuses: dict[str, Counter[int]] = {"a": Counter(), "b": Counter()}
        started = time.monotonic()
        for n in range(200):
            name, client = ("a", a) if n % 2 else ("b", b)
            status = client.get("/v1/credit-lines/cl_none", headers=world.headers("b1")).status_code
            statuses[name][status] += 1
            if statuses["a"][429] and statuses["b"][429]:
                break
        elapsed = time.monotonic() - started
        allowed = statuses["a"][404] + statuses["b"][404]
        assert statuses["a"][429] and statuses["b"][429], statuses
        # Counted per process, the two would have let through twice this.
        assert allowed <= 3 + 3 * elapsed + 1, (allowed, elapsed, statuses)

        # One Idempotency-Key sent to both processes at once: one visit. The
        # hospital retries a 429 as the contract asks (its rate is 3 a second too).
        def post(client: httpx.Client, path: str, body: Any, headers: Any) -> httpx.Response:
            while (answer := client.post(path, json=body, headers=headers)).status_code == 429:
                time.sleep(0.4)
            return answer

        check = {"id_number": ID_NUMBERS[0]}  # the hospital sees the line
        checked = post(a, "/v1/eligibility-checks", check, world.headers("h1", "e"))
        assert checked.is_success, checked.text
        body = {"credit_line_id": world.ids["line"], "his_visit_id": "V-two", "kind": "outpatient"}
        headers = world.headers("h1", key=f"two-processes-{uuid.uuid4().hex}")
        answers: list[httpx.Response] = []

        def send(client: httpx.Client) -> None:
            answers.append(post(client, "/v1/visits", body, headers))

        senders = [threading.Thread(target=send, args=(c,)) for c in (a, b, a, b)]
        for sender in senders:
            sender.start()
        for sender in senders:
            sender.join()
        created = {r.json()["visit_id"] for r in answers if r.status_code == 201}
        assert len(created) == 1, [(r.status_code, r.text) for r in answers]
        assert {r.status_code for r in answers} <= {201, 409}
        again = post(b, "/v1/visits", body, headers)
        assert again.status_code == 201 and again.json()["visit_id"] in created
        with get_engine(settings).connect() as conn:
            count = conn.scalar(
                select(func.count()).select_from(Visit).where(Visit.his_visit_id == "V-two")
            )
        assert count == 1

        # A disabled partner: refused by both processes within the key cache's time.
        for client in (a, b):  # both have the key cached
            assert (
                client.get("/v1/credit-lines/cl_none", headers=world.headers("b2")).status_code
                == 404
            )
        partner_admin.disable(HubContext.of(settings), "B2")
        disabled_at = time.monotonic()
        refused_after: dict[str, float] = {}
        while len(refused_after) < 2 and time.monotonic() - disabled_at < 30:
            for name, client in (("a", a), ("b", b)):
                response = client.get("/v1/credit-lines/cl_none", headers=world.headers("b2"))
                if response.status_code == 401:
                    refused_after.setdefault(name, time.monotonic() - disabled_at)
            time.sleep(0.1)
        assert set(refused_after) == {"a", "b"}
        assert max(refused_after.values()) <= settings.auth_cache_seconds + 3, refused_after
