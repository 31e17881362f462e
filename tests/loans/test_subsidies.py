"""Interest subsidies without application (CONTRACT.md §4, 免申即享): who gets one and
how much, once per loan and month however often the flow runs, the bank told under
`subsidy:<id>` through the real bank stand-in over HTTP, a failure retried by the next
run, `GET /v1/subsidies`, the `subsidy.granted` event, the books — SQLite and PostgreSQL."""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, update

from flows.loans.subsidies import grant_subsidies
from hub import context
from hub.core import clock, partners
from hub.core.db import get_engine, unit_of_work
from hub.core.personal_data import get_vault
from hub.loans import accounts, policy, subsidies
from hub.settings import Settings
from models.core.tables import Event, LedgerPosting, Partner
from models.loans.tables import Loan, Subsidy
from simulators import bank
from tests.conftest import World, latest_artifact, make_world
from tests.crashing import kill_points, run_flow_process
from tests.live import serve
from tests.loans.fund_world import fund_books_agree, make_loan, repaid

KEY = "bank-test-key"
RUNS = 4  # subsidy runs racing on one month
APRIL_1 = date(2026, 4, 1)
MARCH = subsidies.Month(date(2026, 3, 1), APRIL_1)


@dataclass
class Stage:
    world: World
    banks: dict[str, httpx.Client]

    def subsidy_calls(self, code: str) -> list[dict[str, Any]]:
        items = self.banks[code].get("/_sim/requests?limit=500").json()["items"]
        return [r for r in items if r["path"] == "/subsidy-payouts"]

    def knobs(self, code: str, **changes: Any) -> None:
        assert self.banks[code].put("/_sim/knobs", json=changes).status_code == 200

    def listed(self, who: str = "op") -> list[dict[str, Any]]:
        r = self.world.get(who, "/v1/subsidies?limit=100")
        assert r.status_code == 200, r.text
        return list(r.json()["data"])


def _stage(settings: Settings, b2_key: str = KEY) -> Iterator[Stage]:
    with serve(bank.create_app(KEY)) as b1, serve(bank.create_app(KEY)) as b2:
        wired = settings.model_copy(
            update={
                "bank_systems": {
                    "B1": {"url": b1, "api_key": KEY},
                    "B2": {"url": b2, "api_key": b2_key},
                }
            }
        )
        context.use(wired)
        clock.set_now(datetime(2026, 3, 31, 4, 0, tzinfo=UTC))
        world = make_world(wired)
        with unit_of_work(get_engine(wired)) as session:  # so that events are queued for them
            session.execute(
                update(Partner)
                .where(Partner.id.in_([world.ids["ch"], world.ids["b1"]]))
                .values(webhook_url="https://example.test/hook")
            )
        headers = {"Authorization": f"Bearer {KEY}"}
        with (
            world.client,
            httpx.Client(base_url=b1, headers=headers) as c1,
            httpx.Client(base_url=b2, headers=headers) as c2,
        ):
            yield Stage(world, {"B1": c1, "B2": c2})


@pytest.fixture
def stage(settings: Settings) -> Iterator[Stage]:
    yield from _stage(settings)


def test_who_gets_a_subsidy_and_how_much(world: World) -> None:
    ctx = context.HubContext.of(world.settings)
    a = make_loan(world, grade="A", annual_rate_bps=600)
    repaid(world, a, date(2026, 3, 1), interest_fen=6_000)
    repaid(world, a, date(2026, 3, 31), interest_fen=6_001, principal_fen=50_000)
    repaid(world, a, date(2026, 2, 28), interest_fen=9_999)  # February's
    repaid(world, a, date(2026, 4, 1), interest_fen=8_888)  # April's
    cheap = make_loan(world, grade="B", annual_rate_bps=50)  # below one point
    repaid(world, cheap, date(2026, 3, 10), interest_fen=777)
    grade_c = make_loan(world, grade="C")
    repaid(world, grade_c, date(2026, 3, 10), interest_fen=10_000)
    principal_only = make_loan(world, grade="A")
    repaid(world, principal_only, date(2026, 3, 10), interest_fen=0, principal_fen=90_000)
    tiny = make_loan(world, grade="A", annual_rate_bps=600)
    repaid(world, tiny, date(2026, 3, 10), interest_fen=5)  # floor(5 / 6) = 0
    make_loan(world, grade="A")  # paid nothing in March

    assert subsidies.grant(ctx, MARCH) == 2
    with unit_of_work(get_engine(world.settings), write=False) as session:
        granted = {s.loan_id: s for s in session.scalars(select(Subsidy))}
    assert set(granted) == {a, cheap}
    assert (granted[a].interest_paid_fen, granted[a].amount_fen) == (12_001, 2_000)
    assert granted[a].month == "2026-03" and granted[a].status == "granted"
    assert subsidies.why(granted[a]) == {
        "rule": "interest_points",
        "formula": subsidies.FORMULA,
        "grade": "A",
        "dishonest": False,
        "interest_paid_fen": 12_001,
        "annual_rate_bps": 600,
        "points_bps": 100,
        "amount_fen": 2_000,  # floor(12,001 × 100 / 600)
    }
    assert (granted[cheap].interest_paid_fen, granted[cheap].amount_fen) == (777, 777)
    assert subsidies.grant(ctx, MARCH) == 0  # once per loan and month
    assert fund_books_agree(world.settings)


def test_settings_choose_the_grades_and_the_points(settings: Settings) -> None:
    custom = settings.model_copy(update={"subsidy_grades": ["C"], "subsidy_points_bps": 200})
    world = make_world(custom)
    with world.client:
        a, c = make_loan(world, grade="A"), make_loan(world, grade="C", annual_rate_bps=800)
        repaid(world, a, date(2026, 3, 5), interest_fen=8_000)
        repaid(world, c, date(2026, 3, 5), interest_fen=8_000)
        assert subsidies.grant(context.HubContext.of(custom), MARCH) == 1
        with unit_of_work(get_engine(custom), write=False) as session:
            only = session.scalars(select(Subsidy)).one()
        assert (only.loan_id, only.amount_fen) == (c, 2_000)  # 8,000 × 200 / 800


def test_the_previous_business_month() -> None:
    assert subsidies.previous_month(date(2026, 4, 1)) == MARCH
    assert subsidies.previous_month(date(2026, 4, 30)) == MARCH
    january = subsidies.previous_month(date(2026, 2, 1))
    assert (january.first, january.after, january.label) == (
        date(2026, 1, 1),
        date(2026, 2, 1),
        "2026-01",
    )
    december = subsidies.previous_month(date(2026, 1, 1))
    assert (december.first, december.label) == (date(2025, 12, 1), "2025-12")


def _march_loans(world: World) -> dict[str, str]:
    loans = {
        "b1": make_loan(world, bank="b1", grade="A", annual_rate_bps=600),
        "b1-late": make_loan(world, bank="b1", grade="B", annual_rate_bps=400),
        "b2": make_loan(world, bank="b2", grade="A", annual_rate_bps=500),
    }
    repaid(world, loans["b1"], date(2026, 3, 15), interest_fen=60_000)  # 100.00 yuan
    repaid(world, loans["b1-late"], date(2026, 3, 31), interest_fen=40_000)  # 100.00 yuan
    repaid(world, loans["b2"], date(2026, 3, 2), interest_fen=50_005)  # 100.01 yuan
    return loans


def test_the_monthly_flow_grants_once_and_instructs_each_bank_once(
    stage: Stage, prefect_harness: None
) -> None:
    loans = _march_loans(stage.world)
    first = grant_subsidies(as_of=APRIL_1)
    assert first == {"month": "2026-03", "granted": 3, "instructed": 3}
    listed = stage.listed()
    assert {s["loan_id"]: (s["amount_fen"], s["status"]) for s in listed} == {
        loans["b1"]: (10_000, "instructed"),
        loans["b1-late"]: (10_000, "instructed"),
        loans["b2"]: (10_001, "instructed"),
    }
    assert set(listed[0]) == {
        "subsidy_id",
        "loan_id",
        "month",
        "interest_paid_fen",
        "amount_fen",
        "rule",
        "status",
    }
    by_loan = {s["loan_id"]: s["subsidy_id"] for s in listed}
    calls = stage.subsidy_calls("B1")
    assert sorted(c["idempotency_key"] for c in calls) == sorted(
        f"subsidy:{by_loan[loans[k]]}" for k in ("b1", "b1-late")
    )
    assert [c["idempotency_key"] for c in stage.subsidy_calls("B2")] == [
        f"subsidy:{by_loan[loans['b2']]}"
    ]
    paid = stage.banks["B2"].get(f"/subsidy-payouts/{by_loan[loans['b2']]}").json()
    assert (paid["amount_fen"], paid["loan_id"], paid["month"]) == (10_001, loans["b2"], "2026-03")

    # Again for the same month (a rerun, or April's 1st run twice): nothing new.
    assert grant_subsidies(as_of=date(2026, 4, 20)) == {"month": "2026-03", "granted": 0}
    assert len(stage.subsidy_calls("B1")) == 2 and len(stage.subsidy_calls("B2")) == 1
    assert len(stage.listed()) == 3

    summary = latest_artifact("loan-subsidies")
    assert "3 subsidies, **300.01 yuan** in all" in summary
    assert (
        "| B1 | instructed | 2 | 200.00 |" in summary
        and "| B2 | instructed | 1 | 100.01 |" in summary
    )
    assert "balance **0.00 yuan**" in latest_artifact("risk-compensation-fund")
    with unit_of_work(get_engine(stage.world.settings), write=False) as session:
        sent = session.execute(
            select(Event.partner_id, Event.payload).where(Event.type == "subsidy.granted")
        ).all()
    ch, b1 = stage.world.ids["ch"], stage.world.ids["b1"]
    # To the channel (all three) and the loan's bank (B1's two; B2 has no webhook here).
    assert sorted(p for p, _ in sent) == sorted([ch, ch, ch, b1, b1])
    assert {e["subsidy_id"]: e["status"] for _, e in sent} == dict.fromkeys(
        by_loan.values(), "granted"
    )
    # Each carries the subsidy as GET /v1/subsidies shows it (then still `granted`).
    shown = {item["subsidy_id"]: {**item, "status": "granted"} for item in listed}
    assert all(e == shown[e["subsidy_id"]] for _, e in sent)
    assert fund_books_agree(stage.world.settings)


def test_a_bank_that_is_down_is_asked_again_by_the_next_run(
    stage: Stage, prefect_harness: None
) -> None:
    loans = _march_loans(stage.world)
    stage.knobs("B1", error_rate=1.0)
    first = grant_subsidies(as_of=APRIL_1)
    assert first == {"month": "2026-03", "granted": 3, "instructed": 1, "retry_later": 2}
    status = {s["loan_id"]: s["status"] for s in stage.listed()}
    assert status == {
        loans["b1"]: "granted",
        loans["b1-late"]: "granted",
        loans["b2"]: "instructed",
    }
    with unit_of_work(get_engine(stage.world.settings), write=False) as session:
        errors = session.scalars(select(Subsidy.last_error).where(Subsidy.status == "granted"))
        assert all("Unavailable" in (e or "") for e in errors)

    stage.knobs("B1", error_rate=0.0)
    second = grant_subsidies(as_of=APRIL_1)
    assert second == {"month": "2026-03", "granted": 0, "instructed": 2}
    assert {s["status"] for s in stage.listed()} == {"instructed"}
    ok = [c for c in stage.subsidy_calls("B1") if c["status"] == 200]
    assert len({c["idempotency_key"] for c in ok}) == 2
    assert len(stage.subsidy_calls("B2")) == 1  # instructed ones are not asked again
    assert fund_books_agree(stage.world.settings)


def test_a_crash_after_the_grant_is_finished_by_the_next_run(
    stage: Stage, prefect_harness: None
) -> None:
    _march_loans(stage.world)
    ctx = context.hub_context()
    assert subsidies.grant(ctx, MARCH) == 3  # committed, then the run died before the banks
    assert {s["status"] for s in stage.listed()} == {"granted"}
    assert grant_subsidies(as_of=APRIL_1) == {"month": "2026-03", "granted": 0, "instructed": 3}
    assert {s["status"] for s in stage.listed()} == {"instructed"}
    assert len(stage.subsidy_calls("B1")) == 2 and len(stage.subsidy_calls("B2")) == 1


@pytest.fixture
def stage_b2_refuses(settings: Settings) -> Iterator[Stage]:
    yield from _stage(settings, b2_key="a-key-bank-2-does-not-know")


def test_a_refusal_is_recorded_as_failed_and_not_asked_again(
    stage_b2_refuses: Stage, prefect_harness: None
) -> None:
    stage = stage_b2_refuses
    loans = _march_loans(stage.world)
    assert grant_subsidies(as_of=APRIL_1) == {
        "month": "2026-03",
        "granted": 3,
        "instructed": 2,
        "failed": 1,
    }
    with unit_of_work(get_engine(stage.world.settings), write=False) as session:
        failed = session.scalars(select(Subsidy).where(Subsidy.status == "failed")).one()
    assert failed.loan_id == loans["b2"] and "401" in (failed.last_error or "")
    assert grant_subsidies(as_of=APRIL_1) == {"month": "2026-03", "granted": 0}
    assert len(stage.subsidy_calls("B2")) == 1
    assert fund_books_agree(stage.world.settings)  # granted stays booked: the firm is owed it


def test_operators_see_every_subsidy_and_a_channel_its_own_firms(world: World) -> None:
    with unit_of_work(get_engine(world.settings)) as session:
        other = partners.add_partner(
            session,
            get_vault(world.settings),
            kind="channel",
            name="another app",
            code="CH2",
            webhook_url=None,
            now=clock.now(),
        )
    world.keys["ch2"], world.ids["ch2"] = other.api_key, other.partner_id
    mine = make_loan(world, channel="ch")
    theirs = make_loan(world, channel="ch2")
    for loan_id in (mine, theirs):
        repaid(world, loan_id, date(2026, 3, 9), interest_fen=60_000)
    assert subsidies.grant(context.HubContext.of(world.settings), MARCH) == 2

    everything = world.get("op", "/v1/subsidies").json()
    assert {s["loan_id"] for s in everything["data"]} == {mine, theirs}
    assert [s["loan_id"] for s in world.get("ch", "/v1/subsidies").json()["data"]] == [mine]
    page = world.get("ch2", "/v1/subsidies?limit=1").json()
    assert [s["loan_id"] for s in page["data"]] == [theirs] and not page["has_more"]
    first = world.get("op", "/v1/subsidies?limit=1").json()
    assert first["has_more"] and first["next_cursor"]
    rest = world.get("op", f"/v1/subsidies?limit=1&cursor={first['next_cursor']}").json()
    assert len(rest["data"]) == 1 and rest["data"][0] != first["data"][0]
    for who in ("b1", "h1"):
        assert world.get(who, "/v1/subsidies").status_code == 403


def test_the_amounts_worked_out_in_sql_follow_the_policy_rule(world: World) -> None:
    """grant_month works the rule out in SQL: it must give `policy.subsidy_amount`'s
    figure, to the fen, for any interest and rate (and grant nothing when that is 0)."""
    rng = random.Random(8)
    cases = [(rng.randrange(0, 2_000_000), rng.choice([1, 50, 99, 100, 101, 435, 600, 2400]))
             for _ in range(24)] + [(99, 100), (100, 101), (1, 1), (0, 600)]  # fmt: skip
    loans = {}
    for interest, rate in cases:
        loan_id = make_loan(world, grade="A", annual_rate_bps=rate)
        repaid(world, loan_id, date(2026, 3, 10), interest_fen=interest, principal_fen=1)
        loans[loan_id] = (interest, rate)
    ctx = context.HubContext.of(world.settings)
    with unit_of_work(ctx.engine, write=False) as session:  # computed, nothing recorded
        preview = subsidies.computed(session, MARCH, ["A", "B"], 100, clock.now())
    subsidies.grant(ctx, MARCH)
    with unit_of_work(get_engine(world.settings), write=False) as session:
        granted = {s.loan_id: s for s in session.scalars(select(Subsidy))}
        assert subsidies.computed(session, MARCH, ["A", "B"], 100, clock.now()) == []
    assert {p["loan_id"]: p["amount_fen"] for p in preview} == {
        loan_id: s.amount_fen for loan_id, s in granted.items()
    }
    figures = ("rule", "grade", "annual_rate_bps", "points_bps", "interest_paid_fen")
    for p in preview:
        assert all(p[f] == getattr(granted[p["loan_id"]], f) for f in figures)
    for loan_id, (interest, rate) in loans.items():
        want = policy.subsidy_amount(interest, rate, 100)
        got = granted.get(loan_id)
        assert (got.amount_fen if got else 0) == want, (interest, rate)
        if got:
            assert subsidies.why(got)["amount_fen"] == want
            assert subsidies.why(got)["interest_paid_fen"] == interest
    assert fund_books_agree(world.settings)


@pytest.mark.pg
def test_runs_racing_on_one_month_grant_each_loan_once(pg_settings: Settings) -> None:
    """Runs at once (a rerun while the first is still running): the unique (loan, month)
    decides, the loser skips the row, and posts no entry and queues no event for it."""
    world = make_world(pg_settings)
    with world.client:
        for _ in range(20):
            loan_id = make_loan(world, grade="B", annual_rate_bps=500)
            repaid(world, loan_id, date(2026, 3, 12), interest_fen=50_000)
        ctx = context.HubContext.of(pg_settings)
        start = threading.Barrier(RUNS)
        counts: list[int] = []
        errors: list[BaseException] = []

        def run() -> None:
            start.wait()
            try:
                counts.append(subsidies.grant(ctx, MARCH))
            except BaseException as exc:  # a unique violation or a deadlock fails the test
                errors.append(exc)

        threads = [threading.Thread(target=run) for _ in range(RUNS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert not errors and len(counts) == RUNS and sum(counts) == 20, (errors, counts)
        with unit_of_work(get_engine(pg_settings), write=False) as session:
            assert session.scalar(select(func.count()).select_from(Subsidy)) == 20
            # One entry per bank and run that granted something, for what that run granted.
            granted_fen = session.scalar(select(func.sum(Subsidy.amount_fen)))
            entries, debited = session.execute(
                select(func.count(func.distinct(LedgerPosting.entry_id)), func.sum(
                    LedgerPosting.amount_fen)).where(LedgerPosting.kind == "subsidy_grant",
                    LedgerPosting.account == accounts.SUBSIDIES_GRANTED)
            ).one()  # fmt: skip
            assert debited == granted_fen and 1 <= entries <= RUNS
            assert session.scalar(
                select(func.count())
                .select_from(Event)
                .where(Event.type == "subsidy.granted", Event.partner_id == world.ids["b1"])
            ) in (0, 20)  # b1 has a webhook only in the staged tests
        assert fund_books_agree(pg_settings)


@pytest.mark.pg
def test_the_months_insert_does_not_read_the_table_it_fills(pg_settings: Settings) -> None:
    """With the subsidies table's statistics saying it is empty (a new installation's
    first month), PostgreSQL would answer a NOT EXISTS on it by scanning it once per
    row inserted, each scan longer than the last (184 s for 80,000 loans). The insert
    leaves the loans granted already to the unique key, so its plan reads subsidies
    nowhere: checked on the plan, since timing belongs in the benchmark."""
    world = make_world(pg_settings)
    with world.client:
        loan_id = make_loan(world, grade="A", annual_rate_bps=500)
        repaid(world, loan_id, date(2026, 3, 12), interest_fen=50_000)
    engine = get_engine(pg_settings)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("VACUUM ANALYZE subsidies")  # empty: the planner believes it
    statement = subsidies._insert_subsidies(
        "postgresql", subsidies._Run.new(), MARCH, ["A", "B"], 100, clock.now()
    )
    with engine.connect() as conn:
        sql = statement.compile(dialect=conn.dialect, compile_kwargs={"render_postcompile": True})
        plan = [line for (line,) in conn.exec_driver_sql("EXPLAIN " + sql.string, sql.params)]
    assert plan[0].startswith("Insert on subsidies"), plan
    assert not [line for line in plan[1:] if " on subsidies" in line], plan
    subsidies.grant(context.HubContext.of(pg_settings), MARCH)
    assert subsidies.grant(context.HubContext.of(pg_settings), MARCH) == 0  # the key skips it


SUBSIDY_COMMITS = 7  # of a clean run of the crash test's month (tests/crash_child.py)


@pytest.mark.parametrize(
    "settings", [pytest.param("postgresql", marks=pytest.mark.pg)], indirect=True
)
def test_kill_9_at_seeded_points_then_a_rerun_grants_and_pays_each_subsidy_once(
    stage: Stage, prefect_harness: None, tmp_path: Path
) -> None:
    """The subsidies flow's own process is killed (SIGKILL) at a seeded point of a
    month — before a commit, before a bank is asked, after it answered — then rerun."""
    settings = stage.world.settings
    urls = [str(client.base_url) for client in stage.banks.values()]
    months = [date(2026, 3, 1), date(2026, 4, 1), date(2026, 5, 1)]
    for first, kill_at in zip(
        months, kill_points(seed=13, trials=3, commits=SUBSIDY_COMMITS, calls=3), strict=True
    ):
        for bank_name, rate in (("b1", 600), ("b1", 400), ("b2", 500)):
            loan = make_loan(stage.world, bank=bank_name, annual_rate_bps=rate)
            repaid(stage.world, loan, first + timedelta(days=14), interest_fen=60_000)
        next_month = (first + timedelta(days=32)).replace(day=1)
        run = run_flow_process(
            settings, "subsidies", kill_at, urls, tmp_path / "clock", as_of=next_month.isoformat()
        )
        assert run.killed, f"the run passed only {run.points} points"
        assert fund_books_agree(settings)
        grant_subsidies(as_of=next_month)
        assert fund_books_agree(settings)
    listed = stage.listed()
    assert len(listed) == 9 and {s["status"] for s in listed} == {"instructed"}
    with unit_of_work(get_engine(settings), write=False) as session:
        bank_of = dict(
            session.execute(
                select(Subsidy.id, Partner.code)
                .join(Loan, Loan.id == Subsidy.loan_id)
                .join(Partner, Partner.id == Loan.bank_id)
            ).all()
        )
    for code in ("B1", "B2"):
        mine = {
            s["subsidy_id"]: s["amount_fen"] for s in listed if bank_of[s["subsidy_id"]] == code
        }
        paid = {c["idempotency_key"] for c in stage.subsidy_calls(code) if c["status"] == 200}
        assert paid == {f"subsidy:{i}" for i in mine}  # each asked for (and paid) once
        for subsidy_id, amount in mine.items():
            payout = stage.banks[code].get(f"/subsidy-payouts/{subsidy_id}").json()
            assert payout["amount_fen"] == amount
