"""The books against the business: each ledger account checked against the rows it stands for.

`ledger.post` refuses an entry that does not balance (and PostgreSQL refuses one
at commit), so a trial balance totalling 0 proves nothing about the flows. These
checks work out what each account must hold from the business rows — lines with
their holds and debts, visits, refunds, repayments, settlement lines — and report
where the ledger, or a line's stored balance, says otherwise: a flow that moves a
row without booking it, books the wrong amount or party, or nets a settlement
wrongly shows up here. An empty list means the books agree.

Stored figures are compared: a hold past its expiry counts until it is swept, in
the line and in the ledger alike. What each account holds (debits positive):

    line:{L}:held           the line's held_fen = its holds still `held`
    hospital:{H}:holds      - the hospital's holds still `held`
    line:{L}:debt           the line's outstanding_fen = its debts' unpaid parts
    payable:{B}:{H}         - (captured - refunded - paid in settlement) for the pair;
                            equally - (captured - refunded in windows not yet netted
                            + positive nets not yet paid + negative nets carried on)
    bank:{B}:paid_out       - the bank's settled nets
    bank:{B}:repaid         the bank's repayments
    patient:{L}:refund_due  - refunds of the line's visits returned to the patient
    insurance:{H}:due       the insurance share of the hospital's closed bills
    hospital:{H}:insured    - the same
"""

from __future__ import annotations

import re
from collections import defaultdict
from typing import Any

from sqlalchemy import exists, func, select
from sqlalchemy.orm import Session

from hub.core import ledger
from hub.core.books import UNEXPLAINED, Discrepancy
from models.medical.tables import (
    Authorization,
    CreditLine,
    Debt,
    Refund,
    Repayment,
    SettlementLine,
    SettlementWindow,
    Visit,
)

Expected = dict[str, tuple[int, str]]  # account -> (balance, the rule it follows)

# The account families, as `hub.core.ledger` names them; ids hold no colon.
_FAMILIES = {
    "lines": re.compile(r"line:[^:]+:(held|debt)|hospital:[^:]+:holds"),
    "payables": re.compile(r"payable:[^:]+:[^:]+|bank:[^:]+:paid_out"),
    "repayments": re.compile(r"bank:[^:]+:repaid|patient:[^:]+:refund_due"),
    "insurance": re.compile(r"insurance:[^:]+:due|hospital:[^:]+:insured"),
}


def discrepancies(session: Session) -> list[Discrepancy]:
    """The medical checks, and every account they do not explain (alone, the
    programme's books; `hub.books` checks both programmes)."""
    balances = _balances(session)
    return [*checks(session, balances), *_unexplained(balances)]


def checks(session: Session, balances: dict[str, int] | None = None) -> list[Discrepancy]:
    """Every check of the medical accounts; empty when they agree with the business."""
    balances = _or_all(session, balances)
    return [
        *line_discrepancies(session, balances),
        *payable_discrepancies(session, balances),
        *repayment_discrepancies(session, balances),
        *insurance_discrepancies(session, balances),
    ]


def explains(account: str) -> bool:
    """Whether one of these checks stands behind `account`."""
    return any(family.fullmatch(account) for family in _FAMILIES.values())


def balances(session: Session) -> dict[str, int]:
    """Every account's stored balance (expired holds not yet swept still count)."""
    return _balances(session)


def line_discrepancies(
    session: Session, balances: dict[str, int] | None = None
) -> list[Discrepancy]:
    """Each line's held and debt accounts against the line, and the line against its
    holds and debts; each hospital's holds account against its holds."""
    held = _sums(
        session,
        select(Authorization.credit_line_id, func.sum(Authorization.amount_fen))
        .where(Authorization.status == "held")
        .group_by(Authorization.credit_line_id),
    )
    unpaid = _sums(
        session,
        select(
            Debt.credit_line_id, func.sum(Debt.amount_fen - Debt.paid_fen - Debt.reduced_fen)
        ).group_by(Debt.credit_line_id),
    )
    found: list[Discrepancy] = []
    expected: Expected = {}
    for line_id, held_fen, outstanding_fen in session.execute(
        select(CreditLine.id, CreditLine.held_fen, CreditLine.outstanding_fen)
    ):
        expected[ledger.line_held(line_id)] = (held_fen, "the line's held_fen")
        expected[ledger.line_debt(line_id)] = (outstanding_fen, "the line's outstanding_fen")
        rules = [
            ("held_fen", held_fen, held.get(line_id, 0), "the sum of its holds still held"),
            ("outstanding_fen", outstanding_fen, unpaid.get(line_id, 0), "its debts' unpaid sum"),
        ]
        found += [
            Discrepancy(f"credit_lines[{line_id}].{column}", stored, want, rule)
            for column, stored, want, rule in rules
            if stored != want
        ]
    hospitals = session.execute(
        select(Authorization.hospital_id, func.sum(Authorization.amount_fen))
        .where(Authorization.status == "held")
        .group_by(Authorization.hospital_id)
    )
    for hospital_id, amount in hospitals:
        expected[ledger.hospital_holds(hospital_id)] = (-int(amount), "- its holds still held")
    return found + _compare("lines", _or_all(session, balances), expected)


def payable_discrepancies(
    session: Session, balances: dict[str, int] | None = None
) -> list[Discrepancy]:
    """Each bank's payable to each hospital against captures, refunds and settlement,
    worked out twice: from what was paid, and from what settlement still has to do."""
    balances = _or_all(session, balances)
    captured = _pair_sums(session, Visit, Visit.captured_fen)
    refunded = _pair_sums(session, Refund, Refund.amount_fen)
    settled = _lines_by_pair(session, SettlementLine.status == "settled")
    owed_by_rows: Expected = {}
    for pair in set(captured) | set(refunded) | set(settled):
        owed = captured.get(pair, 0) - refunded.get(pair, 0) - settled.get(pair, 0)
        owed_by_rows[ledger.payable(*pair)] = (-owed, "-(captured - refunded - paid out)")
    paid_out: dict[str, int] = defaultdict(int)
    for (bank_id, _), amount in settled.items():
        paid_out[bank_id] += amount
    for bank_id, amount in paid_out.items():
        owed_by_rows[ledger.bank_paid_out(bank_id)] = (-amount, "- its settled nets")
    found = _compare("payables", balances, owed_by_rows)
    owed_by_settlement = {
        ledger.payable(*pair): (-owed, "-(not yet netted + nets unpaid + negatives carried)")
        for pair, owed in _still_owed(session).items()
    }
    payables = {a: b for a, b in balances.items() if a.startswith("payable:")}
    return found + _compare("payables", payables, owed_by_settlement)


def _still_owed(session: Session) -> dict[tuple[str, str], int]:
    """What each bank owes each hospital by settlement's state: movements in windows
    not netted yet, positive nets not paid, and the negative nets carried to a
    window not netted yet."""
    not_netted = SettlementWindow.status.in_(("open", "closed"))
    captured = _pair_sums(
        session,
        Visit,
        Visit.captured_fen,
        Visit.settlement_window_id.in_(select(SettlementWindow.id).where(not_netted)),
    )
    refunded = _pair_sums(
        session,
        Refund,
        Refund.amount_fen,
        Refund.settlement_window_id.in_(select(SettlementWindow.id).where(not_netted)),
    )
    unpaid = _lines_by_pair(session, SettlementLine.status.in_(("pending", "instructed", "failed")))
    netted_after = exists().where(
        SettlementWindow.previous_window_id == SettlementLine.window_id,
        SettlementWindow.status.in_(("computed", "settled")),
    )
    carried = _lines_by_pair(
        session, SettlementLine.status == "carried", SettlementLine.net_fen < 0, ~netted_after
    )
    owed: dict[tuple[str, str], int] = defaultdict(int)
    for sums, sign in ((captured, 1), (refunded, -1), (unpaid, 1), (carried, 1)):
        for pair, amount in sums.items():
            owed[pair] += sign * amount
    return owed


def repayment_discrepancies(
    session: Session, balances: dict[str, int] | None = None
) -> list[Discrepancy]:
    """What banks were repaid, and what they owe patients back after refunds."""
    expected: Expected = {}
    for bank_id, amount in _sums(
        session,
        select(Repayment.bank_id, func.sum(Repayment.amount_fen)).group_by(Repayment.bank_id),
    ).items():
        expected[ledger.bank_repaid(bank_id)] = (amount, "its repayments")
    for line_id, amount in _sums(
        session,
        select(Visit.credit_line_id, func.sum(Refund.returned_to_patient_fen))
        .join(Visit, Visit.id == Refund.visit_id)
        .group_by(Visit.credit_line_id),
    ).items():
        expected[ledger.refund_due(line_id)] = (-amount, "- refunds returned to the patient")
    return _compare("repayments", _or_all(session, balances), expected)


def insurance_discrepancies(
    session: Session, balances: dict[str, int] | None = None
) -> list[Discrepancy]:
    """What insurance owes each hospital: the insurance share of its closed bills."""
    expected: Expected = {}
    for hospital_id, amount in _sums(
        session,
        select(Visit.hospital_id, func.sum(Visit.insurance_fen))
        .where(Visit.status == "closed")
        .group_by(Visit.hospital_id),
    ).items():
        expected[ledger.insurance_due(hospital_id)] = (amount, "insurance of its closed bills")
        expected[ledger.hospital_insured(hospital_id)] = (-amount, "- the same")
    return _compare("insurance", _or_all(session, balances), expected)


def _unexplained(balances: dict[str, int]) -> list[Discrepancy]:
    """Accounts no check explains: a posting to a misnamed account."""
    return [
        Discrepancy(account, amount, 0, UNEXPLAINED)
        for account, amount in sorted(balances.items())
        if not explains(account)
    ]


def _compare(family: str, balances: dict[str, int], expected: Expected) -> list[Discrepancy]:
    """Accounts of the family whose balance is not the expected one (0 when no row
    names the account)."""
    pattern = _FAMILIES[family]
    mine = {a for a in balances if pattern.fullmatch(a)} | set(expected)
    found = []
    for account in sorted(mine):
        want, rule = expected.get(account, (0, "no row stands behind this account"))
        if balances.get(account, 0) != want:
            found.append(Discrepancy(account, balances.get(account, 0), want, rule))
    return found


def _balances(session: Session) -> dict[str, int]:
    """Every account's stored balance (expired holds not yet swept still count)."""
    return dict(ledger.trial_balance(session))


def _or_all(session: Session, balances: dict[str, int] | None) -> dict[str, int]:
    return _balances(session) if balances is None else balances


def _sums(session: Session, query: Any) -> dict[Any, int]:
    return {key: int(total or 0) for key, total in session.execute(query)}


def _pair_sums(
    session: Session, model: Any, amount: Any, *where: Any
) -> dict[tuple[str, str], int]:
    """An amount summed per bank and hospital (visits and refunds carry both)."""
    rows = session.execute(
        select(model.bank_id, model.hospital_id, func.sum(amount))
        .where(*where)
        .group_by(model.bank_id, model.hospital_id)
    )
    return {(bank_id, hospital_id): int(total or 0) for bank_id, hospital_id, total in rows}


def _lines_by_pair(session: Session, *where: Any) -> dict[tuple[str, str], int]:
    return _pair_sums(session, SettlementLine, SettlementLine.net_fen, *where)
