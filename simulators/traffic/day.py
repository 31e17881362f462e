"""Step by step (`credithub demo`): the parts of a simulated day the demo asks for,
each at the instant it names — morning sign-ups, learning the decisions, patients
treated from arrival to bill, the banks' evening repayments; firms' loan
applications, the banks' loan desks and the firms' repayments."""

from __future__ import annotations

from collections.abc import Callable

from simulators.traffic import care, enrolment, lending, repayments
from simulators.traffic.people import Resident
from simulators.traffic.world import World


def enrolments(world: World, count: int) -> None:
    """Residents sign up at hospital desks."""
    for _ in range(count):
        enrolment.enrol(world)


def decisions(world: World, _count: int = 0) -> None:
    """Each enrolling hospital reads how its pending enrolments were decided."""
    for resident in [r for r in world.residents if r.status == "pending"]:
        enrolment.poll(world, resident)


def visits(world: World, count: int) -> None:
    """Patients treated start to end, each an enrolled resident at a random hospital."""
    for _ in range(count):
        patients = [r for r in world.residents if r.status == "enrolled" and not r.in_visit]
        if patients:
            treat(world, world.rng.choice(patients))


def treat(world: World, resident: Resident) -> None:
    """Eligibility, the visit, its holds (one raised or voided now and then), the bill,
    maybe a refund; now and then the patient leaves and the holds expire instead."""
    rng = world.rng
    visit = care.check(world, resident)
    if visit is None:
        return
    care.open_visit(world, visit)
    if visit.visit_id is None:
        if visit in world.visits:
            care.end_visit(world, visit)
        return
    for _ in range(visit.planned_holds):  # a refused hold lowers the plan to what is held
        if len(visit.holds) >= visit.planned_holds:
            break
        care.hold(world, visit)
    if visit.holds and rng.random() < 0.1:
        care.raise_hold(world, visit)
    if len(visit.holds) > 1 and rng.random() < 0.15:
        care.void(world, visit)
    if visit.holds and rng.random() < 0.05:
        care.leave(world, visit)
        return
    care.close(world, visit)
    if visit in world.visits:  # no answer: the same bill again, under the same key
        care.close(world, visit)
    if visit.captured_fen > 0 and rng.random() < 0.12:
        care.refund(world, visit)


def repayments_due(world: World, _count: int = 0) -> None:
    """The banks' evening: every resident who owes repays, when the habit says today."""
    repayments.repay_due(world)


def loan_applications(world: World, count: int) -> None:
    """Firms apply through the channel (the banks' desks publish their products first)."""
    lending.publish_products(world)
    for _ in range(count):
        lending.apply(world)


def lending_desks(world: World, _count: int = 0) -> None:
    """The banks answer what was offered to them, the channel takes offers, the banks
    pay the loans out."""
    lending.answer_open(world)
    lending.take_offers(world)
    lending.pay_out(world)


def loan_repayments(world: World, _count: int = 0) -> None:
    """Firms repay what their habit says is due today; banks claim on defaulted loans."""
    lending.repay_due(world)
    world.firms = [f for f in world.firms if f.status != "done"]


STEPS: dict[str, Callable[[World, int], None]] = {
    "enrolments": enrolments,
    "decisions": decisions,
    "visits": visits,
    "repayments": repayments_due,
    "loan_applications": loan_applications,
    "lending": lending_desks,
    "loan_repayments": loan_repayments,
}
