"""Held credit: the part of a line reserved for hospitals' live holds.

This module is the only code that changes `credit_lines.held_fen` and the only
code that posts to the `line:{id}:held` account. Each function moves the line
and writes the ledger entry in the same call, so the stored balance and the
books cannot drift apart.

Credit is reserved by one conditional UPDATE that succeeds only while the line
is active and has the credit available, so racing requests can never overdraw
a line, on SQLite or PostgreSQL alike; it is released by one that never takes
`held_fen` below zero. The statements are built once: reserving is on the
authorization hot path.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, update
from sqlalchemy.orm import Session

from hub.core import ledger
from hub.core.errors import InsufficientCredit
from hub.medical.lines import LineNotActive, lock_line
from models.core.tables import table_of
from models.medical.tables import CreditLine, LineStatus


class HeldCreditDrift(AssertionError):
    """A programming error: releasing more credit than the line holds."""


@dataclass(frozen=True)
class Released:
    """One hold's credit given back: the hold (the entry's ref), its hospital, the amount."""

    ref: str
    hospital_id: str
    amount_fen: int


_lines = table_of(CreditLine)
_RESERVE = (
    update(_lines)
    .where(
        _lines.c.id == bindparam("line"),
        _lines.c.status == LineStatus.ACTIVE,
        _lines.c.held_fen + _lines.c.outstanding_fen + bindparam("amount") <= _lines.c.limit_fen,
    )
    .values(held_fen=_lines.c.held_fen + bindparam("amount"))
)
# Released credit leaves the line, or becomes what the resident owes (`owed`).
_RELEASE = (
    update(_lines)
    .where(_lines.c.id == bindparam("line"), _lines.c.held_fen >= bindparam("amount"))
    .values(
        held_fen=_lines.c.held_fen - bindparam("amount"),
        outstanding_fen=_lines.c.outstanding_fen + bindparam("owed"),
    )
)


def reserve(
    session: Session,
    *,
    line_id: str,
    hospital_id: str,
    amount_fen: int,
    kind: str,
    ref: str,
    now: datetime,
    make_room: Callable[[], int] | None = None,
) -> None:
    """Hold `amount_fen` of the line's available credit for a hospital, and book it.

    Raises LineNotActive or InsufficientCredit. Only when the first attempt
    fails is `make_room` called (under the line's lock; it returns the credit it
    freed, e.g. by releasing expired holds) and the UPDATE tried once more: the
    stored `held_fen` can only over-count, so a success needs no sweep.
    """
    connection = session.connection()
    for attempt in range(2):
        result: Any = connection.execute(_RESERVE, {"line": line_id, "amount": amount_fen})
        if result.rowcount == 1:
            ledger.transfer(
                session,
                kind,
                ref,
                ledger.line_held(line_id),
                ledger.hospital_holds(hospital_id),
                amount_fen,
                now,
            )
            return
        line = lock_line(session, line_id)
        if line.status != LineStatus.ACTIVE:
            raise LineNotActive(f"credit line {line_id} is {line.status}")
        if attempt == 0 and make_room is not None and make_room() > 0:
            continue
        break
    raise InsufficientCredit(f"not enough available credit on {line_id} for {amount_fen} fen")


def release(
    session: Session, *, line_id: str, holds: Iterable[Released], kind: str, now: datetime
) -> int:
    """Give the credit of holds that ended uncaptured back to the line; returns the total.

    One UPDATE for the line, one entry per hold (its ref is the hold).
    """
    holds = list(holds)
    total = sum(hold.amount_fen for hold in holds)
    if total:
        _move(session, line_id, total, owed=0)
    for hold in holds:
        ledger.transfer(
            session,
            kind,
            hold.ref,
            ledger.hospital_holds(hold.hospital_id),
            ledger.line_held(line_id),
            hold.amount_fen,
            now,
        )
    return total


def capture(
    session: Session,
    *,
    line_id: str,
    bank_id: str,
    hospital_id: str,
    held_fen: int,
    captured_fen: int,
    kind: str,
    ref: str,
    now: datetime,
    other_legs: Iterable[tuple[str, int]] = (),
) -> None:
    """End a hospital's holds on the line: `captured_fen` of `held_fen` becomes owed.

    The resident now owes the bank what was captured, the bank owes the
    hospital as much, and the rest is available again; `other_legs` (balanced
    on their own) go into the same entry.
    """
    if captured_fen > held_fen:
        raise HeldCreditDrift(f"capturing {captured_fen} fen of {held_fen} fen held")
    _move(session, line_id, held_fen, owed=captured_fen)
    ledger.post(
        session,
        kind,
        ref,
        [
            (ledger.hospital_holds(hospital_id), held_fen),
            (ledger.line_held(line_id), -held_fen),
            (ledger.line_debt(line_id), captured_fen),
            (ledger.payable(bank_id, hospital_id), -captured_fen),
            *other_legs,
        ],
        now,
    )


def _move(session: Session, line_id: str, amount: int, owed: int) -> None:
    result: Any = session.connection().execute(
        _RELEASE, {"line": line_id, "amount": amount, "owed": owed}
    )
    if result.rowcount != 1:
        raise HeldCreditDrift(f"credit line {line_id} holds less than {amount} fen")
