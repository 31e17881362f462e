"""Per-partner rate limits and the key cache (CONTRACT.md §1, Authentication)."""

from __future__ import annotations

from starlette.testclient import TestClient

from hub.core.partners import Caller
from integrations.endpoints.app import create_app
from integrations.endpoints.guards import KeyCache, RateLimiter
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
