"""The reconciliation flow: the hub's books against each hospital's list and each
bank's statement, item by item, after settlement. Differences are kept until an
operator resolves them; the run's result is left as artifacts."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import date

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from sqlalchemy import select

from flows.context import hub_context, runs_as_of
from flows.medical import artifacts
from flows.partners import partner_systems
from hub.core import clock
from hub.core.db import unit_of_work
from hub.medical import reconciliation
from models.core.partner_errors import PartnerError
from models.medical.tables import Mismatch, SettlementLine, SettlementWindow


@task(name="reconcile-hospitals")
def reconcile_hospitals(window_id: str) -> dict[str, str]:
    ctx = hub_context()
    systems = partner_systems(ctx.settings)
    with unit_of_work(ctx.engine, write=False) as session:
        hospitals, _ = reconciliation.parties(session, window_id)
        dates = reconciliation.window_dates(session, window_id, ctx.settings.business_timezone)
        targets = [(h.id, h.code) for h in hospitals]

    def one(target: tuple[str, str]) -> tuple[str, str]:
        hospital_id, code = target
        try:
            client = systems.hospital_client(code)
            listed = [
                ((i.kind, i.ref), i.amount_fen)
                for d in dates
                for i in client.transactions(code, d).items
            ]
        except PartnerError as exc:
            return code, f"unreachable: {type(exc).__name__}"
        with unit_of_work(ctx.engine) as session:
            books = reconciliation.hospital_books(session, window_id, hospital_id)
            strangers = {key for key, _ in listed if key not in books}
            elsewhere = reconciliation.hospital_refs_elsewhere(
                session, window_id, hospital_id, strangers
            )
            found = reconciliation.compare(books, listed, elsewhere)
            reconciliation.record(session, window_id, f"hospital:{code}", found, clock.now())
        return code, f"{len(found)} differences"

    with ThreadPoolExecutor(max_workers=8) as pool:
        return dict(pool.map(one, targets))


@task(name="reconcile-banks")
def reconcile_banks(window_id: str) -> dict[str, str]:
    ctx = hub_context()
    systems = partner_systems(ctx.settings)
    with unit_of_work(ctx.engine, write=False) as session:
        _, banks = reconciliation.parties(session, window_id)
        value_date = reconciliation.window_dates(
            session, window_id, ctx.settings.business_timezone
        )[-1]
        targets = [(b.id, b.code) for b in banks]
    outcome: dict[str, str] = {}
    for bank_id, code in targets:
        try:
            statement = systems.bank_client(code).statement(value_date)
        except PartnerError as exc:
            outcome[code] = f"unreachable: {type(exc).__name__}"
            continue
        listed = [(("payout", i.payout_id), i.amount_fen) for i in statement.items]
        with unit_of_work(ctx.engine) as session:
            books = reconciliation.bank_books(session, window_id, bank_id)
            strangers = {key for key, _ in listed if key not in books}
            elsewhere = reconciliation.bank_refs_elsewhere(session, window_id, strangers)
            found = reconciliation.compare(books, listed, elsewhere)
            reconciliation.record(session, window_id, f"bank:{code}", found, clock.now())
        outcome[code] = f"{len(found)} differences"
    return outcome


@flow(name="reconciliation")
@runs_as_of
def reconcile(window_id: str | None = None, as_of: date | None = None) -> dict[str, str]:
    """Reconcile one window (by default the latest settled or being paid)."""
    ctx = hub_context()
    if window_id is None:
        with unit_of_work(ctx.engine, write=False) as session:
            window_id = session.scalar(  # the latest window with anything settled in it
                select(SettlementWindow.id)
                .where(
                    SettlementWindow.status.in_(("computed", "settled")),
                    SettlementWindow.id.in_(select(SettlementLine.window_id)),
                )
                .order_by(SettlementWindow.closed_at.desc(), SettlementWindow.id.desc())
                .limit(1)
            )
        if window_id is None:
            return {}
    result = {**reconcile_hospitals(window_id), **reconcile_banks(window_id)}
    _artifacts(window_id, result)
    return result


def _artifacts(window_id: str, result: dict[str, str]) -> None:
    ctx = hub_context()
    with unit_of_work(ctx.engine, write=False) as session:
        found = [
            reconciliation.mismatch_view(m)
            for m in session.scalars(select(Mismatch).where(Mismatch.window_id == window_id))
        ]
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
