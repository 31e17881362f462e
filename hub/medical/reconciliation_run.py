"""Reconciling a window, as the reconciliation flow runs it: use cases over
`reconciliation`, each fetch from a partner outside any transaction.

A hospital's transaction list or a bank's statement is fetched first, through
a port; the comparison and the differences it finds are then recorded in one
transaction. A partner that cannot be reached is reported, and tried again on
the next run.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy import func, select

from hub.core import clock
from hub.core.db import unit_of_work
from hub.medical import reconciliation
from models.core.partner_errors import PartnerError
from models.medical.partner_records import HospitalTransactions, Statement
from models.medical.tables import Mismatch, SettlementLine, SettlementWindow

if TYPE_CHECKING:
    from hub.context import HubContext


class HospitalList(Protocol):
    """A hospital's own system: what it recorded as captured and refunded on a date."""

    def transactions(self, hospital_code: str, date: dt.date) -> HospitalTransactions: ...


class BankStatements(Protocol):
    """A bank's statement of one value date."""

    def statement(self, date: dt.date) -> Statement: ...


class Counterparties(Protocol):
    """Where the hospitals' lists and the banks' statements come from, by partner code
    (raising PartnerError when a partner's system is unknown or down)."""

    def hospital_client(self, code: str) -> HospitalList: ...

    def bank_client(self, code: str) -> BankStatements: ...


@dataclass(frozen=True)
class Party:
    """A hospital or bank with anything in the window, as reconciliation needs it."""

    partner_id: str
    code: str


def latest_window(ctx: HubContext) -> str | None:
    """The latest window with anything settled in it (computed or settled)."""
    with unit_of_work(ctx.engine, write=False) as session:
        return session.scalar(
            select(SettlementWindow.id)
            .where(
                SettlementWindow.status.in_(("computed", "settled")),
                SettlementWindow.id.in_(select(SettlementLine.window_id)),
            )
            .order_by(SettlementWindow.closed_at.desc(), SettlementWindow.id.desc())
            .limit(1)
        )


def hospitals_of(ctx: HubContext, window_id: str) -> tuple[list[Party], list[dt.date]]:
    """The window's hospitals, and the business dates their lists are asked for."""
    with unit_of_work(ctx.engine, write=False) as session:
        hospitals, _ = reconciliation.parties(session, window_id)
        dates = reconciliation.window_dates(session, window_id, ctx.settings.business_timezone)
        return [Party(h.id, h.code) for h in hospitals], dates


def banks_of(ctx: HubContext, window_id: str) -> tuple[list[Party], dt.date]:
    """The window's banks, and the value date of the statements asked for."""
    with unit_of_work(ctx.engine, write=False) as session:
        _, banks = reconciliation.parties(session, window_id)
        dates = reconciliation.window_dates(session, window_id, ctx.settings.business_timezone)
        return [Party(b.id, b.code) for b in banks], dates[-1]


def check_hospital(
    ctx: HubContext,
    partners: Counterparties,
    window_id: str,
    hospital: Party,
    dates: list[dt.date],
) -> str:
    """The hospital's list against the hub's books; what was found, in a few words."""
    try:
        client = partners.hospital_client(hospital.code)
        listed = [
            ((i.kind, i.ref), i.amount_fen)
            for d in dates
            for i in client.transactions(hospital.code, d).items
        ]
    except PartnerError as exc:
        return f"unreachable: {type(exc).__name__}"
    with unit_of_work(ctx.engine) as session:
        books = reconciliation.hospital_books(session, window_id, hospital.partner_id)
        strangers = {key for key, _ in listed if key not in books}
        elsewhere = reconciliation.hospital_refs_elsewhere(
            session, window_id, hospital.partner_id, strangers
        )
        found = reconciliation.compare(books, listed, elsewhere)
        reconciliation.record(session, window_id, f"hospital:{hospital.code}", found, clock.now())
    return f"{len(found)} differences"


def check_bank(
    ctx: HubContext,
    partners: Counterparties,
    window_id: str,
    bank: Party,
    value_date: dt.date,
) -> str:
    """The bank's statement against the payouts the hub recorded; what was found."""
    try:
        statement = partners.bank_client(bank.code).statement(value_date)
    except PartnerError as exc:
        return f"unreachable: {type(exc).__name__}"
    listed = [(("payout", i.payout_id), i.amount_fen) for i in statement.items]
    with unit_of_work(ctx.engine) as session:
        books = reconciliation.bank_books(session, window_id, bank.partner_id)
        strangers = {key for key, _ in listed if key not in books}
        elsewhere = reconciliation.bank_refs_elsewhere(session, window_id, strangers)
        found = reconciliation.compare(books, listed, elsewhere)
        reconciliation.record(session, window_id, f"bank:{bank.code}", found, clock.now())
    return f"{len(found)} differences"


def window_mismatches(ctx: HubContext, window_id: str) -> list[dict[str, Any]]:
    """Every mismatch found in the window, open or resolved."""
    with unit_of_work(ctx.engine, write=False) as session:
        return [
            reconciliation.mismatch_view(m)
            for m in session.scalars(select(Mismatch).where(Mismatch.window_id == window_id))
        ]


def mismatches(ctx: HubContext, status: str = "open") -> list[dict[str, Any]]:
    """The mismatches in this state, newest first (for operators)."""
    with unit_of_work(ctx.engine, write=False) as session:
        return [
            reconciliation.mismatch_view(m)
            for m in session.scalars(reconciliation.open_mismatches(status))
        ]


def count(ctx: HubContext, status: str = "open") -> int:
    """How many mismatches are in this state."""
    found = reconciliation.open_mismatches(status).subquery()
    with unit_of_work(ctx.engine, write=False) as session:
        return int(session.scalar(select(func.count()).select_from(found)) or 0)


def resolve(ctx: HubContext, mismatch_id: str, note: str) -> dict[str, Any]:
    """Mark a mismatch resolved with a note of what was done; the mismatch as it is now."""
    with unit_of_work(ctx.engine) as session:
        return reconciliation.mismatch_view(
            reconciliation.resolve(session, mismatch_id, note, clock.now())
        )
