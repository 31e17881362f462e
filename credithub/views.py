"""What the command line shows an operator: tables that fit a terminal of 80
columns without cutting the ids other commands take, amounts in yuan."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from itertools import groupby
from typing import Any

from rich import box
from rich.console import Group, RenderableType
from rich.markdown import Markdown
from rich.table import Table
from rich.text import Text

from hub.core.money import yuan, yuan_or_dash
from hub.loans.fund import DepositOutcome

_YUAN = re.compile(r"(\d+)(?:\.(\d+))?")


def mismatch_table(views: Iterable[dict[str, Any]], status: str) -> Group:
    """Reconciliation mismatches (`reconciliation.mismatch_view`): a table a window.

    The id is what `credithub recon resolve` takes, so its column never wraps or
    shrinks; the source and the kind share a cell, and so do the two amounts
    (the hub's above the partner's), to leave room for the reference.
    """
    rows = sorted(views, key=lambda v: str(v["window_id"]), reverse=True)  # newest first
    widest = max((len(v["mismatch_id"]) for v in rows), default=2)
    tables = []
    for window_id, in_window in groupby(rows, key=lambda v: str(v["window_id"])):
        table = Table(
            title=f"window {window_id}: {status} mismatches (amounts in yuan)",
            title_justify="left",
            box=box.SIMPLE_HEAD,
            pad_edge=False,
        )
        table.add_column("id", no_wrap=True, width=widest)
        table.add_column("where / what", overflow="fold")
        table.add_column("ref", overflow="fold")
        table.add_column("hub\npartner", justify="right", no_wrap=True)
        for v in in_window:
            table.add_row(
                v["mismatch_id"],
                f"{v['source']}\n{str(v['kind']).replace('_', ' ')}",
                v["ref"] or "—",
                f"{yuan_or_dash(v['hub_amount_fen'])}\n{yuan_or_dash(v['partner_amount_fen'])}",
            )
        tables.append(table)
    return Group(*tables)


def artifact_view(artifact: dict[str, Any]) -> RenderableType:
    """A Prefect artifact of a run as the UI would show it: markdown rendered, a table
    as a table (its cells are already text for people, e.g. yuan), else its text."""
    data = artifact.get("data")
    if artifact.get("type") == "markdown" and isinstance(data, str):
        return Markdown(data)
    rows = json.loads(data) if isinstance(data, str) and artifact.get("type") == "table" else data
    if isinstance(rows, list) and rows and all(isinstance(r, dict) for r in rows):
        table = Table(title=artifact.get("description") or artifact.get("key"), box=box.SIMPLE_HEAD)
        for column in rows[0]:  # an id is what other commands take: never cut
            table.add_column(str(column), overflow="fold", no_wrap=column == "id")
        for row in rows:
            table.add_row(*("—" if row.get(c) is None else str(row.get(c)) for c in rows[0]))
        return table
    return Text(f"{artifact.get('key')}: {data}")


def fen_of_yuan(text: str) -> int:
    """`"1000000.00"` → 100000000 fen, by integer arithmetic; a ValueError that says
    what is wrong for anything else (at most two decimals, more than 0)."""
    raw = text.strip().replace(",", "")
    sign = raw.startswith("-")
    match = _YUAN.fullmatch(raw.removeprefix("-").removeprefix("+"))
    if match is None:
        raise ValueError(f"{text!r} is not an amount in yuan, such as 1000000.00")
    whole, decimals = match.group(1), match.group(2) or ""
    if len(decimals) > 2:
        raise ValueError(f"{text!r} has more than two decimals: yuan are counted to the fen")
    fen = int(whole) * 100 + int(decimals.ljust(2, "0"))
    if sign or fen == 0:
        raise ValueError(f"{text!r}: a deposit is more than 0 yuan")
    return fen


def deposit_line(outcome: DepositOutcome) -> str:
    """What `credithub fund deposit` prints: the deposit and the balance after it."""
    again = " (already recorded: the same reference and amount before)" if outcome.replayed else ""
    return (
        f"deposit {outcome.deposit_id} of {yuan(outcome.amount_fen)} yuan, reference "
        f"{outcome.reference}, by {outcome.operator_code}{again}; the fund's balance after "
        f"it: {yuan(outcome.balance_fen)} yuan"
    )
