"""Per-partner rate limits and the key cache (CONTRACT.md §1, Authentication)."""

from __future__ import annotations

import asyncio

from starlette.testclient import TestClient

from hub.core.partners import Caller
from integrations.endpoints.app import create_app
from integrations.endpoints.guards import Busy, ConcurrencyLimiter, KeyCache, RateLimiter
from tests.conftest import World


class FakeClock:
    """A monotonic clock the test moves by hand (the limiter's only input besides calls)."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_bucket_allows_the_rate_then_asks_to_wait() -> None:
    clock = FakeClock()
    limiter = RateLimiter(5, clock)
    assert [limiter.allow("p") for _ in range(5)] == [0] * 5
    assert limiter.allow("p") == 1
    assert limiter.allow("other") == 0  # per partner
    clock.now += 0.2  # one token back at 5 a second
    assert limiter.allow("p") == 0
    assert limiter.allow("p") == 1


def test_the_key_cache_forgets_after_its_ttl() -> None:
    clock = FakeClock()
    cache = KeyCache(5, clock)
    caller = Caller("prt_1", "bank", "B1")
    assert cache.get("key") == (False, None)
    cache.put("key", caller)
    assert cache.get("key") == (True, caller)
    clock.now += 5
    assert cache.get("key") == (False, None)


def test_over_the_limit_is_a_429_with_retry_after(world: World) -> None:
    limited = create_app(world.settings.model_copy(update={"rate_limit_per_second": 3}))
    with TestClient(limited) as client:
        # A burst of 3 goes through; the bucket refills 3 a second, so a request
        # soon finds it empty — however slow the machine, within these 20.
        statuses = []
        for _ in range(20):
            statuses.append(client.get("/v1/credit-lines/cl_none", headers=world.headers("b1")))
            if statuses[-1].status_code == 429:
                break
        other = client.get("/v1/credit-lines/cl_none", headers=world.headers("b2"))
    assert [r.status_code for r in statuses[:3]] == [404, 404, 404]
    over = statuses[-1]
    assert over.status_code == 429 and over.json()["code"] == "rate_limited"
    assert int(over.headers["retry-after"]) >= 1
    assert over.headers["content-type"] == "application/problem+json"
    assert other.status_code == 404  # another partner has its own bucket


def test_a_flood_of_unknown_keys_does_not_push_out_the_known_ones() -> None:
    clock = FakeClock()
    cache = KeyCache(5, clock)
    caller = Caller("prt_1", "bank", "B1")
    cache.put("good", caller)
    for n in range(25_000):
        cache.put(f"guess-{n}", None)
    assert cache.get("good") == (True, caller)
    assert cache.get("guess-24999") == (True, None)  # the latest guesses are remembered
    clock.now += 5
    assert cache.get("good") == (False, None)  # stale: looked up again...
    assert cache.was_known("good") and not cache.was_known("guess-1")  # ...as a known key


def test_keys_never_seen_are_looked_up_at_a_rate_per_address(world: World) -> None:
    limited = create_app(
        world.settings.model_copy(
            update={"unknown_key_lookups_per_second": 3, "auth_cache_seconds": 5}
        )
    )
    with TestClient(limited) as client:
        ok = client.get("/v1/credit-lines/cl_none", headers=world.headers("b1"))
        statuses = []
        for n in range(20):
            guess = {"Authorization": f"Bearer chk_guess_{n}"}
            statuses.append(client.get("/v1/credit-lines/cl_none", headers=guess).status_code)
            if statuses[-1] == 429:
                break
        again = client.get(
            "/v1/credit-lines/cl_none", headers={"Authorization": "Bearer chk_guess_0"}
        )
        known = client.get("/v1/credit-lines/cl_none", headers=world.headers("b1"))
    assert ok.status_code == 404
    assert statuses[:2] == [401, 401] and statuses[-1] == 429
    assert again.status_code == 401  # a guess already refused is answered from memory
    assert known.status_code == 404  # the partner's own key is not held up by the guesses


def test_a_partner_over_its_concurrency_waits_then_is_refused_others_go_ahead() -> None:
    async def scenario() -> list[str]:
        limiter = ConcurrencyLimiter(2, wait=0.2)
        release = asyncio.Event()
        outcomes: list[str] = []

        async def hold(partner: str) -> None:
            async with limiter.slot(partner):
                outcomes.append(f"{partner} in")
                await release.wait()

        holders = [asyncio.create_task(hold("p")) for _ in range(2)]
        await asyncio.sleep(0.01)
        try:
            async with limiter.slot("p"):
                outcomes.append("p third in")
        except Busy:
            outcomes.append("p third refused")
        async with limiter.slot("q"):
            outcomes.append("q in")
        waiting = asyncio.create_task(hold("p"))  # waits for a slot, then gets it
        await asyncio.sleep(0.01)
        release.set()
        await asyncio.gather(*holders, waiting)
        return outcomes

    assert asyncio.run(scenario()) == ["p in", "p in", "p third refused", "q in", "p in"]
