"""A stage for the loan application tests: the hub's real app, the credit-database
stand-in over real HTTP (firms pinned with PUT /firms/{uscc}), partners with
webhook URLs so events are recorded, and helpers to publish products, apply,
profile and answer."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update

from flows.partners import partner_systems
from hub import context
from hub.core import clock
from hub.core.db import get_engine, unit_of_work
from hub.core.uscc import check_character
from hub.loans import profiling
from hub.settings import Settings
from models.core.tables import Event, Partner
from simulators import credit_bureau
from tests.conftest import World, make_world
from tests.live import serve

BUREAU_KEY = "bureau-test-key"
# Monday 2 March 2026, 10:00 in Shanghai: respond_by is Thursday 5 March 23:59:59.
MONDAY = datetime(2026, 3, 2, 2, 0, tzinfo=UTC)
RESPOND_BY = datetime(2026, 3, 5, 15, 59, 59, tzinfo=UTC)


def uscc(body: str) -> str:
    """A valid code from its first 17 characters."""
    return body + check_character(body)


FIRM = uscc("91350203MA2Y0000" + "1")
FIRM2 = uscc("91350203MA2Y0000" + "2")
FIRM3 = uscc("91350203MA2Y0000" + "3")
FIRM4 = uscc("91350203MA2Y0000" + "4")
FARMERS = uscc("N2350203MA2Y00005")  # a farmers' cooperative: letter first


def good_record(**changes: Any) -> dict[str, Any]:
    """A strong firm: grade A (1000 points) in manufacturing."""
    return {
        "name": "厦门某某制造有限公司",
        "registered_on": "2015-06-01",
        "industry": "manufacturing",
        "tax_credit_rating": "A",
        "employees_insured": 60,
        "utilities_on_time_months": 24,
        "court_judgments_3y": 0,
        "penalties_3y": 0,
        "dishonest_entity": False,
        **changes,
    }


PRODUCT = {
    "name": "普惠贷",
    "min_score": 600,
    "max_amount_fen": 100_000_000,
    "max_term_months": 36,
    "annual_rate_bps_min": 350,
    "annual_rate_bps_max": 800,
    "industries": None,
}


def consent(**changes: Any) -> dict[str, Any]:
    return {
        "granted_at": "2026-03-02T09:00:00+08:00",
        "expires_at": "2026-09-02T09:00:00+08:00",
        "banks": ["*"],
        **changes,
    }


def application(firm: str = FIRM, **changes: Any) -> dict[str, Any]:
    return {
        "uscc": firm,
        "firm_name": "某某制造",
        "amount_fen": 50_000_000,
        "term_months": 12,
        "purpose": "流动资金",
        "consent": consent(),
        **changes,
    }


@dataclass
class Stage:
    world: World
    bureau: httpx.Client

    def pin(self, firm: str, **changes: Any) -> None:
        r = self.bureau.put(f"/firms/{firm}", json=good_record(**changes))
        assert r.status_code == 200, r.text

    def product(self, bank: str, code: str, **changes: Any) -> httpx.Response:
        return self.world.client.put(
            f"/v1/loan-products/{code}",
            json={**PRODUCT, **changes},
            headers=self.world.headers(bank),
        )

    def apply(self, firm: str = FIRM, who: str = "ch", **changes: Any) -> str:
        r = self.world.post(who, "/v1/loan-applications", application(firm, **changes))
        assert r.status_code == 202, r.text
        return str(r.json()["application_id"])

    def profile(self, application_id: str) -> str:
        ctx = context.hub_context()
        done = profiling.process(ctx, partner_systems(ctx.settings), application_id, clock.now)
        return str(done.outcome)

    def get(self, who: str, application_id: str) -> httpx.Response:
        return self.world.get(who, f"/v1/loan-applications/{application_id}")

    def offer(self, bank: str, application_id: str, **changes: Any) -> httpx.Response:
        body = {
            "product_code": "P1",
            "amount_fen": 40_000_000,
            "annual_rate_bps": 450,
            "term_months": 12,
            **changes,
        }
        return self.world.post(bank, f"/v1/loan-applications/{application_id}/offers", body)

    def decline(self, bank: str, application_id: str) -> httpx.Response:
        return self.world.post(
            bank, f"/v1/loan-applications/{application_id}/declines", {"reason": "不符合"}
        )

    def open_application(self, firm: str = FIRM, **changes: Any) -> str:
        """An application offered to both banks (each has product P1)."""
        self.pin(firm)
        for bank in ("b1", "b2"):
            assert self.product(bank, "P1").status_code in (200, 201)
        application_id = self.apply(firm, **changes)
        assert self.profile(application_id) == "offered"
        return application_id

    def events(self, type_: str | None = None) -> list[tuple[str, str, dict[str, Any]]]:
        """(recipient code, type, data) of every event recorded, oldest first."""
        with unit_of_work(get_engine(self.world.settings), write=False) as session:
            query = select(Event.type, Partner.code, Event.payload).join(
                Partner, Partner.id == Event.partner_id
            )
            if type_ is not None:
                query = query.where(Event.type == type_)
            return [(code, t, data) for t, code, data in session.execute(query.order_by(Event.id))]


def add_partner(world: World, who: str, kind: str) -> None:
    """One more partner (another channel, say), with its key in the world."""
    from hub.core import partners
    from hub.core.personal_data import get_vault

    with unit_of_work(get_engine(world.settings)) as session:
        new = partners.add_partner(
            session,
            get_vault(world.settings),
            kind=kind,
            name=f"{who} name",
            code=who.upper(),
            webhook_url=None,
            now=clock.now(),
        )
    world.keys[who], world.ids[who] = new.api_key, new.partner_id


def hooks_on(settings: Settings) -> None:
    """Every partner gets a webhook URL, so events to it are recorded."""
    with unit_of_work(get_engine(settings)) as session:
        session.execute(update(Partner).values(webhook_url="http://127.0.0.1:9/hook"))


# flows.partners keeps one set of clients per settings object, by id(): keeping every
# wired copy alive stops a later test's copy from reusing an id (and stale addresses).
_WIRED: list[Settings] = []


@pytest.fixture
def stage(settings: Settings) -> Iterator[Stage]:
    with serve(credit_bureau.create_app(BUREAU_KEY)) as bureau_url:
        wired = settings.model_copy(update={"bureau_url": bureau_url, "bureau_api_key": BUREAU_KEY})
        _WIRED.append(wired)
        context.use(wired)
        world = make_world(wired)
        hooks_on(wired)
        clock.set_now(MONDAY)
        auth = {"Authorization": f"Bearer {BUREAU_KEY}"}
        try:
            with world.client, httpx.Client(base_url=bureau_url, headers=auth) as bureau:
                yield Stage(world, bureau)
        finally:
            clock.set_now(None)


def later(delta: timedelta) -> None:
    """Move the test clock on."""
    clock.set_now(clock.now() + delta)


def key() -> str:
    return uuid.uuid4().hex
