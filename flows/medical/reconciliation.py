"""The reconciliation flow: the hub's books against each hospital's list and each
bank's statement, item by item, after settlement. Differences are kept until an
operator resolves them; the run's result is left as artifacts."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import date

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from flows.as_of import runs_as_of
from flows.medical import artifacts
from flows.partners import partner_systems
from hub.context import hub_context
from hub.medical import reconciliation_run
from hub.medical.reconciliation_run import Party


@task(name="reconcile-hospitals")
def reconcile_hospitals(window_id: str) -> dict[str, str]:
    ctx = hub_context()
    systems = partner_systems(ctx.settings)
    hospitals, dates = reconciliation_run.hospitals_of(ctx, window_id)

    def one(hospital: Party) -> tuple[str, str]:
        return hospital.code, reconciliation_run.check_hospital(
            ctx, systems, window_id, hospital, dates
        )

    with ThreadPoolExecutor(max_workers=8) as pool:
        return dict(pool.map(one, hospitals))


@task(name="reconcile-banks")
def reconcile_banks(window_id: str) -> dict[str, str]:
    ctx = hub_context()
    systems = partner_systems(ctx.settings)
    banks, value_date = reconciliation_run.banks_of(ctx, window_id)
    return {
        bank.code: reconciliation_run.check_bank(ctx, systems, window_id, bank, value_date)
        for bank in banks
    }


@flow(name="reconciliation")
@runs_as_of
def reconcile(window_id: str | None = None, as_of: date | None = None) -> dict[str, str]:
    """Reconcile one window (by default the latest settled or being paid)."""
    if window_id is None:
        window_id = reconciliation_run.latest_window(hub_context())
        if window_id is None:
            return {}
    result = {**reconcile_hospitals(window_id), **reconcile_banks(window_id)}
    _artifacts(window_id, result)
    return result


def _artifacts(window_id: str, result: dict[str, str]) -> None:
    found = reconciliation_run.window_mismatches(hub_context(), window_id)
    lines = "".join(f"- **{party}**: {what}\n" for party, what in sorted(result.items()))
    create_markdown_artifact(
        key="reconciliation-summary",
        markdown=f"## Reconciliation of window `{window_id}`\n\n{lines}\n"
        f"{sum(m['status'] == 'open' for m in found)} open mismatches.\n",
        description=f"reconciliation of {window_id}",
    )
    if found:
        rows = [artifacts.mismatch(m) for m in found]
        create_table_artifact(
            key="reconciliation-mismatches", table=rows, description="amounts in yuan"
        )
