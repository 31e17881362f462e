"""Real time (`credithub up`): what happens next is one action, chosen by weight
among those the desks' state allows, so visits interleave as they do at a hospital."""

from __future__ import annotations

import time
from collections.abc import Callable

from simulators.traffic import care, enrolment, lending, repayments
from simulators.traffic.world import World


def one_action(world: World, poll_every_s: float) -> None:
    """Poll an enrolment that is due, else one weighted action."""
    now = time.monotonic()
    due = [
        r for r in world.residents if r.status == "pending" and now - r.polled_at >= poll_every_s
    ]
    if due:
        enrolment.poll(world, due[0])
        return
    rng = world.rng
    active = [r for r in world.residents if r.status in ("pending", "enrolled")]
    free = [r for r in active if r.status == "enrolled" and not r.in_visit and not r.blocked]
    checked = [v for v in world.visits if v.visit_id is None]
    opened = [v for v in world.visits if v.visit_id is not None]
    refundable = care.refundable(world)
    options: list[tuple[float, Callable[[], object]]] = [
        (3.0 if len(active) < 8 else 0.3, lambda: enrolment.enrol(world)),
        (2.0 if free else 0.0, lambda: care.check(world, rng.choice(free))),
        (3.0 if checked else 0.0, lambda: care.open_visit(world, rng.choice(checked))),
        (1.0 if any(r.owes for r in active) else 0.0, lambda: repayments.repay_some(world)),
        (
            0.4 if refundable else 0.0,
            lambda: care.refund(world, refundable) if refundable else None,
        ),
        *_lending_options(world),
    ]
    if opened:
        visit = rng.choice(opened)
        wants_more = len(visit.holds) < visit.planned_holds
        options += [
            (4.0 if wants_more else 0.0, lambda: care.hold(world, visit)),
            (0.4 if visit.holds else 0.0, lambda: care.raise_hold(world, visit)),
            (0.25 if len(visit.holds) > 1 else 0.0, lambda: care.void(world, visit)),
            (0.3 if wants_more else 4.0, lambda: care.close(world, visit)),
        ]
    rng.choices([a for _, a in options], weights=[w for w, _ in options])[0]()


def _lending_options(world: World) -> list[tuple[float, Callable[[], object]]]:
    """Firms apply now and then; the desks and the channel move loans along."""
    if not world.config.partners.channels:
        return []
    in_progress = [f for f in world.firms if f.status in ("applied", "borrowing")]
    moving = any(f.status == "applied" or not f.disbursed for f in in_progress)
    borrowing = any(f.status == "borrowing" and f.disbursed for f in in_progress)

    def apply() -> None:
        lending.publish_products(world)
        lending.apply(world)

    def desks() -> None:
        lending.answer_open(world)
        lending.take_offers(world)
        lending.pay_out(world)
        world.firms = [f for f in world.firms if f.status != "done"]

    return [
        (0.5 if len(in_progress) < 6 else 0.05, apply),
        (0.8 if moving else 0.0, desks),
        (0.3 if borrowing else 0.0, lambda: lending.repay_due(world, only_one=True)),
    ]
