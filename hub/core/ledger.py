"""The double-entry ledger: every movement of money is one balanced entry.

An entry is a set of postings (debits positive, credits negative) that sum to
zero, written in the same transaction as the state change it records. Rows are
never updated; a mistake is corrected by a reversing entry.

The accounts, per party (ids inside the names keep them apart):

    line:{L}:held          credit reserved on line L for hospitals' holds (Dr)
    hospital:{H}:holds     the hospitals' live holds, the other side (Cr)
    line:{L}:debt          the resident of line L owes the bank (Dr)
    payable:{B}:{H}        bank B owes hospital H, until settled (Cr)
    patient:{L}:refund_due bank owes the resident a refund of money repaid (Cr)
    bank:{B}:repaid        repayments bank B has received (Dr)
    bank:{B}:paid_out      what bank B paid hospitals in settlement (Cr)
    insurance:{H}:due      medical insurance owes hospital H its share (Dr)
    hospital:{H}:insured   care hospital H billed to insurance (Cr)
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from functools import cache

from sqlalchemy import TextClause, bindparam, func, select, text
from sqlalchemy.orm import Session

from hub.core.ids import new_id
from models.core.tables import LedgerPosting, UTCDateTime


def line_held(line_id: str) -> str:
    return f"line:{line_id}:held"


def hospital_holds(hospital_id: str) -> str:
    return f"hospital:{hospital_id}:holds"


def line_debt(line_id: str) -> str:
    return f"line:{line_id}:debt"


def payable(bank_id: str, hospital_id: str) -> str:
    return f"payable:{bank_id}:{hospital_id}"


def refund_due(line_id: str) -> str:
    return f"patient:{line_id}:refund_due"


def bank_repaid(bank_id: str) -> str:
    return f"bank:{bank_id}:repaid"


def bank_paid_out(bank_id: str) -> str:
    return f"bank:{bank_id}:paid_out"


def insurance_due(hospital_id: str) -> str:
    return f"insurance:{hospital_id}:due"


def hospital_insured(hospital_id: str) -> str:
    return f"hospital:{hospital_id}:insured"


@cache
def _insert_postings(legs: int) -> TextClause:
    """One INSERT of an entry's `legs` rows, built once per number of legs and as text:
    a statement built per call, a multi-row `.values([...])` (compiled per call) or
    an executemany each cost more than running it on the hot paths (authorizations,
    repayments)."""
    rows = ", ".join(
        f"(:entry_id, :a{n}, :f{n}, :kind, :ref, :created_at)" for n in range(1, legs + 1)
    )
    return text(
        "INSERT INTO ledger_postings (entry_id, account, amount_fen, kind, ref, created_at) "
        f"VALUES {rows}"
    ).bindparams(bindparam("created_at", type_=UTCDateTime()))


class UnbalancedEntry(AssertionError):
    """A programming error: an entry whose postings do not sum to zero."""


def post(
    session: Session, kind: str, ref: str, legs: Iterable[tuple[str, int]], now: datetime
) -> str | None:
    """Write one balanced entry; returns its id (None when every leg is zero)."""
    rows = [(account, amount) for account, amount in legs if amount != 0]
    if not rows:
        return None
    if sum(amount for _, amount in rows) != 0:
        raise UnbalancedEntry(f"{kind} {ref}: postings sum to {sum(a for _, a in rows)}")
    entry_id = new_id("je")
    values: dict[str, object] = {"entry_id": entry_id, "kind": kind, "ref": ref, "created_at": now}
    for n, (account, amount) in enumerate(rows, start=1):
        values[f"a{n}"], values[f"f{n}"] = account, amount
    session.connection().execute(_insert_postings(len(rows)), values)
    return entry_id


def transfer(
    session: Session, kind: str, ref: str, debit: str, credit: str, amount: int, now: datetime
) -> str | None:
    """The common two-leg entry: `amount` from `credit` to `debit`."""
    return post(session, kind, ref, [(debit, amount), (credit, -amount)], now)


def trial_balance(
    session: Session, pending: Iterable[tuple[str, int]] = ()
) -> list[tuple[str, int]]:
    """Every account with its balance (debits positive), by account name.

    `pending` are balanced legs that are true already but not yet posted (holds
    that expired by time alone), added to the accounts they will move.
    """
    totals: dict[str, int] = {}
    rows = session.execute(
        select(LedgerPosting.account, func.sum(LedgerPosting.amount_fen)).group_by(
            LedgerPosting.account
        )
    )
    for account, total in [*rows, *pending]:
        totals[account] = totals.get(account, 0) + int(total)
    return sorted(totals.items())


def balance(session: Session, account: str) -> int:
    total = session.scalar(
        select(func.coalesce(func.sum(LedgerPosting.amount_fen), 0)).where(
            LedgerPosting.account == account
        )
    )
    return int(total or 0)
