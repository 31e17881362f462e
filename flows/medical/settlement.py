"""The settlement flow: close the window (when asked), compute it, pay each line.

Coarse tasks: one to compute every closed window, one per bank to pay its
lines, one to roll the states up. Safe to rerun at any point: a line's intent
is recorded before the bank is asked, under a key derived from the line.
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from datetime import date

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from flows.context import hub_context, runs_as_of
from flows.medical import artifacts
from flows.medical.reconciliation import reconcile
from flows.partners import partner_systems
from hub.core import clock
from hub.core.db import unit_of_work
from hub.core.money import yuan
from hub.medical import settlement, windows
from models.core.partner_errors import PartnerError, PartnerRejected


@task(name="close-window")
def close_window() -> str:
    ctx = hub_context()
    with unit_of_work(ctx.engine) as session:
        return windows.close_window(session, clock.now())


@task(name="compute-windows")
def compute_windows() -> list[str]:
    """Compute every closed window's lines; returns the windows still to pay, oldest first."""
    ctx = hub_context()
    with unit_of_work(ctx.engine) as session:
        for window_id in windows.to_settle(session):
            settlement.compute(session, window_id, ctx.settings.business_timezone, clock.now())
    with unit_of_work(ctx.engine, write=False) as session:
        return windows.to_settle(session)


@task(name="pay-bank")
def pay_bank(bank_code: str, orders: list[settlement.PayoutOrder]) -> dict[str, int]:
    """Instruct one bank to pay each of its lines; counts by outcome."""
    ctx = hub_context()
    bank = partner_systems(ctx.settings).bank_client(bank_code)

    def pay(order: settlement.PayoutOrder) -> str:
        with unit_of_work(ctx.engine) as session:
            settlement.mark_instructed(session, order.line_id, clock.now())
        try:
            payout = bank.pay(
                payout_id=order.payout_id,
                hospital_code=order.hospital_code,
                amount_fen=order.amount_fen,
                value_date=order.value_date,
                idempotency_key=order.payout_id,
            )
        except PartnerRejected as exc:
            with unit_of_work(ctx.engine) as session:
                settlement.fail(session, order.line_id, f"refused: {exc}", clock.now())
            return "failed"
        except PartnerError as exc:
            with unit_of_work(ctx.engine) as session:
                settlement.note_retry(session, order.line_id, type(exc).__name__)
            return "retry_later"
        with unit_of_work(ctx.engine) as session:
            settlement.confirm(session, order.line_id, payout.bank_txn_id, clock.now())
        return "settled"

    with ThreadPoolExecutor(max_workers=8) as pool:
        return dict(Counter(pool.map(pay, orders)))


@task(name="roll-up")
def roll_up(window_id: str) -> dict[str, str]:
    ctx = hub_context()
    with unit_of_work(ctx.engine) as session:
        return settlement.roll_up(session, window_id, clock.now())


@task(name="wait-for-close")
def wait_for_close(window_id: str, seconds: float = 30) -> bool:
    """A run started by the API's close waits (briefly) for that close to commit."""
    ctx = hub_context()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with unit_of_work(ctx.engine, write=False) as session:
            if windows.status_of(session, window_id) != "open":
                return True
        time.sleep(0.5)
    return False


@flow(name="settlement")
@runs_as_of
def settle(
    close: bool = False, window_id: str | None = None, as_of: date | None = None
) -> dict[str, dict[str, int]]:
    """Settle every closed window, oldest first.

    `close`: close the open window first (the daily schedule). `window_id`: the
    window an operator just closed through the API.
    """
    ctx = hub_context()
    if close:
        close_window()
    if window_id is not None:
        wait_for_close(window_id)
    report: dict[str, dict[str, int]] = {}
    for window_id in compute_windows():
        with unit_of_work(ctx.engine, write=False) as session:
            orders = settlement.orders(session, window_id, ctx.settings.business_timezone)
        by_bank: dict[str, list[settlement.PayoutOrder]] = defaultdict(list)
        for order in orders:
            by_bank[order.bank_code].append(order)
        outcome: Counter[str] = Counter()
        for bank_code, bank_orders in sorted(by_bank.items()):
            outcome.update(pay_bank(bank_code, bank_orders))
        roll_up(window_id)
        report[window_id] = dict(outcome)
        _artifacts(window_id)
        reconcile(window_id)  # reconciliation runs after settlement
    return report


def _artifacts(window_id: str) -> None:
    """What an operator reads at a glance: totals per bank and hospital, what failed and why."""
    ctx = hub_context()
    with unit_of_work(ctx.engine, write=False) as session:
        rows = settlement.window_report(session, window_id)
    paid = sum(r["net_fen"] for r in rows if r["status"] == "settled")
    owed = sum(r["net_fen"] for r in rows if r["status"] in ("pending", "instructed"))
    carried = sum(r["net_fen"] for r in rows if r["status"] == "carried")
    per_bank: dict[str, Counter[str]] = defaultdict(Counter)
    for r in rows:
        per_bank[r["bank_code"]][r["status"]] += r["net_fen"]
    banks = "".join(
        f"| {bank} | {yuan(t['settled'])} | {yuan(t['pending'] + t['instructed'])} "
        f"| {yuan(t['failed'])} | {yuan(t['carried'])} |\n"
        for bank, t in sorted(per_bank.items())
    )
    failed = "".join(
        f"- failed: {r['bank_code']} → {r['hospital_code']}: {r['last_error']}\n"
        for r in rows
        if r["status"] == "failed"
    )
    create_markdown_artifact(
        key="settlement-summary",
        markdown=(
            f"## Settlement of window `{window_id}`\n\n"
            f"{len(rows)} lines; paid **{yuan(paid)} yuan**; still to pay "
            f"{yuan(owed)}; carried to the next window {yuan(carried)}\n\n"
            "| bank | paid (yuan) | to pay | failed | carried |\n|---|---:|---:|---:|---:|\n"
            f"{banks}\n{failed}"
        ),
        description=f"settlement of {window_id}",
    )
    create_table_artifact(
        key="settlement-lines",
        table=[artifacts.settlement_line(r) for r in rows],
        description=f"lines of {window_id} (amounts in yuan)",
    )
