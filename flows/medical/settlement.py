"""The settlement flow: close the window (when asked), compute it, pay each line.

Coarse tasks: one to compute every closed window, one per bank to pay its
lines (several banks at once, each paying several lines at once), one to roll
the states up. Safe to rerun at any point: a line's intent is recorded before
the bank is asked, under a key derived from the line.
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from datetime import date

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.futures import wait
from prefect.task_runners import ThreadPoolTaskRunner

from flows.as_of import runs_as_of
from flows.medical import artifacts
from flows.medical.reconciliation import reconcile
from flows.partners import partner_systems
from hub.context import hub_context
from hub.core.money import yuan
from hub.medical import settlement_run
from hub.medical.settlement import PayoutOrder

# Banks paid at once, and lines at once per bank: 32 payouts in flight at most,
# within a process's 40 database connections, and few enough task runs at once
# for the Prefect server.
BANKS_AT_ONCE, LINES_AT_ONCE = 4, 8


@task(name="close-window")
def close_window() -> str:
    return settlement_run.close_window(hub_context())


@task(name="compute-windows")
def compute_windows() -> list[str]:
    """Compute every closed window's lines; returns the windows still to pay, oldest first."""
    return settlement_run.compute_closed(hub_context())


@task(name="pay-bank")
def pay_bank(bank_code: str, orders: list[PayoutOrder]) -> dict[str, int]:
    """Instruct one bank to pay each of its lines, several at once; counts by outcome."""
    ctx = hub_context()
    bank = partner_systems(ctx.settings).bank_client(bank_code)

    def pay(order: PayoutOrder) -> str:
        return settlement_run.pay(ctx, bank, order)

    with ThreadPoolExecutor(max_workers=LINES_AT_ONCE) as pool:
        return dict(Counter(pool.map(pay, orders)))


@task(name="roll-up")
def roll_up(window_id: str) -> dict[str, str]:
    return settlement_run.roll_up(hub_context(), window_id)


@task(name="wait-for-close")
def wait_for_close(window_id: str, seconds: float = 30) -> bool:
    """A run started by the API's close waits (briefly) for that close to commit."""
    ctx = hub_context()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if settlement_run.window_status(ctx, window_id) != "open":
            return True
        time.sleep(0.5)
    return False


@flow(
    name="settlement",
    task_runner=ThreadPoolTaskRunner(max_workers=BANKS_AT_ONCE),  # type: ignore[arg-type]  # Prefect's own generics
)
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
        by_bank: dict[str, list[PayoutOrder]] = defaultdict(list)
        for order in settlement_run.orders(ctx, window_id):
            by_bank[order.bank_code].append(order)
        paying = [pay_bank.submit(code, orders) for code, orders in sorted(by_bank.items())]
        wait(paying)  # every bank's task ends before one's failure ends the run
        outcome: Counter[str] = Counter()
        for paid in paying:
            outcome.update(paid.result())
        roll_up(window_id)
        report[window_id] = dict(outcome)
        _artifacts(window_id)
        reconcile(window_id)  # reconciliation runs after settlement
    return report


def _artifacts(window_id: str) -> None:
    """What an operator reads at a glance: totals per bank and hospital, what failed and why."""
    rows = settlement_run.window_report(hub_context(), window_id)
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
