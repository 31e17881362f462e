"""Random sequences of medical-credit operations against the real API (Hypothesis stateful).

A RuleBasedStateMachine opens visits, holds, raises and voids holds, closes
visits with random bills (self-pay and insurance split), refunds, repays and
replays earlier requests under their Idempotency-Key, through the real app on
a real database (`make_world`). It keeps a small model of what every line,
visit, hold and debt should be, and after every step checks through the API:

- the line: available = limit - held - outstanding, held + outstanding <= limit,
  outstanding >= 0, overdue <= outstanding, and held / outstanding equal the model;
- the ledger: the trial balance's `line:{id}:held` and `line:{id}:debt` (as of
  now, expired holds released) equal held_fen and outstanding_fen;
- the books (`hub.medical.books`): every account against the rows it stands for
  (the line against its holds and debts, payables against captures and refunds,
  insurance against closed bills, ...), a check that a wrong flow would fail,
  where a trial balance of 0 holds by construction.

Errors are outcomes too: a 402 `insufficient_credit` leaves everything as it
was; a hold that is not held cannot be raised or voided (409); a visit that is
not open takes no holds and no second close (409); a refund over what is left
(422 `refund_exceeds_captured`) or a repayment over what is outstanding (422
`overpayment`) changes nothing.

Hypothesis' stateful tests cannot take pytest fixtures, so the machine class is
built inside the test from the `settings` fixture (SQLite, and PostgreSQL when
CREDITHUB_TEST_PG_URL is set — that variant carries the `pg` mark), and each
example starts from emptied tables, as conftest's `_fresh` does.
"""

from __future__ import annotations

import itertools
import os
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, Phase
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import select

from hub.core import clock
from hub.core.db import get_engine, unit_of_work
from hub.medical import holds
from hub.settings import Settings
from models.medical.tables import Debt, DebtSource
from tests.books import books_agree, medical_books_agree
from tests.conftest import ID_NUMBERS, World, _fresh, make_world

LIMIT = 100_000
START = datetime(2026, 3, 2, 4, 0, tzinfo=UTC)  # 12:00 in Asia/Shanghai
ZONE = ZoneInfo("Asia/Shanghai")
TTL = {"outpatient": timedelta(hours=72), "inpatient": timedelta(days=30)}  # default settings
REPAY_DAYS = 15
PAID_AT = "2026-03-01T09:00:00+08:00"

# Every example builds a fresh world (about a second), so shrinking a failure would take
# minutes: it is off unless CREDITHUB_TEST_SHRINK=1. A failure still prints its steps.
_PHASES = [Phase.explicit, Phase.reuse, Phase.generate, Phase.target]
if os.environ.get("CREDITHUB_TEST_SHRINK") == "1":
    _PHASES.append(Phase.shrink)

MACHINE_SETTINGS = hsettings(
    max_examples=25,
    stateful_step_count=30,
    deadline=None,
    phases=_PHASES,
    report_multiple_bugs=False,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)

amounts = st.one_of(st.integers(1, 2_000), st.integers(2_000, 40_000), st.integers(40_000, 120_000))
self_pay_amounts = st.one_of(
    st.just(0), st.integers(1, 5_000), st.integers(5_000, 60_000), st.integers(60_000, 150_000)
)


@dataclass
class Hold:
    auth_id: str
    visit_id: str
    amount: int
    expires_at: datetime
    status: str = "held"  # held | voided | captured | released | expired
    captured: int = 0


@dataclass
class VisitModel:
    visit_id: str
    hospital: str
    status: str = "open"
    holds: list[str] = field(default_factory=list)  # auth ids, oldest first
    captured: int = 0
    refunded: int = 0
    kind: str = "outpatient"
    unpaid: int = 0  # what is still owed on this visit's debt
    due: date | None = None
    debt_id: str = ""  # the debt's own id, which breaks ties between equal due dates


@dataclass
class Stored:
    """A POST whose outcome the hub keeps under its Idempotency-Key."""

    who: str
    path: str
    body: dict[str, Any]
    key: str
    status: int
    text: str


class CreditMachine(RuleBasedStateMachine):
    """Subclassed in the test with `db` set to the fixture's Settings."""

    db: Settings
    # "still": the clock moves a second a step; "due": it also jumps hours and days while no
    # hold is live, so debts fall overdue; "expire": it jumps at any time, so holds expire
    clock_mode = "still"

    def __init__(self) -> None:
        super().__init__()
        _fresh(self.db)
        self.now = START
        clock.set_now(self.now)
        self.world: World = make_world(self.db)
        self.world.client.__enter__()
        self.line = self.world.ids["line"]
        self.held = 0
        self.outstanding = 0
        self.visits: dict[str, VisitModel] = {}
        self.holds: dict[str, Hold] = {}
        self.stored: list[Stored] = []
        self.refs = itertools.count(1)

    def teardown(self) -> None:
        try:
            self.world.client.__exit__(None, None, None)
        finally:
            clock.set_now(None)

    # --- helpers ---------------------------------------------------------------------------

    def _tick(self) -> None:
        self.now += timedelta(seconds=1)
        clock.set_now(self.now)

    def _today(self) -> date:
        return self.now.astimezone(ZONE).date()

    def _overdue(self) -> int:
        """Unpaid debt at least one day past its due date."""
        today = self._today()
        return sum(v.unpaid for v in self.visits.values() if v.due and (today - v.due).days >= 1)

    def _ref(self, prefix: str) -> str:
        return f"{prefix}-{next(self.refs)}"

    def _post(self, who: str, path: str, body: dict[str, Any]) -> Any:
        self._tick()
        key = uuid.uuid4().hex
        r = self.world.client.post(path, json=body, headers=self.world.headers(who, key))
        assert r.status_code != 500, r.text
        if 200 <= r.status_code < 300 or r.status_code in (402, 409):
            self.stored.append(Stored(who, path, body, key, r.status_code, r.text))
        return r

    def _get(self, who: str, path: str) -> Any:
        r = self.world.get(who, path)
        assert r.status_code == 200, r.text
        return r.json()

    @staticmethod
    def _problem(r: Any, status: int, code: str) -> None:
        assert r.status_code == status, r.text
        assert r.headers["content-type"].startswith("application/problem+json")
        assert r.json()["code"] == code, r.text

    def _available(self) -> int:
        return LIMIT - self.held - self.outstanding

    @staticmethod
    def _pick(data: st.DataObject, every: dict[str, Any], preferred: list[str], label: str) -> Any:
        """Mostly one of `preferred` (where the call can succeed), sometimes any."""
        pool = preferred if preferred and data.draw(st.integers(0, 3), label="prefer") else every
        return every[data.draw(st.sampled_from(sorted(pool)), label=label)]

    def _edge(self, data: st.DataObject, amount: int) -> int:
        """Sometimes exactly what is available, or one fen more: the 402 boundary."""
        how = data.draw(
            st.sampled_from(["random", "random", "all available", "one more"]), label="amount"
        )
        if how == "all available" and self._available() > 0:
            return self._available()
        if how == "one more":
            return self._available() + 1
        return amount

    def _visits_in(self, status: str) -> list[str]:
        return [v.visit_id for v in self.visits.values() if v.status == status]

    def _visit_holds(self, visit: VisitModel) -> list[Hold]:
        return [self.holds[a] for a in visit.holds]

    def _check_visit(self, visit: VisitModel) -> dict[str, Any]:
        """The visit as the API shows it matches the model."""
        body = self._get(visit.hospital, f"/v1/visits/{visit.visit_id}")
        assert body["status"] == visit.status
        assert body["captured_fen"] == visit.captured
        assert body["refunded_fen"] == visit.refunded
        shown = {a["authorization_id"]: a for a in body["authorizations"]}
        assert set(visit.holds) <= set(shown)
        for hold in self._visit_holds(visit):
            a = shown[hold.auth_id]
            assert (a["status"], a["amount_fen"], a["captured_fen"]) == (
                hold.status,
                hold.amount,
                hold.captured,
            ), (hold, a)
        return body

    # --- set-up ---------------------------------------------------------------------------------

    @initialize()
    def both_hospitals_check_the_person(self) -> None:
        for who in ("h1", "h2"):
            r = self._post(who, "/v1/eligibility-checks", {"id_number": ID_NUMBERS[0]})
            assert r.status_code == 200, r.text
            assert r.json() == {
                "eligible": True,
                "credit_line_id": self.line,
                "available_fen": LIMIT,
            }

    # --- rules ------------------------------------------------------------------------------------

    @precondition(lambda self: len(self._visits_in("open")) < 3)
    @rule(hospital=st.sampled_from(["h1", "h2"]), kind=st.sampled_from(["outpatient", "inpatient"]))
    def open_visit(self, hospital: str, kind: str) -> None:
        r = self._post(
            hospital,
            "/v1/visits",
            {
                "credit_line_id": self.line,
                "his_visit_id": self._ref("V"),
                "kind": kind,
                "department": "ENT",
            },
        )
        assert r.status_code == 201, r.text
        body = r.json()
        assert body["status"] == "open" and body["credit_line_id"] == self.line
        assert body["authorizations"] == [] and body["captured_fen"] == 0
        self.visits[body["visit_id"]] = VisitModel(body["visit_id"], hospital, kind=kind)

    @precondition(lambda self: self.visits)
    @rule(data=st.data(), amount=amounts)
    def hold(self, data: st.DataObject, amount: int) -> None:
        visit = self._pick(data, self.visits, self._visits_in("open"), "visit")
        amount = self._edge(data, amount)
        before = self._check_visit(visit)
        r = self._post(
            visit.hospital,
            f"/v1/visits/{visit.visit_id}/authorizations",
            {"amount_fen": amount, "his_order_id": self._ref("O"), "description": "charge"},
        )
        if visit.status != "open":
            self._problem(r, 409, "visit_not_open")
        elif amount > self._available():
            self._problem(r, 402, "insufficient_credit")
        else:
            assert r.status_code == 201, r.text
            auth = r.json()
            assert (auth["status"], auth["amount_fen"], auth["captured_fen"]) == ("held", amount, 0)
            assert auth["visit_id"] == visit.visit_id
            expires = self.now + TTL[visit.kind]
            assert auth["expires_at"] == expires.isoformat(timespec="milliseconds").replace(
                "+00:00", "Z"
            )
            self.holds[auth["authorization_id"]] = Hold(
                auth["authorization_id"], visit.visit_id, amount, expires
            )
            visit.holds.append(auth["authorization_id"])
            self.held += amount
            return
        after = self._check_visit(visit)  # refused: no hold was created
        assert len(after["authorizations"]) == len(before["authorizations"])

    @precondition(lambda self: self.holds)
    @rule(data=st.data(), amount=amounts)
    def increment(self, data: st.DataObject, amount: int) -> None:
        held = [h.auth_id for h in self.holds.values() if h.status == "held"]
        hold = self._pick(data, self.holds, held, "hold")
        visit = self.visits[hold.visit_id]
        amount = self._edge(data, amount)
        r = self._post(
            visit.hospital, f"/v1/authorizations/{hold.auth_id}/increments", {"amount_fen": amount}
        )
        if hold.status != "held":
            self._problem(r, 409, "authorization_not_held")
        elif amount > self._available():
            self._problem(r, 402, "insufficient_credit")
        else:
            assert r.status_code == 200, r.text
            assert (r.json()["status"], r.json()["amount_fen"]) == ("held", hold.amount + amount)
            hold.amount += amount
            self.held += amount
        self._check_visit(visit)

    @precondition(lambda self: self.holds)
    @rule(data=st.data())
    def void(self, data: st.DataObject) -> None:
        held = [h.auth_id for h in self.holds.values() if h.status == "held"]
        hold = self._pick(data, self.holds, held, "hold")
        visit = self.visits[hold.visit_id]
        r = self._post(visit.hospital, f"/v1/authorizations/{hold.auth_id}/void", {})
        if hold.status != "held":
            self._problem(r, 409, "authorization_not_held")
        else:
            assert r.status_code == 200, r.text
            assert (r.json()["status"], r.json()["amount_fen"]) == ("voided", hold.amount)
            hold.status = "voided"
            self.held -= hold.amount
        self._check_visit(visit)

    @precondition(lambda self: self.visits)
    @rule(
        data=st.data(),
        self_pay=self_pay_amounts,
        insurance=st.integers(0, 80_000),
        items=st.integers(1, 3),
        adds_up=st.booleans() | st.just(True),
    )
    def close(
        self, data: st.DataObject, self_pay: int, insurance: int, items: int, adds_up: bool
    ) -> None:
        visit = self._pick(data, self.visits, self._visits_in("open"), "visit")
        live = [h for h in self._visit_holds(visit) if h.status == "held"]
        visit_held = sum(h.amount for h in live)
        if visit_held and data.draw(st.booleans(), label="self_pay = what is held"):
            self_pay = visit_held
        total = self_pay + insurance
        parts = [total // items] * (items - 1)
        parts.append(total - sum(parts))
        if not adds_up:
            parts[-1] += 1
        bill = {
            "his_bill_id": self._ref("B"),
            "total_fen": total,
            "insurance_fen": insurance,
            "self_pay_fen": self_pay,
            "items": [
                {"code": f"I{i}", "name": "item", "amount_fen": p} for i, p in enumerate(parts)
            ],
        }
        r = self._post(visit.hospital, f"/v1/visits/{visit.visit_id}/close", bill)
        extra = max(self_pay - visit_held, 0)
        if not adds_up:
            self._problem(r, 422, "bill_does_not_add_up")
        elif visit.status != "open":
            self._problem(r, 409, "visit_not_open")
        elif extra > self._available():
            self._problem(r, 402, "insufficient_credit")
            after = self._check_visit(visit)  # still open, no balance hold
            assert after["bill"] is None
            assert len(after["authorizations"]) == len(visit.holds)
        else:
            assert r.status_code == 200, r.text
            body = r.json()
            assert body["status"] == "closed"
            assert body["captured_fen"] == self_pay
            assert body["released_fen"] == visit_held + extra - self_pay
            assert body["bill"]["insurance_fen"] == insurance
            assert body["bill"]["self_pay_fen"] == self_pay
            due = self._today() + timedelta(days=REPAY_DAYS) if self_pay else None
            if due:
                assert body["due_date"] == due.isoformat()
                assert body["settlement_window_id"] is not None
            else:
                assert body["due_date"] is None and body["settlement_window_id"] is None
            remaining = self_pay
            for h in live:  # captured oldest first, the rest released
                take = min(remaining, h.amount)
                remaining -= take
                h.status, h.captured = ("captured" if take else "released"), take
            assert remaining == extra
            if extra:
                shown = [
                    a for a in body["authorizations"] if a["authorization_id"] not in self.holds
                ]
                assert [(a["status"], a["amount_fen"], a["captured_fen"]) for a in shown] == [
                    ("captured", extra, extra)
                ]
            visit.status, visit.captured, visit.unpaid, visit.due = (
                "closed",
                self_pay,
                self_pay,
                due,
            )
            visit.debt_id = self._debt_id(visit.visit_id) if due else ""
            self.held -= visit_held
            self.outstanding += self_pay
        self._check_visit(visit)

    @precondition(lambda self: self._visits_in("closed"))
    @rule(data=st.data(), amount=amounts)
    def refund(self, data: st.DataObject, amount: int) -> None:
        refundable = [v.visit_id for v in self.visits.values() if v.captured > v.refunded]
        visit = self._pick(data, self.visits, refundable, "visit")
        left = visit.captured - visit.refunded
        if left > 0 and data.draw(st.booleans(), label="refund all that is left"):
            amount = left
        r = self._post(
            visit.hospital,
            f"/v1/visits/{visit.visit_id}/refunds",
            {"amount_fen": amount, "his_refund_id": self._ref("R"), "reason": "r"},
        )
        if visit.status != "closed":
            self._problem(r, 409, "visit_not_closed")
        elif amount > left:
            self._problem(r, 422, "refund_exceeds_captured")
        else:
            assert r.status_code == 201, r.text
            reduced = min(visit.unpaid, amount)
            body = r.json()
            assert (
                body["amount_fen"],
                body["debt_reduced_fen"],
                body["returned_to_patient_fen"],
            ) == (amount, reduced, amount - reduced)
            visit.refunded += amount
            visit.unpaid -= reduced
            self.outstanding -= reduced
        self._check_visit(visit)

    @precondition(lambda self: self.outstanding > 0)
    @rule(data=st.data(), amount=amounts)
    def repay(self, data: st.DataObject, amount: int) -> None:
        choice = data.draw(st.sampled_from(["random", "all", "part", "one more"]), label="how much")
        if choice == "all" and self.outstanding:
            amount = self.outstanding
        elif choice == "part" and self.outstanding > 1:
            amount = data.draw(st.integers(1, self.outstanding - 1), label="part")
        elif choice == "one more":
            amount = self.outstanding + 1
        r = self._post(
            "b1",
            "/v1/repayments",
            {
                "credit_line_id": self.line,
                "amount_fen": amount,
                "bank_txn_id": self._ref("T"),
                "paid_at": PAID_AT,
            },
        )
        if amount > self.outstanding:
            self._problem(r, 422, "overpayment")
            return
        assert r.status_code == 201, r.text
        self.outstanding -= amount
        body = r.json()
        assert (body["applied_fen"], body["outstanding_fen"]) == (amount, self.outstanding)
        # the debts are paid oldest due date first (then by the debt's id)
        left = amount
        owed = [v for v in self.visits.values() if v.unpaid]
        for visit in sorted(owed, key=lambda v: (v.due or date.max, v.debt_id)):
            pay = min(left, visit.unpaid)
            visit.unpaid -= pay
            left -= pay
        assert left == 0

    @precondition(
        lambda self: (
            self.clock_mode == "expire"
            or (
                self.clock_mode == "due"
                and not any(h.status == "held" for h in self.holds.values())
            )
        )
    )
    @rule(data=st.data())
    def time_passes(self, data: st.DataObject) -> None:
        """Holds expire at `expires_at`, whether or not anything swept them; debts fall due."""
        jumps = {
            "due": [timedelta(hours=1), timedelta(days=1), timedelta(days=16), timedelta(days=17)],
            "expire": [timedelta(hours=72), timedelta(days=30), timedelta(hours=1)],
        }[self.clock_mode]
        jump = data.draw(st.sampled_from(jumps), label="jump")
        self.now += jump
        clock.set_now(self.now)
        for hold in self.holds.values():
            if hold.status == "held" and hold.expires_at <= self.now:
                hold.status = "expired"
                self.held -= hold.amount
        for visit in self.visits.values():
            self._check_visit(visit)

    @precondition(lambda self: self.clock_mode == "expire")
    @rule()
    def sweep(self) -> None:
        """The expiry sweep catches the stored balances and the books up; nothing else moves."""
        with unit_of_work(get_engine(self.db)) as session:
            holds.release_all_expired(session, self.now, max_lines=100)
        for visit in self.visits.values():
            self._check_visit(visit)

    @precondition(lambda self: self.stored)
    @rule(data=st.data())
    def replay(self, data: st.DataObject) -> None:
        """A stored outcome comes back as it was, even if the world changed; nothing happens."""
        first = data.draw(st.sampled_from(self.stored), label="request to replay")
        self._tick()
        r = self.world.client.post(
            first.path, json=first.body, headers=self.world.headers(first.who, first.key)
        )
        assert r.status_code == first.status, r.text
        assert r.text == first.text
        assert r.headers.get("idempotent-replayed") == "true"

    # --- invariants ------------------------------------------------------------------------------

    @invariant()
    def balances(self) -> None:
        """The line first, then the ledger against it (one invariant, so always in this order)."""
        self._line_balances()
        self._ledger_matches()

    def _line_balances(self) -> None:
        line = self._get("b1", f"/v1/credit-lines/{self.line}")
        assert line["status"] == "active" and line["limit_fen"] == LIMIT  # no job suspends it here
        assert (
            line["available_fen"] == line["limit_fen"] - line["held_fen"] - line["outstanding_fen"]
        )
        assert line["held_fen"] + line["outstanding_fen"] <= line["limit_fen"]
        assert line["held_fen"] >= 0 and line["outstanding_fen"] >= 0
        assert 0 <= line["overdue_fen"] <= line["outstanding_fen"]
        assert line["overdue_fen"] == self._overdue()
        unpaid_dues = [v.due for v in self.visits.values() if v.unpaid]
        assert line["next_due_date"] == (min(unpaid_dues).isoformat() if unpaid_dues else None)
        assert (line["held_fen"], line["outstanding_fen"]) == (self.held, self.outstanding)
        # a hospital with access sees the same balances
        seen = self._get("h1", f"/v1/credit-lines/{self.line}")
        assert seen == line

    def _ledger_matches(self) -> None:
        trial = self._get("op", "/v1/ledger/trial-balance")
        balances = {a["account"]: a["balance_fen"] for a in trial["accounts"]}
        held = balances.get(f"line:{self.line}:held", 0)
        assert held == self.held, f"ledger line:held is {held}, the line's held_fen {self.held}"
        debt = balances.get(f"line:{self.line}:debt", 0)
        assert debt == self.outstanding, (
            f"ledger line:debt is {debt}, outstanding {self.outstanding}"
        )
        assert medical_books_agree(self.db)

    def _debt_id(self, visit_id: str) -> str:
        """The debt a close left (its id is not shown by the API)."""
        with unit_of_work(get_engine(self.db), write=False) as session:
            found = session.scalar(
                select(Debt.id).where(
                    Debt.source_kind == DebtSource.VISIT, Debt.source_id == visit_id
                )
            )
        assert found is not None
        return found


def _run(db: Settings, clock_mode: str = "still", max_examples: int = 25) -> None:
    name = f"CreditMachine_{clock_mode}_{db.sqlalchemy_url().split(':')[0]}"
    machine = type(name, (CreditMachine,), {"db": db, "clock_mode": clock_mode})
    run_state_machine_as_test(
        machine, settings=hsettings(MACHINE_SETTINGS, max_examples=max_examples)
    )


def test_random_operations_keep_balances_and_ledger(settings: Settings) -> None:
    """SQLite always; PostgreSQL as well when CREDITHUB_TEST_PG_URL is set (mark `pg`)."""
    _run(settings)


def test_random_operations_as_debts_fall_due(settings: Settings) -> None:
    """The same, with a clock that jumps hours and days while no hold is live: debts fall
    overdue (overdue_fen, next_due_date, repayment order by due date)."""
    _run(settings, "due", max_examples=15)


def test_random_operations_as_holds_expire(settings: Settings) -> None:
    """The same, with a clock that jumps at any time: holds expire (72 h outpatient, 30 days
    inpatient) with no background job run; the line and the ledger must still agree."""
    _run(settings, "expire", max_examples=15)


def test_an_expired_hold_leaves_line_and_ledger_in_step(settings: Settings) -> None:
    """The shortest sequence the `expire` machine looks for, spelled out: one outpatient
    hold, 72 hours pass, no sweep; the line and the trial balance must agree."""
    clock.set_now(START)
    world = make_world(settings)
    with world.client:
        assert (
            world.post("h1", "/v1/eligibility-checks", {"id_number": ID_NUMBERS[0]}).status_code
            == 200
        )
        line = world.ids["line"]
        visit = world.post(
            "h1",
            "/v1/visits",
            {
                "credit_line_id": line,
                "his_visit_id": "V",
                "kind": "outpatient",
                "department": "ENT",
            },
        )
        assert visit.status_code == 201, visit.text
        hold = world.post(
            "h1",
            f"/v1/visits/{visit.json()['visit_id']}/authorizations",
            {"amount_fen": 30_000, "his_order_id": "O", "description": "x"},
        )
        assert hold.status_code == 201, hold.text
        clock.set_now(START + TTL["outpatient"])
        auth = world.get("h1", f"/v1/authorizations/{hold.json()['authorization_id']}").json()
        assert auth["status"] == "expired"
        seen = world.get("b1", f"/v1/credit-lines/{line}").json()
        assert (seen["held_fen"], seen["available_fen"]) == (0, LIMIT)
        trial = world.get("op", "/v1/ledger/trial-balance").json()
        balances = {a["account"]: a["balance_fen"] for a in trial["accounts"]}
        assert balances.get(f"line:{line}:held", 0) == seen["held_fen"]
        assert books_agree(settings)  # stored: the hold counts, in line and ledger, until swept
