"""A visit at a hospital desk: eligibility, the visit, holds raised or voided, the
final bill, refunds — and each capture and refund written in the hospital's own list."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any, Literal

from simulators.hospital_books import TransactionItem, record
from simulators.traffic.bills import (
    DEPARTMENTS,
    HOLDS_PER_VISIT,
    INPATIENT_ITEMS,
    hold_amount,
    log_uniform_fen,
    make_bill,
)
from simulators.traffic.people import Resident
from simulators.traffic.world import Visit, World

log = logging.getLogger("simulators.hospital")


def check(world: World, resident: Resident) -> Visit | None:
    """A patient at a desk asks to pay by credit: the hospital checks eligibility."""
    hospital = world.rng.choice(world.hospitals())
    key = world.hospital_key(hospital)
    answer = world.post(
        "eligibility", "/eligibility-checks", key, {"id_number": resident.id_number}
    )
    if answer.status != 200:
        return None
    if not answer.body.get("eligible"):
        if answer.body.get("reason") == "not_enrolled":
            world.residents.remove(resident)
        else:
            resident.owes = resident.blocked = True  # the bank's desk collects first
            world.tally.turned_away += 1
        return None
    resident.line_id = answer.body["credit_line_id"]
    resident.available_fen = answer.body["available_fen"]
    if resident.bank_code is None:
        line = world.get("read_line", f"/credit-lines/{resident.line_id}", key)
        resident.bank_code = line.body.get("bank_code")
    kind = "outpatient" if world.rng.random() < 0.85 else "inpatient"
    low, high = HOLDS_PER_VISIT[kind]
    resident.in_visit = True
    visit = Visit(
        resident,
        hospital,
        kind,
        world.ref(hospital, "V"),
        world.rng.choice(DEPARTMENTS),
        planned_holds=world.rng.randint(low, high),
    )
    world.visits.append(visit)
    return visit


def end_visit(world: World, visit: Visit) -> None:
    visit.resident.in_visit = False
    world.visits.remove(visit)


def open_visit(world: World, visit: Visit) -> None:
    body = {
        "credit_line_id": visit.resident.line_id,
        "his_visit_id": visit.his_visit_id,
        "kind": visit.kind,
        "department": visit.department,
    }
    answer = world.post("open_visit", "/visits", world.hospital_key(visit.hospital), body)
    if answer.status == 201:
        visit.visit_id = answer.body["visit_id"]
        world.tally.visits += 1
    elif answer.status < 500 and answer.status != 0:
        end_visit(world, visit)


def hold(world: World, visit: Visit) -> None:
    """A charge is ordered (a test, a drug, a deposit): hold it against the line."""
    resident = visit.resident
    amount = hold_amount(world.rng, visit.kind, resident.available_fen)
    body = {
        "amount_fen": amount,
        "his_order_id": world.ref(visit.hospital, "O"),
        "description": world.rng.choice(INPATIENT_ITEMS)[1],
    }
    answer = world.post(
        "hold",
        f"/visits/{visit.visit_id}/authorizations",
        world.hospital_key(visit.hospital),
        body,
    )
    if answer.status == 201:
        visit.holds[answer.body["authorization_id"]] = amount
        resident.available_fen = max(0, (resident.available_fen or 0) - amount)
    elif answer.status in (402, 409):  # no more credit, or the line stopped: bill what is held
        resident.available_fen = 0 if answer.status == 402 else resident.available_fen
        visit.planned_holds = len(visit.holds)


def raise_hold(world: World, visit: Visit) -> None:
    """More of the same (a longer stay, another dose): raise a hold."""
    authorization = world.rng.choice(sorted(visit.holds))
    amount = log_uniform_fen(world.rng, 1_000, 50_000)
    answer = world.post(
        "raise",
        f"/authorizations/{authorization}/increments",
        world.hospital_key(visit.hospital),
        {"amount_fen": amount},
    )
    if answer.status == 200:
        visit.holds[authorization] = int(answer.body["amount_fen"])
    elif answer.status == 409:
        visit.holds.pop(authorization, None)  # expired or no longer held


def void(world: World, visit: Visit) -> None:
    """An order is cancelled: release its hold."""
    authorization = world.rng.choice(sorted(visit.holds))
    answer = world.post(
        "void", f"/authorizations/{authorization}/void", world.hospital_key(visit.hospital), {}
    )
    if answer.status in (200, 409):
        visit.holds.pop(authorization, None)


def leave(world: World, visit: Visit) -> None:
    """The patient leaves without a bill: the holds expire by themselves."""
    end_visit(world, visit)
    world.tally.left_open += 1


def close(world: World, visit: Visit, may_exceed: bool = True) -> None:
    """Discharge: the final bill. A bill sent without an answer is resent as it was."""
    if visit.bill is None:
        held = sum(visit.holds.values())
        bill_id = world.ref(visit.hospital, "B")
        visit.bill = make_bill(world.rng, bill_id, visit.kind, held, may_exceed)
        visit.bill_key = world.key("close")
    answer = world.post(
        "close",
        f"/visits/{visit.visit_id}/close",
        world.hospital_key(visit.hospital),
        visit.bill,
        visit.bill_key,
    )
    if answer.status == 200:
        closed_visit(world, visit, answer.body)
    elif answer.status == 402 and may_exceed:  # over the credit: bill within the holds
        visit.bill = None
        close(world, visit, may_exceed=False)
    elif answer.status == 402:  # the holds expired meanwhile: the patient pays at the desk
        end_visit(world, visit)
    elif answer.status == 409:
        sync_visit(world, visit)
    elif answer.status == 422 or answer.status == 404:
        log.warning("hospital simulator: a bill was refused (%s)", answer.status)
        end_visit(world, visit)


def sync_visit(world: World, visit: Visit) -> None:
    """The hub says the visit is closed: learn how (an earlier close's answer was lost)."""
    answer = world.get(
        "read_visit", f"/visits/{visit.visit_id}", world.hospital_key(visit.hospital)
    )
    if answer.status == 200 and answer.body.get("status") == "closed":
        closed_visit(world, visit, answer.body)
    elif answer.status in (200, 404):
        visit.bill = None


def closed_visit(world: World, visit: Visit, body: dict[str, Any]) -> None:
    """Record the capture in the hospital's list, as the HIS saw the answer."""
    end_visit(world, visit)
    visit.captured_fen = int(body.get("captured_fen") or 0)
    if visit.captured_fen <= 0:
        return
    visit.resident.owes = True
    world.tally.captured_fen += visit.captured_fen
    bill_id = (body.get("bill") or {}).get("his_bill_id") or (visit.bill or {})["his_bill_id"]
    note(
        world,
        visit,
        "capture",
        bill_id,
        visit.captured_fen,
        body["visit_id"],
        body.get("closed_at"),
    )
    world.closed = [*world.closed[-199:], visit]


def refund(world: World, visit: Visit) -> None:
    """Part of a closed visit is given back (a test not done, a drug returned).

    A refund sent without an answer is resent as it was, never under a new reference.
    """
    if visit.refund is None:
        left = visit.captured_fen - visit.refunded_fen
        amount = max(1, int(left * world.rng.uniform(0.1, 1.0)))
        his_refund_id = world.ref(visit.hospital, "R")
        visit.refund = {"amount_fen": amount, "his_refund_id": his_refund_id, "reason": "退费"}
        visit.refund_key = world.key("refund")
    answer = world.post(
        "refund",
        f"/visits/{visit.visit_id}/refunds",
        world.hospital_key(visit.hospital),
        visit.refund,
        visit.refund_key,
    )
    if answer.status == 0 or answer.status >= 500:
        return
    sent, visit.refund, visit.refund_tries = visit.refund, None, visit.refund_tries + 1
    if answer.status == 201:
        amount = int(sent["amount_fen"])
        visit.refunded_fen += amount
        world.tally.refunded_fen += amount
        refund_id, at = answer.body["refund_id"], answer.body.get("created_at")
        note(world, visit, "refund", str(sent["his_refund_id"]), amount, refund_id, at)


def refundable(world: World) -> Visit | None:
    """A recently closed visit not yet refunded, if any."""
    candidates = [v for v in world.closed[-50:] if v.refund_tries == 0]
    return world.rng.choice(candidates) if candidates else None


def note(
    world: World,
    visit: Visit,
    kind: Literal["capture", "refund"],
    ref: str,
    amount: int,
    hub_id: str,
    at: str | None,
) -> None:
    """One line in the hospital's list; the time is the hub's, so the dates agree."""
    moment = dt.datetime.fromisoformat(at) if at else world.now()
    item = TransactionItem(
        ref=ref,
        kind=kind,
        amount_fen=amount,
        visit_id=visit.visit_id or "",
        hub_id=hub_id,
        at=moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC),
        his_visit_id=visit.his_visit_id,
    )
    world.book.add(visit.hospital, record(item))
