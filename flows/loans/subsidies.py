"""The loan-subsidies flow (免申即享): on the 1st of each month, grant the previous
business month's interest subsidies and tell each bank to pay its firms.

Coarse tasks: one grants the month (recorded and committed before any bank is
asked), one per bank instructs its subsidies under `subsidy:<subsidy id>`.
Safe to rerun at any point: nothing is granted twice, and only what is not yet
instructed is asked for again. The artifacts show the month's subsidies and
the risk-compensation fund, amounts in yuan.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from typing import Any

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact

from flows.as_of import runs_as_of
from flows.partners import partner_systems
from hub.context import hub_context
from hub.core.money import yuan
from hub.loans import fund_views, subsidies
from hub.loans.subsidies import Month, Order


@task(name="grant-subsidies")
def grant(month: Month) -> int:
    return subsidies.grant(hub_context(), month)


@task(name="instruct-bank")
def instruct_bank(bank_code: str, orders: list[Order]) -> dict[str, int]:
    """Tell one bank to pay each of its subsidies, several at once; counts by outcome."""
    ctx = hub_context()
    bank = partner_systems(ctx.settings).bank_client(bank_code)
    with ThreadPoolExecutor(max_workers=8) as pool:
        return dict(Counter(pool.map(lambda o: subsidies.instruct(ctx, bank, o), orders)))


@flow(name="loan-subsidies")
@runs_as_of
def grant_subsidies(as_of: date | None = None) -> dict[str, Any]:
    """Grant the previous business month's subsidies (as of the hub clock's date) and
    instruct the banks, then leave the month's and the fund's artifacts."""
    ctx = hub_context()
    month = subsidies.previous_month(subsidies.today(ctx))
    granted = grant(month)
    by_bank: dict[str, list[Order]] = defaultdict(list)
    for order in subsidies.to_instruct(ctx):
        by_bank[order.bank_code].append(order)
    outcome: Counter[str] = Counter()
    for bank_code, orders in sorted(by_bank.items()):
        outcome.update(instruct_bank(bank_code, orders))
    _subsidy_artifact(month, granted, outcome)
    _fund_artifact()
    return {"month": month.label, "granted": granted, **outcome}


def _subsidy_artifact(month: Month, granted: int, outcome: Counter[str]) -> None:
    rows = subsidies.month_report(hub_context(), month)
    count = sum(r["count"] for r in rows)
    total = sum(r["amount_fen"] for r in rows)
    table = "".join(
        f"| {r['bank_code']} | {r['status']} | {r['count']} | {yuan(r['amount_fen'])} |\n"
        for r in rows
    )
    create_markdown_artifact(
        key="loan-subsidies",
        markdown=(
            f"## Interest subsidies for {month.label}\n\n"
            f"{count} subsidies, **{yuan(total)} yuan** in all; granted by this run: {granted}; "
            f"banks instructed now: {outcome['instructed']}, refused: {outcome['failed']}, "
            f"to retry: {outcome['retry_later']}\n\n"
            "| bank | status | subsidies | amount (yuan) |\n|---|---|---:|---:|\n"
            f"{table}"
        ),
        description=f"interest subsidies for {month.label}",
    )


def _fund_artifact() -> None:
    report = fund_views.fund_report(hub_context())
    t = report["totals"]
    claims = "".join(
        f"| {c['bank_code']} | {c['loan_id']} | {yuan(c['unpaid_principal_fen'])} "
        f"| {yuan(c['amount_fen'])} | {yuan(c['returned_fen'])} |\n"
        for c in report["claims"]
    )
    deposits = "".join(
        f"| {d['reference']} | {yuan(d['amount_fen'])} |\n" for d in report["deposits"]
    )
    create_markdown_artifact(
        key="risk-compensation-fund",
        markdown=(
            "## Risk-compensation fund\n\n"
            f"balance **{yuan(t.balance_fen)} yuan** = deposits {yuan(t.deposited_fen)} "
            f"- claims {yuan(t.claimed_fen)} + recoveries {yuan(t.recovered_fen)}\n\n"
            "| deposit | amount (yuan) |\n|---|---:|\n"
            f"{deposits}\n"
            "| bank | loan | unpaid principal | claimed | recovered to the fund |\n"
            "|---|---|---:|---:|---:|\n"
            f"{claims}"
        ),
        description="the risk-compensation fund",
    )
