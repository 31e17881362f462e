"""The rows of the tables the medical flows leave as Prefect artifacts.

What an operator reads at a glance: a few short columns, amounts in yuan
(`hub.core.money.yuan`), "—" where a side has no amount.
"""

from __future__ import annotations

from typing import Any

from hub.core.money import yuan, yuan_or_dash


def settlement_line(row: dict[str, Any]) -> dict[str, str]:
    """One settlement line (a row of `settlement.window_report`); why a line failed is
    listed under the summary, the bank's reference is in the API."""
    return {
        "bank": row["bank_code"],
        "hospital": row["hospital_code"],
        "captured": yuan(row["captured_fen"]),
        "refunded": yuan(row["refunded_fen"]),
        "carried in": yuan(row["carried_in_fen"]),
        "net": yuan(row["net_fen"]),
        "status": row["status"],
    }


def mismatch(view: dict[str, Any]) -> dict[str, str]:
    """One reconciliation mismatch (a `reconciliation.mismatch_view`); the id is what
    `credithub recon resolve` takes."""
    return {
        "id": view["mismatch_id"],
        "source": view["source"],
        "kind": view["kind"],
        "ref": view["ref"],
        "hub": yuan_or_dash(view["hub_amount_fen"]),
        "partner": yuan_or_dash(view["partner_amount_fen"]),
        "status": view["status"],
    }
