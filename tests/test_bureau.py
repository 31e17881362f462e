"""The credit database under consent (CONTRACT.md §5): refusals, audit, reuse."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from hub.core import bureau, clock, consent
from hub.core.db import get_engine, unit_of_work
from hub.core.personal_data import get_vault
from hub.settings import Settings
from integrations.credit_bureau import CreditBureauClient
from integrations.partner_client import partner_pool
from models.core.partner_errors import PartnerUnavailable
from models.core.partner_records import FirmRecord, PersonRecord
from simulators import credit_bureau
from tests.conftest import World, make_world
from tests.live import serve

KEY = "bureau-test-key"
PERSON = "350203198001011235"
RUNS = 3  # profiling runs at once
T0 = datetime(2026, 3, 2, 2, 0, tzinfo=UTC)


@pytest.fixture
def setup(settings: Settings) -> Iterator[tuple[World, CreditBureauClient, httpx.Client]]:
    clock.set_now(T0)
    with serve(credit_bureau.create_app(KEY)) as url, partner_pool() as http:
        client = CreditBureauClient(http, url, KEY)
        sim = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {KEY}"})
        sim.put(
            f"/persons/{PERSON}",
            json={"name": "张三", "score": 720, "dishonest_debtor": False, "insured": True},
        )
        yield make_world(settings), client, sim
        sim.close()


def _consent(
    world: World,
    expires_at: datetime | None = None,
    subject: str = PERSON,
    purpose: str = "medical_credit",
) -> str:
    vault = get_vault(world.settings)
    with unit_of_work(get_engine(world.settings)) as session:
        return consent.record(
            session,
            partner_id=world.ids["h1"],
            subject_hash=vault.lookup_hash(subject),
            purpose=purpose,
            text_version="v1",
            granted_at=T0,
            expires_at=expires_at,
            scope=None,
            now=T0,
        ).id


def _look(world: World, client: CreditBureauClient, consent_id: str | None) -> object:
    return bureau.look_up_person(
        get_engine(world.settings),
        get_vault(world.settings),
        client,
        id_number=PERSON,
        consent_id=consent_id,
        purpose="medical_credit",
        requested_by="test",
        validity=timedelta(hours=24),
        clock=clock.now,
    )


def _audit(world: World) -> list[tuple[str, bool]]:
    with unit_of_work(get_engine(world.settings)) as session:
        rows = bureau.audit_of(session, get_vault(world.settings), PERSON)
        return [(r.outcome, r.reused) for r in rows]


def _asked(sim: httpx.Client) -> int:
    return sum(
        r["path"].startswith("/persons/") and r["method"] == "GET"
        for r in sim.get("/_sim/requests").json()["items"]
    )


def test_no_consent_no_query(setup: tuple[World, CreditBureauClient, httpx.Client]) -> None:
    world, client, sim = setup
    expired = _consent(world, expires_at=T0 + timedelta(hours=1))
    withdrawn = _consent(world)
    with unit_of_work(get_engine(world.settings)) as session:
        consent.withdraw(session, partner_id=world.ids["h1"], consent_id=withdrawn, now=T0)
    clock.set_now(T0 + timedelta(hours=2))
    for consent_id in (None, "cns_unknown", expired, withdrawn):
        with pytest.raises(consent.ConsentNotValid):
            _look(world, client, consent_id)
    assert _asked(sim) == 0
    assert _audit(world) == [("refused_no_consent", False)] * 4


def test_every_use_is_audited_and_a_fresh_lookup_is_reused(
    setup: tuple[World, CreditBureauClient, httpx.Client],
) -> None:
    world, client, sim = setup
    granted = _consent(world)
    first = _look(world, client, granted)
    assert isinstance(first, PersonRecord) and first.score == 720
    clock.set_now(T0 + timedelta(hours=23))
    assert _look(world, client, granted) == first  # reused, not asked again
    assert _asked(sim) == 1
    clock.set_now(T0 + timedelta(hours=25))
    _look(world, client, granted)  # too old: asked again
    assert _asked(sim) == 2
    assert _audit(world) == [("found", False), ("found", True), ("found", False)]


def test_a_withdrawal_stops_reuse_at_once(
    setup: tuple[World, CreditBureauClient, httpx.Client],
) -> None:
    world, client, _ = setup
    granted = _consent(world)
    _look(world, client, granted)
    with unit_of_work(get_engine(world.settings)) as session:
        consent.withdraw(session, partner_id=world.ids["h1"], consent_id=granted, now=clock.now())
    with pytest.raises(consent.ConsentNotValid):
        _look(world, client, granted)
    assert _audit(world)[-1] == ("refused_no_consent", False)


def test_an_unknown_person_and_a_failing_database(
    setup: tuple[World, CreditBureauClient, httpx.Client],
) -> None:
    world, client, sim = setup
    granted = _consent(world)
    sim.delete(f"/persons/{PERSON}")
    assert _look(world, client, granted) is bureau.UNKNOWN
    clock.set_now(T0 + timedelta(days=2))
    sim.put("/_sim/knobs", json={"error_rate": 1.0})
    with pytest.raises(PartnerUnavailable):
        _look(world, client, granted)
    assert [o for o, _ in _audit(world)] == ["not_found", "failed:Unavailable"]


def _firm_consent(world: World, uscc: str) -> str:
    return _consent(world, subject=uscc, purpose=bureau.PURPOSE_BUSINESS_LOAN)


def _code(n: int) -> str:
    first17 = f"91350200{n:09d}"
    return first17 + credit_bureau.uscc_check_character(first17)


class _FailingFor:
    """The real client, except that calls about one firm fail as a broken partner's would."""

    def __init__(self, client: CreditBureauClient, uscc: str):
        self.client, self.uscc = client, uscc

    def firm(self, uscc: str) -> FirmRecord | None:
        if uscc == self.uscc:
            raise PartnerUnavailable("the credit database is down for this firm")
        return self.client.firm(uscc)


def test_a_batch_of_firms_is_consented_audited_and_asked_once_per_firm(
    setup: tuple[World, CreditBureauClient, httpx.Client],
) -> None:
    """Each use in a batch is decided and audited as a single lookup would be: the
    same firm twice is asked once (the second use audited as reused), a use without
    consent is refused unasked, an unknown firm is UNKNOWN, and a failing call costs
    only its own use."""
    world, client, sim = setup
    known, unknown, failing, unconsented = (_code(n) for n in (1, 2, 3, 4))
    sim.delete(f"/firms/{unknown}")
    consents = {code: _firm_consent(world, code) for code in (known, unknown, failing)}
    wanted = [
        (known, consents[known]),
        (unknown, consents[unknown]),
        (known, consents[known]),
        (failing, consents[failing]),
        (unconsented, consents[known]),  # another firm's consent does not cover it
    ]
    engine, vault = get_engine(world.settings), get_vault(world.settings)
    results = bureau.look_up_firms(
        engine,
        vault,
        _FailingFor(client, failing),
        wanted,
        requested_by="test",
        validity=timedelta(hours=24),
        clock=clock.now,
        concurrency=4,
    )
    assert isinstance(results[0], FirmRecord) and results[2] == results[0]
    assert results[1] is bureau.UNKNOWN
    assert isinstance(results[3], PartnerUnavailable)
    assert isinstance(results[4], consent.ConsentNotValid)
    asked = [r["path"] for r in sim.get("/_sim/requests").json()["items"] if r["method"] == "GET"]
    assert sorted(asked) == sorted([f"/firms/{known}", f"/firms/{unknown}"])

    def audit(code: str) -> list[tuple[str, bool]]:
        with unit_of_work(engine) as session:
            return [(r.outcome, r.reused) for r in bureau.audit_of(session, vault, code)]

    assert audit(known) == [("found", False), ("found", True)]
    assert audit(unknown) == [("not_found", False)]
    assert audit(failing) == [("failed:PartnerUnavailable", False)]
    assert audit(unconsented) == [("refused_no_consent", False)]
    again = bureau.look_up_firms(
        engine, vault, client, wanted[:2], requested_by="test",
        validity=timedelta(hours=24), clock=clock.now,
    )  # fmt: skip
    assert again == results[:2]  # reused, the unknown firm too: not asked again
    assert len([r for r in sim.get("/_sim/requests").json()["items"] if r["method"] == "GET"]) == 2


def test_runs_asking_about_the_same_firms_at_once_both_succeed(
    setup: tuple[World, CreditBureauClient, httpx.Client],
) -> None:
    """Two profiling runs at once, each with a batch of the same firms: both get the
    records (each remembers them with an upsert, so neither fails on the other's
    row), and every use is audited once."""
    world, client, _ = setup
    codes = [_code(n) for n in range(10, 30)]
    wanted = [(code, _firm_consent(world, code)) for code in codes]
    engine, vault = get_engine(world.settings), get_vault(world.settings)
    start = threading.Barrier(RUNS)
    results: list[list[object]] = []

    def run() -> None:
        start.wait()
        results.append(
            list(bureau.look_up_firms(
                engine, vault, client, wanted, requested_by="test",
                validity=timedelta(hours=24), clock=clock.now, concurrency=4,
            ))
        )  # fmt: skip

    threads = [threading.Thread(target=run) for _ in range(RUNS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == RUNS
    assert all(isinstance(r, FirmRecord) for each in results for r in each), results
    with unit_of_work(engine) as session:
        assert all(len(bureau.audit_of(session, vault, code)) == RUNS for code in codes)
