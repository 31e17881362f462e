"""The hospitals' systems, simulated: the traffic driver that acts as the five
hospitals (and as the banks for repayments) through the hub's public API."""

from __future__ import annotations

import datetime as dt
import logging
import math
import random
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx

from simulators.hospital_books import (
    SHANGHAI,
    Book,
    HospitalKnobs,
    Partners,
    Stats,
    TransactionItem,
    record,
)
from simulators.knobs import SimState

log = logging.getLogger("simulators.hospital")
_AREAS = ("350203", "350205", "350206", "350211", "350212", "350213", "350102", "350502")
_ID_WEIGHTS = [pow(2, 17 - i, 11) for i in range(17)]
_DEPARTMENTS = ("内科", "外科", "儿科", "眼科", "耳鼻喉科", "口腔科", "皮肤科", "妇产科", "骨科")
_OUTPATIENT_ITEMS = (
    ("REG", "挂号费"),
    ("CONS", "诊查费"),
    ("LAB", "检验费"),
    ("IMG", "检查费"),
    ("WMED", "西药费"),
    ("CMED", "中成药费"),
    ("TREAT", "治疗费"),
)
_INPATIENT_ITEMS = (
    *_OUTPATIENT_ITEMS,
    ("BED", "床位费"),
    ("NURS", "护理费"),
    ("SURG", "手术费"),
    ("MAT", "卫生材料费"),
)
_HOLD_RANGE = {"outpatient": (5_000, 200_000), "inpatient": (50_000, 1_000_000)}
_HOLDS_PER_VISIT = {"outpatient": (1, 3), "inpatient": (1, 5)}


def adult_id_number(rng: random.Random, today: dt.date) -> str:
    """A valid GB 11643 number of a resident aged 20 to 80, from a Fujian area."""
    born = today - dt.timedelta(days=rng.randint(20 * 366, 80 * 365))
    first17 = f"{rng.choice(_AREAS)}{born:%Y%m%d}{rng.randint(0, 999):03d}"
    total = sum(int(d) * w for d, w in zip(first17, _ID_WEIGHTS, strict=True))
    return first17 + "10X98765432"[total % 11]


def phone_number(rng: random.Random) -> str:
    return f"1{rng.choice('3578')}{rng.randint(0, 999_999_999):09d}"


# Money: holds and bills -----------------------------------------------------------------------


def log_uniform_fen(rng: random.Random, low: int, high: int) -> int:
    """Charges are skewed: many small ones, a few large; rounded to the jiao (10 fen)."""
    value = math.exp(rng.uniform(math.log(low), math.log(high)))
    return max(low, int(value) // 10 * 10)


def hold_amount(rng: random.Random, kind: str, available_fen: int | None) -> int:
    """A charge to hold; the desk usually keeps within the credit it last saw available."""
    amount = log_uniform_fen(rng, *_HOLD_RANGE[kind])
    if available_fen is not None and available_fen > 0 and rng.random() < 0.8:
        amount = min(amount, available_fen)
    return amount


def split_items(rng: random.Random, kind: str, total_fen: int) -> list[dict[str, Any]]:
    """Bill lines that sum exactly to the total; the last absorbs the remainder."""
    catalog = _OUTPATIENT_ITEMS if kind == "outpatient" else _INPATIENT_ITEMS
    chosen = rng.sample(catalog, k=min(len(catalog), rng.randint(1, 5), max(1, total_fen // 100)))
    weights = [rng.randint(1, 100) for _ in chosen]
    amounts = [total_fen * w // sum(weights) for w in weights[:-1]]
    amounts.append(total_fen - sum(amounts))
    return [
        {"code": c, "name": n, "amount_fen": a} for (c, n), a in zip(chosen, amounts, strict=True)
    ]


def make_bill(
    rng: random.Random, his_bill_id: str, kind: str, held_fen: int, may_exceed: bool = True
) -> dict[str, Any]:
    """The final bill: insurance pays 0-70%, the patient's share is near what was held.

    Now and then the share is over the holds (the line must cover the rest),
    unless `may_exceed` is off because the line already could not.
    """
    if held_fen <= 0 or rng.random() < 0.05:
        self_pay = 0
    elif may_exceed and rng.random() < 0.1:
        self_pay = int(held_fen * rng.uniform(1.0, 1.1))  # over the holds: needs more credit
    else:
        self_pay = int(held_fen * rng.uniform(0.6, 1.0))
    share = rng.uniform(0.0, 0.7)
    insurance = round(max(self_pay, 1_000) * share / (1 - share))
    total = insurance + self_pay
    return {
        "his_bill_id": his_bill_id,
        "total_fen": total,
        "insurance_fen": insurance,
        "self_pay_fen": self_pay,
        "items": split_items(rng, kind, total),
    }


# The transaction list -------------------------------------------------------------------------


@dataclass
class Answer:
    status: int  # 0: no answer (connection failed or timed out)
    body: dict[str, Any]


def _retry_wait(response: httpx.Response | None, attempt: int) -> float:
    if response is not None and response.headers.get("retry-after", "").isdigit():
        return min(10.0, float(response.headers["retry-after"]))
    return min(8.0, 0.25 * 2**attempt) * random.uniform(0.5, 1.0)  # jitter


class Caller:
    """One call to the hub or the bureau, retried on 429/5xx/no answer with the same key."""

    def __init__(self, http: httpx.Client, stats: Stats, stop: threading.Event) -> None:
        self.http, self.stats, self.stop = http, stats, stop

    def __call__(
        self, kind: str, method: str, url: str, key: str, body: Any = None, idem: str | None = None
    ) -> Answer:
        headers = {"Authorization": f"Bearer {key}"}
        if idem is not None:
            headers["Idempotency-Key"] = idem
        for attempt in range(4):
            response: httpx.Response | None = None
            try:
                response = self.http.request(method, url, json=body, headers=headers)
            except httpx.HTTPError as exc:
                outcome = type(exc).__name__
            else:
                outcome = str(response.status_code)
                if response.status_code != 429 and response.status_code < 500:
                    self.stats.count(kind, outcome)
                    return Answer(response.status_code, _json(response))
            self.stats.count(kind, outcome)
            if attempt == 3 or self.stop.wait(_retry_wait(response, attempt)):
                break
        log.warning("hospital simulator: %s gave up after %s", kind, outcome)
        return Answer(response.status_code if response is not None else 0, {})


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


# The driver's world ---------------------------------------------------------------------------


@dataclass
class Resident:
    id_number: str = field(repr=False)
    name: str = field(repr=False)
    phone: str = field(repr=False)
    hospital: str  # the hospital that enrolled the resident
    enrollment_id: str | None = None
    status: str = "new"  # new, pending, enrolled, declined, lost
    line_id: str | None = None
    bank_code: str | None = None
    available_fen: int | None = None
    polled_at: float = 0.0
    in_visit: bool = False
    owes: bool = False  # something was captured since the bank last saw nothing outstanding
    blocked: bool = False  # overdue or suspended: no new visit until repaid


@dataclass
class Visit:
    resident: Resident
    hospital: str
    kind: str
    his_visit_id: str
    department: str
    visit_id: str | None = None
    holds: dict[str, int] = field(default_factory=dict)  # live holds: authorization id -> fen
    planned_holds: int = 1
    bill: dict[str, Any] | None = None  # sent, outcome unknown: resent as is
    bill_key: str = ""
    captured_fen: int = 0
    refunded_fen: int = 0
    refund: dict[str, Any] | None = None  # sent, outcome unknown: resent as is
    refund_key: str = ""
    refund_tries: int = 0


@dataclass(frozen=True)
class DriverConfig:
    """Where the hub and the bureau are, and whom the driver acts as."""

    hub_url: str
    bureau_url: str
    bureau_key: str
    partners: Partners
    run_tag: str  # makes references unique across runs of the same seed on one hub


def default_run_tag() -> str:
    return f"R{int(time.time()) % 36**6:06X}"


class Driver:
    """The hospitals' front desks and the banks' repayment desks, one action at a time.

    Only the driver's thread touches residents and visits; the book and the
    stats are shared with the server and locked.
    """

    def __init__(
        self, config: DriverConfig, state: SimState[HospitalKnobs], book: Book, stats: Stats
    ) -> None:
        self.config, self.state, self.book, self.stats = config, state, book, stats
        self.rng = random.Random(state.knobs.seed)
        self.stopping, self.idle = threading.Event(), threading.Event()
        self.http = httpx.Client(timeout=15)
        self.call = Caller(self.http, stats, self.stopping)
        self.residents: list[Resident] = []
        self.visits: list[Visit] = []  # checked or open
        self.closed: list[Visit] = []  # closed with something captured, newest last
        self.serial = 0
        self.thread: threading.Thread | None = None

    # The thread -------------------------------------------------------------------------------

    def start(self) -> None:
        self.thread = threading.Thread(target=self._run, name="his-driver", daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.stopping.set()
        if self.thread is not None:
            self.thread.join(timeout=20)
        self.http.close()

    def _run(self) -> None:
        while not self.stopping.is_set():
            knobs = self.state.knobs
            if knobs.paused or knobs.rate <= 0 or not self.config.partners.hospitals:
                self.idle.set()
                self.stopping.wait(0.1)
                continue
            self.idle.clear()
            started = time.monotonic()
            try:
                self.step()
            except Exception as exc:  # the desks keep working whatever one action did
                self.stats.count("driver", type(exc).__name__)
                log.warning("hospital simulator: an action failed: %s", type(exc).__name__)
            self.stopping.wait(max(0.0, 1 / knobs.rate - (time.monotonic() - started)))

    # Choosing what happens next ---------------------------------------------------------------

    def step(self) -> None:
        """One action, chosen by weight among those the current state allows."""
        now, poll_every = time.monotonic(), self.state.knobs.poll_interval_s
        due = [
            r for r in self.residents if r.status == "pending" and now - r.polled_at >= poll_every
        ]
        if due:
            self.poll(due[0])
            return
        active = [r for r in self.residents if r.status in ("pending", "enrolled")]
        free = [r for r in active if r.status == "enrolled" and not r.in_visit and not r.blocked]
        checked = [v for v in self.visits if v.visit_id is None]
        opened = [v for v in self.visits if v.visit_id is not None]
        options: list[tuple[float, Any]] = [
            (3.0 if len(active) < 8 else 0.3, self.enrol),
            (2.0 if free else 0.0, lambda: self.check(self.rng.choice(free))),
            (3.0 if checked else 0.0, lambda: self.open_visit(self.rng.choice(checked))),
            (1.0 if any(r.owes for r in active) else 0.0, self.repay),
            (0.4 if self._refundable() else 0.0, lambda: self.refund(self._refundable())),
        ]
        if opened:
            visit = self.rng.choice(opened)
            wants_more = len(visit.holds) < visit.planned_holds
            options += [
                (4.0 if wants_more else 0.0, lambda: self.hold(visit)),
                (0.4 if visit.holds else 0.0, lambda: self.raise_hold(visit)),
                (0.25 if len(visit.holds) > 1 else 0.0, lambda: self.void(visit)),
                (0.3 if wants_more else 4.0, lambda: self.close(visit)),
            ]
        weights = [w for w, _ in options]
        self.rng.choices([a for _, a in options], weights=weights)[0]()

    def _refundable(self) -> Visit | None:
        candidates = [v for v in self.closed[-50:] if v.refund_tries == 0]
        return self.rng.choice(candidates) if candidates else None

    def ref(self, hospital: str, letter: str) -> str:
        """A partner reference, unique per run: `XMH1-R1A2B3C-V000042`."""
        self.serial += 1
        return f"{hospital}-{self.config.run_tag}-{letter}{self.serial:06d}"

    def key(self, action: str) -> str:
        self.serial += 1
        return f"his:{self.config.run_tag}:{action}:{self.serial}"

    def get(self, kind: str, path: str, key: str) -> Answer:
        return self.call(kind, "GET", f"{self.config.hub_url}/v1{path}", key)

    def post(self, kind: str, path: str, key: str, body: Any, idem: str | None = None) -> Answer:
        """A POST to the hub under a fresh Idempotency-Key, or the one given (a resend)."""
        url = f"{self.config.hub_url}/v1{path}"
        return self.call(kind, "POST", url, key, body, idem or self.key(kind))

    def hospital_key(self, code: str) -> str:
        return self.config.partners.hospitals[code]

    # Enrolment --------------------------------------------------------------------------------

    def enrol(self) -> None:
        """A resident signs up at a hospital desk, naming the bank that will fund the line."""
        partners = self.config.partners
        if not partners.banks:
            return
        hospital = self.rng.choice(sorted(partners.hospitals))
        bank = self.rng.choice(sorted(partners.banks))
        number = adult_id_number(self.rng, dt.datetime.now(SHANGHAI).date())
        phone = phone_number(self.rng)
        known = self.call(
            "bureau_lookup",
            "GET",
            f"{self.config.bureau_url}/persons/{number}",
            self.config.bureau_key,
        )
        if known.status not in (200, 404):
            return
        name = str(known.body.get("name") or "王某")  # one the database does not know still tries
        resident = Resident(number, name, phone, hospital)
        body = {
            "id_number": number,
            "name": name,
            "phone": phone,
            "bank_code": bank,
            "consent": {
                "purpose": "medical_credit",
                "granted_at": dt.datetime.now(SHANGHAI).isoformat(timespec="seconds"),
                "text_version": "2026-01",
            },
        }
        answer = self.post("enrol", "/enrollments", self.hospital_key(hospital), body)
        if answer.status == 202:
            resident.enrollment_id, resident.status = answer.body["enrollment_id"], "pending"
            resident.polled_at = time.monotonic()
        elif answer.status == 409:
            resident.status = "enrolled"  # enrolled before (an earlier run): a check finds the line
        else:
            return
        self.residents.append(resident)

    def poll(self, resident: Resident) -> None:
        """The enrolling hospital asks how the enrolment was decided."""
        answer = self.get(
            "poll", f"/enrollments/{resident.enrollment_id}", self.hospital_key(resident.hospital)
        )
        resident.polled_at = time.monotonic()
        status = answer.body.get("status") if answer.status == 200 else None
        if status == "approved":
            line = answer.body["credit_line"]
            resident.status, resident.line_id = "enrolled", line["credit_line_id"]
            resident.bank_code, resident.available_fen = line["bank_code"], line["limit_fen"]
        elif status == "declined" or answer.status == 404:
            self.residents.remove(resident)

    # A visit ----------------------------------------------------------------------------------

    def check(self, resident: Resident) -> None:
        """A patient at a desk asks to pay by credit: the hospital checks eligibility."""
        hospital = self.rng.choice(sorted(self.config.partners.hospitals))
        key = self.hospital_key(hospital)
        answer = self.post(
            "eligibility", "/eligibility-checks", key, {"id_number": resident.id_number}
        )
        if answer.status != 200:
            return
        if not answer.body.get("eligible"):
            if answer.body.get("reason") == "not_enrolled":
                self.residents.remove(resident)
            else:
                resident.owes = resident.blocked = True  # the bank's desk collects first
            return
        resident.line_id = answer.body["credit_line_id"]
        resident.available_fen = answer.body["available_fen"]
        if resident.bank_code is None:
            line = self.get("read_line", f"/credit-lines/{resident.line_id}", key)
            resident.bank_code = line.body.get("bank_code")
        kind = "outpatient" if self.rng.random() < 0.85 else "inpatient"
        low, high = _HOLDS_PER_VISIT[kind]
        resident.in_visit = True
        self.visits.append(
            Visit(
                resident,
                hospital,
                kind,
                self.ref(hospital, "V"),
                self.rng.choice(_DEPARTMENTS),
                planned_holds=self.rng.randint(low, high),
            )
        )

    def end_visit(self, visit: Visit) -> None:
        visit.resident.in_visit = False
        self.visits.remove(visit)

    def open_visit(self, visit: Visit) -> None:
        body = {
            "credit_line_id": visit.resident.line_id,
            "his_visit_id": visit.his_visit_id,
            "kind": visit.kind,
            "department": visit.department,
        }
        answer = self.post("open_visit", "/visits", self.hospital_key(visit.hospital), body)
        if answer.status == 201:
            visit.visit_id = answer.body["visit_id"]
        elif answer.status < 500 and answer.status != 0:
            self.end_visit(visit)

    def hold(self, visit: Visit) -> None:
        """A charge is ordered (a test, a drug, a deposit): hold it against the line."""
        resident = visit.resident
        amount = hold_amount(self.rng, visit.kind, resident.available_fen)
        body = {
            "amount_fen": amount,
            "his_order_id": self.ref(visit.hospital, "O"),
            "description": self.rng.choice(_INPATIENT_ITEMS)[1],
        }
        answer = self.post(
            "hold",
            f"/visits/{visit.visit_id}/authorizations",
            self.hospital_key(visit.hospital),
            body,
        )
        if answer.status == 201:
            visit.holds[answer.body["authorization_id"]] = amount
            resident.available_fen = max(0, (resident.available_fen or 0) - amount)
        elif answer.status in (402, 409):  # no more credit, or the line stopped: bill what is held
            resident.available_fen = 0 if answer.status == 402 else resident.available_fen
            visit.planned_holds = len(visit.holds)

    def raise_hold(self, visit: Visit) -> None:
        """More of the same (a longer stay, another dose): raise a hold."""
        authorization = self.rng.choice(sorted(visit.holds))
        amount = log_uniform_fen(self.rng, 1_000, 50_000)
        answer = self.post(
            "raise",
            f"/authorizations/{authorization}/increments",
            self.hospital_key(visit.hospital),
            {"amount_fen": amount},
        )
        if answer.status == 200:
            visit.holds[authorization] = int(answer.body["amount_fen"])
        elif answer.status == 409:
            visit.holds.pop(authorization, None)  # expired or no longer held

    def void(self, visit: Visit) -> None:
        """An order is cancelled: release its hold."""
        authorization = self.rng.choice(sorted(visit.holds))
        answer = self.post(
            "void", f"/authorizations/{authorization}/void", self.hospital_key(visit.hospital), {}
        )
        if answer.status in (200, 409):
            visit.holds.pop(authorization, None)

    def close(self, visit: Visit, may_exceed: bool = True) -> None:
        """Discharge: the final bill. A bill sent without an answer is resent as it was."""
        if visit.bill is None:
            held = sum(visit.holds.values())
            bill_id = self.ref(visit.hospital, "B")
            visit.bill = make_bill(self.rng, bill_id, visit.kind, held, may_exceed)
            visit.bill_key = self.key("close")
        answer = self.post(
            "close",
            f"/visits/{visit.visit_id}/close",
            self.hospital_key(visit.hospital),
            visit.bill,
            visit.bill_key,
        )
        if answer.status == 200:
            self.closed_visit(visit, answer.body)
        elif answer.status == 402 and may_exceed:  # over the credit: bill within the holds
            visit.bill = None
            self.close(visit, may_exceed=False)
        elif answer.status == 402:  # the holds expired meanwhile: the patient pays at the desk
            self.end_visit(visit)
        elif answer.status == 409:
            self.sync_visit(visit)
        elif answer.status == 422 or answer.status == 404:
            log.warning("hospital simulator: a bill was refused (%s)", answer.status)
            self.end_visit(visit)

    def sync_visit(self, visit: Visit) -> None:
        """The hub says the visit is closed: learn how (an earlier close's answer was lost)."""
        answer = self.get(
            "read_visit", f"/visits/{visit.visit_id}", self.hospital_key(visit.hospital)
        )
        if answer.status == 200 and answer.body.get("status") == "closed":
            self.closed_visit(visit, answer.body)
        elif answer.status in (200, 404):
            visit.bill = None

    def closed_visit(self, visit: Visit, body: dict[str, Any]) -> None:
        """Record the capture in the hospital's list, as the HIS saw the answer."""
        self.end_visit(visit)
        visit.captured_fen = int(body.get("captured_fen") or 0)
        if visit.captured_fen <= 0:
            return
        visit.resident.owes = True
        bill_id = (body.get("bill") or {}).get("his_bill_id") or (visit.bill or {})["his_bill_id"]
        self.note(
            visit, "capture", bill_id, visit.captured_fen, body["visit_id"], body.get("closed_at")
        )
        self.closed = [*self.closed[-199:], visit]

    def note(
        self,
        visit: Visit,
        kind: Literal["capture", "refund"],
        ref: str,
        amount: int,
        hub_id: str,
        at: str | None,
    ) -> None:
        """One line in the hospital's list; the time is the hub's, so the dates agree."""
        moment = dt.datetime.fromisoformat(at) if at else dt.datetime.now(dt.UTC)
        item = TransactionItem(
            ref=ref,
            kind=kind,
            amount_fen=amount,
            visit_id=visit.visit_id or "",
            hub_id=hub_id,
            at=moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC),
            his_visit_id=visit.his_visit_id,
        )
        self.book.add(visit.hospital, record(item))

    def refund(self, visit: Visit | None) -> None:
        """Part of a closed visit is given back (a test not done, a drug returned).

        A refund sent without an answer is resent as it was, never under a new reference.
        """
        if visit is None:
            return
        if visit.refund is None:
            left = visit.captured_fen - visit.refunded_fen
            amount = max(1, int(left * self.rng.uniform(0.1, 1.0)))
            his_refund_id = self.ref(visit.hospital, "R")
            visit.refund = {"amount_fen": amount, "his_refund_id": his_refund_id, "reason": "退费"}
            visit.refund_key = self.key("refund")
        answer = self.post(
            "refund",
            f"/visits/{visit.visit_id}/refunds",
            self.hospital_key(visit.hospital),
            visit.refund,
            visit.refund_key,
        )
        if answer.status == 0 or answer.status >= 500:
            return
        sent, visit.refund, visit.refund_tries = visit.refund, None, visit.refund_tries + 1
        if answer.status == 201:
            visit.refunded_fen += int(sent["amount_fen"])
            self.note(
                visit,
                "refund",
                str(sent["his_refund_id"]),
                int(sent["amount_fen"]),
                answer.body["refund_id"],
                answer.body.get("created_at"),
            )

    # The bank ---------------------------------------------------------------------------------

    def repay(self) -> None:
        """The patient pays the bank back; the bank tells the hub (part or all of what is owed)."""
        owing = [r for r in self.residents if r.owes and r.line_id]
        if not owing:
            return
        resident = self.rng.choice(owing)
        key = self.config.partners.banks.get(resident.bank_code or "")
        if key is None:
            resident.owes = False
            return
        line = self.get("read_line", f"/credit-lines/{resident.line_id}", key)
        outstanding = int(line.body.get("outstanding_fen") or 0) if line.status == 200 else 0
        if outstanding <= 0:
            resident.owes = resident.blocked = line.status not in (200, 404)
            return
        amount = outstanding if self.rng.random() < 0.6 else self.rng.randint(1, outstanding)
        body = {
            "credit_line_id": resident.line_id,
            "amount_fen": amount,
            "bank_txn_id": self.ref(resident.bank_code or "BANK", "T"),
            "paid_at": dt.datetime.now(SHANGHAI).isoformat(timespec="seconds"),
        }
        answer = self.post("repay", "/repayments", key, body)
        if answer.status == 201:
            resident.owes = int(answer.body.get("outstanding_fen") or 0) > 0
            resident.blocked = resident.blocked and resident.owes
            resident.available_fen = (resident.available_fen or 0) + amount


# The server -----------------------------------------------------------------------------------
