"""The demo's front desks (for `credithub demo --days N`): hospitals enrolling
residents and treating them on credit, and the banks' desks booking repayments —
all through the hub's public API, as the demo partners, at the simulated time.

Each hospital's own system (the HIS stand-in) is told of every capture and
refund, so the nightly reconciliation has a true list to match. Residents'
numbers, names and phones stay in memory here and are never printed or logged.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
from starlette.testclient import TestClient

from credithub.demo import BANKS, HOSPITALS
from hub.core import clock
from simulators.hospital_traffic import adult_id_number, hold_amount, make_bill, phone_number

HABITS = ("prompt", "on_due", "late")  # how a resident repays the bank
HABIT_WEIGHTS = (0.4, 0.35, 0.25)
LATE_BY_DAYS = 4  # a late payer pays this long after the due date: past suspension
_ORDERS = ("挂号费", "检验费", "检查费", "西药费", "治疗费")


def set_clock(day: date, hour: int, minute: int, zone: str) -> None:
    """Move the hub's one clock to this time of a business day."""
    clock.set_now(datetime.combine(day, time(hour, minute), ZoneInfo(zone)))


@dataclass
class Resident:
    """A resident the desks know; personal fields never appear in a repr."""

    id_number: str = field(repr=False)
    name: str = field(repr=False)
    phone: str = field(repr=False)
    hospital: str
    bank_code: str
    habit: str
    enrollment_id: str = ""
    line_id: str = ""


@dataclass
class Tally:
    """What the desks did in one day, in counts and fen."""

    approved: int = 0
    declined: int = 0
    visits: int = 0
    turned_away: int = 0  # not eligible (overdue, suspended): pays at the desk instead
    left_open: int = 0  # the patient left with a hold placed: it expires by itself
    captured_fen: int = 0
    refunded_fen: int = 0
    repaid_fen: int = 0


class Desks:
    """The hospitals' and banks' desks of the demo, over the hub's API."""

    def __init__(
        self,
        api: TestClient,
        keys: dict[str, str],
        stand_ins: dict[str, httpx.Client],
        rng: random.Random,
        zone: str,
    ) -> None:
        self.api, self.keys, self.stand_ins, self.rng, self.zone = api, keys, stand_ins, rng, zone
        self.pending: list[Resident] = []
        self.enrolled: list[Resident] = []
        self.tally = Tally()
        self.serial = 0

    def ref(self, who: str, letter: str) -> str:
        """A partner reference unique in this run: `XMH1-V000042`."""
        self.serial += 1
        return f"{who}-{letter}{self.serial:06d}"

    def post(self, who: str, path: str, body: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.keys[who]}", "Idempotency-Key": uuid.uuid4().hex}
        return self.api.post(path, json=body, headers=headers)

    def get(self, who: str, path: str) -> httpx.Response:
        return self.api.get(path, headers={"Authorization": f"Bearer {self.keys[who]}"})

    # Enrolment ---------------------------------------------------------------------------------

    def enrol(self, count: int) -> None:
        """Residents sign up at hospital desks; their names are what the database knows."""
        today = clock.business_date(clock.now(), self.zone)
        for _ in range(count):
            number = adult_id_number(self.rng, today)
            person = self.stand_ins["bureau"].get(f"/persons/{number}")
            if person.status_code != 200:
                continue
            resident = Resident(
                number,
                str(person.json()["name"]),
                phone_number(self.rng),
                hospital=self.rng.choice(HOSPITALS)[0],
                bank_code=self.rng.choice(BANKS)[0],
                habit=self.rng.choices(HABITS, weights=HABIT_WEIGHTS)[0],
            )
            body = {
                "id_number": resident.id_number,
                "name": resident.name,
                "phone": resident.phone,
                "bank_code": resident.bank_code,
                "consent": {
                    "purpose": "medical_credit",
                    "granted_at": clock.now().isoformat(),
                    "text_version": "2026-01",
                },
            }
            answer = self.post(resident.hospital, "/v1/enrollments", body)
            if answer.status_code == 202:
                resident.enrollment_id = answer.json()["enrollment_id"]
                self.pending.append(resident)

    def learn_decisions(self) -> None:
        """Each enrolling hospital reads how its enrolments were decided."""
        for resident in list(self.pending):
            state = self.get(resident.hospital, f"/v1/enrollments/{resident.enrollment_id}").json()
            if state.get("status") == "approved":
                resident.line_id = state["credit_line"]["credit_line_id"]
                self.enrolled.append(resident)
                self.tally.approved += 1
            elif state.get("status") == "declined":
                self.tally.declined += 1
            if state.get("status") != "pending":
                self.pending.remove(resident)

    # Hospitals ---------------------------------------------------------------------------------

    def hospital_day(self, day: date, visits: int) -> None:
        """Patients arrive from 08:30 to 19:30, each at a random hospital."""
        if not self.enrolled:
            return
        step = timedelta(hours=11) / max(visits, 1)
        start = datetime.combine(day, time(8, 30), ZoneInfo(self.zone))
        for n in range(visits):
            clock.set_now(start + step * n)
            self.treat(self.rng.choice(self.enrolled), self.rng.choice(HOSPITALS)[0])

    def treat(self, resident: Resident, hospital: str) -> None:
        """Eligibility, a visit, its holds (maybe one voided), the bill, maybe a refund."""
        check = self.post(hospital, "/v1/eligibility-checks", {"id_number": resident.id_number})
        if check.status_code != 200 or not check.json().get("eligible"):
            self.tally.turned_away += 1
            return
        available = int(check.json()["available_fen"])
        kind = "outpatient" if self.rng.random() < 0.85 else "inpatient"
        his_visit_id = self.ref(hospital, "V")
        opened = self.post(
            hospital,
            "/v1/visits",
            {"credit_line_id": resident.line_id, "his_visit_id": his_visit_id, "kind": kind},
        )
        if opened.status_code != 201:
            self.tally.turned_away += 1
            return
        self.tally.visits += 1
        visit_id = str(opened.json()["visit_id"])
        held = self.place_holds(hospital, visit_id, kind, available)
        if held and self.rng.random() < 0.05:
            self.tally.left_open += 1  # never closed: the hold-expiry sweep releases it
            return
        self.close(hospital, visit_id, kind, held)

    def place_holds(self, hospital: str, visit_id: str, kind: str, available: int) -> int:
        """One to three charges held, within what the line has; sometimes one voided."""
        held: list[tuple[str, int]] = []
        for _ in range(self.rng.randint(1, 3)):
            amount = hold_amount(self.rng, kind, available - sum(a for _, a in held))
            body = {
                "amount_fen": amount,
                "his_order_id": self.ref(hospital, "O"),
                "description": self.rng.choice(_ORDERS),
            }
            answer = self.post(hospital, f"/v1/visits/{visit_id}/authorizations", body)
            if answer.status_code != 201:
                break  # 402: no more credit; the bill stays within what is held
            held.append((str(answer.json()["authorization_id"]), amount))
        if len(held) > 1 and self.rng.random() < 0.15:
            cancelled, _ = held.pop()
            self.post(hospital, f"/v1/authorizations/{cancelled}/void", {})
        return sum(a for _, a in held)

    def close(self, hospital: str, visit_id: str, kind: str, held: int) -> None:
        """The final bill (over the holds now and then: rebilled within them if refused)."""
        bill = make_bill(self.rng, self.ref(hospital, "B"), kind, held)
        answer = self.post(hospital, f"/v1/visits/{visit_id}/close", bill)
        if answer.status_code == 402:
            bill = make_bill(self.rng, self.ref(hospital, "B"), kind, held, may_exceed=False)
            answer = self.post(hospital, f"/v1/visits/{visit_id}/close", bill)
        if answer.status_code != 200:
            return
        captured = int(answer.json().get("captured_fen") or 0)
        if captured <= 0:
            return
        self.tally.captured_fen += captured
        self.note(hospital, "capture", bill["his_bill_id"], captured, visit_id, visit_id)
        if self.rng.random() < 0.12:
            self.refund(hospital, visit_id, captured)

    def refund(self, hospital: str, visit_id: str, captured: int) -> None:
        """Part of a visit given back (a test not done, a drug returned)."""
        amount = max(1, int(captured * self.rng.uniform(0.1, 0.5)))
        his_refund_id = self.ref(hospital, "R")
        body = {"amount_fen": amount, "his_refund_id": his_refund_id, "reason": "退费"}
        answer = self.post(hospital, f"/v1/visits/{visit_id}/refunds", body)
        if answer.status_code == 201:
            self.tally.refunded_fen += amount
            self.note(
                hospital, "refund", his_refund_id, amount, visit_id, answer.json()["refund_id"]
            )

    def note(
        self, hospital: str, kind: str, ref: str, amount: int, visit: str, hub_id: str
    ) -> None:
        """The hospital's own system records the transaction, at the hub's time."""
        item = {
            "ref": ref,
            "kind": kind,
            "amount_fen": amount,
            "visit_id": visit,
            "hub_id": hub_id,
            "at": clock.now().isoformat(),
        }
        self.stand_ins["his"].post(f"/hospitals/{hospital}/transactions", json=item)

    # Banks -------------------------------------------------------------------------------------

    def repay_day(self) -> None:
        """Each resident who owes repays the bank by habit; the bank tells the hub."""
        today = clock.business_date(clock.now(), self.zone)
        for resident in self.enrolled:
            line = self.get(resident.bank_code, f"/v1/credit-lines/{resident.line_id}").json()
            outstanding, due = int(line.get("outstanding_fen") or 0), line.get("next_due_date")
            if outstanding <= 0 or due is None:
                continue
            if not pays_today(resident.habit, today, date.fromisoformat(due)):
                continue
            body = {
                "credit_line_id": resident.line_id,
                "amount_fen": outstanding,
                "bank_txn_id": self.ref(resident.bank_code, "T"),
                "paid_at": clock.now().isoformat(),
            }
            if self.post(resident.bank_code, "/v1/repayments", body).status_code == 201:
                self.tally.repaid_fen += outstanding


def pays_today(habit: str, today: date, next_due: date) -> bool:
    """Prompt payers pay at once, on-time payers the day before the due date, late ones late."""
    if habit == "prompt":
        return True
    if habit == "on_due":
        return today >= next_due - timedelta(days=1)
    return today >= next_due + timedelta(days=LATE_BY_DAYS)
