"""The banks' desks: a resident repays the bank, and the bank tells the hub."""

from __future__ import annotations

import datetime as dt

from simulators.traffic.people import Resident, pays_today
from simulators.traffic.world import World


def _owed(world: World, resident: Resident, key: str) -> tuple[int, dt.date | None]:
    """What the line owes and its next due date, as the bank reads them from the hub.

    Nothing owed clears the resident's flags; an unreadable line keeps them, to try again.
    """
    line = world.get("read_line", f"/credit-lines/{resident.line_id}", key)
    outstanding = int(line.body.get("outstanding_fen") or 0) if line.status == 200 else 0
    if outstanding <= 0:
        resident.owes = resident.blocked = line.status not in (200, 404)
        return 0, None
    due = line.body.get("next_due_date")
    return outstanding, dt.date.fromisoformat(due) if due else None


def pay(world: World, resident: Resident, key: str, amount: int) -> None:
    """The bank books the resident's payment with the hub."""
    body = {
        "credit_line_id": resident.line_id,
        "amount_fen": amount,
        "bank_txn_id": world.ref(resident.bank_code or "BANK", "T"),
        "paid_at": world.now().isoformat(timespec="seconds"),
    }
    answer = world.post("repay", "/repayments", key, body)
    if answer.status == 201:
        resident.owes = int(answer.body.get("outstanding_fen") or 0) > 0
        resident.blocked = resident.blocked and resident.owes
        resident.available_fen = (resident.available_fen or 0) + amount
        world.tally.repaid_fen += amount


def _bank_key(world: World, resident: Resident) -> str | None:
    key = world.config.partners.banks.get(resident.bank_code or "")
    if key is None:
        resident.owes = False  # a bank this stand-in does not play: not ours to collect
    return key


def repay_some(world: World) -> None:
    """One owing resident pays part or all of what is owed (the real-time walk)."""
    owing = [r for r in world.residents if r.owes and r.line_id]
    if not owing:
        return
    resident = world.rng.choice(owing)
    key = _bank_key(world, resident)
    if key is None:
        return
    outstanding, _due = _owed(world, resident, key)
    if outstanding > 0:
        amount = outstanding if world.rng.random() < 0.6 else world.rng.randint(1, outstanding)
        pay(world, resident, key, amount)


def repay_due(world: World) -> None:
    """Every resident who owes pays it all, when the habit says today (a demo's evening)."""
    today = world.today()
    for resident in [r for r in world.residents if r.owes and r.line_id]:
        key = _bank_key(world, resident)
        if key is None:
            continue
        outstanding, due = _owed(world, resident, key)
        if outstanding > 0 and due is not None and pays_today(resident.habit, today, due):
            pay(world, resident, key, outstanding)
