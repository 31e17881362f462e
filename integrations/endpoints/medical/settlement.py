"""The settlement endpoints (CONTRACT.md §2 Settlement): close the window, read batches."""

from __future__ import annotations

from typing import Any

from hub.context import HubContext
from hub.core.db import Transaction
from hub.core.errors import FieldError, Invalid
from hub.medical import listings, reconciliation, settlement, settlement_run, windows
from integrations.endpoints.pipeline import Call
from integrations.endpoints.routing import RouteTable
from integrations.flow_runs import start_run
from models.medical import schemas
from models.medical.tables import MismatchStatus

routes = RouteTable()
PARTIES = {"bank", "hospital", "operator"}


def schedule_settlement(call: Call, ctx: HubContext) -> str | None:
    """The settlement run of this request, asked of Prefect before the transaction opens
    (none is held across the call). The key is the request's own, so a retry of the
    request gets the same run; the run waits for the window to be closed."""
    open_id = settlement_run.window_to_close(ctx)
    parameters = {"window_id": open_id, "close": False}  # the deployment's default closes
    key = f"settlement-close:{call.caller.partner_id}:{call.idempotency_key}"
    return start_run("settlement/settlement", parameters, key)


@routes.add(
    "POST",
    "/v1/settlement-windows/close",
    kinds={"operator"},
    body=schemas.CloseWindowRequest,
    status=202,
    before=schedule_settlement,
    response="WindowClosed",
)
def close_window(call: Call, session: Transaction) -> tuple[int, Any]:
    """Close the open window now and settle it."""
    closed = windows.close_window(session, call.now)
    return 202, {"window_id": closed, "flow_run_id": call.prepared}


@routes.add(
    "GET",
    "/v1/settlements",
    kinds=PARTIES,
    query=("limit", "cursor"),
    response="SettlementPage",
)
def list_settlements(call: Call, session: Transaction) -> tuple[int, Any]:
    """Settlement batches this partner is party to, newest first."""
    page = listings.settlement_batches(
        session, call.caller.partner_id, call.caller.kind, call.query
    )
    mine = call.caller.partner_id if call.caller.kind == "hospital" else None
    return 200, page.as_contract(lambda batch: settlement.batch_view(session, batch, mine))


@routes.add("GET", "/v1/settlements/{settlement_id}", kinds=PARTIES, response="Settlement")
def get_settlement(call: Call, session: Transaction) -> tuple[int, Any]:
    """One settlement batch (a hospital sees only its own lines)."""
    kind = call.caller.kind
    batch = settlement.get_batch(
        session, call.caller.partner_id, kind, call.params["settlement_id"]
    )
    mine = call.caller.partner_id if kind == "hospital" else None
    return 200, settlement.batch_view(session, batch, mine)


@routes.add(
    "GET",
    "/v1/reconciliation/mismatches",
    kinds={"operator"},
    query=(
        {
            "name": "status",
            "in": "query",
            "schema": {"type": "string", "enum": list(MismatchStatus), "default": "open"},
        },
        "limit",
        "cursor",
    ),
    response="MismatchPage",
)
def list_mismatches(call: Call, session: Transaction) -> tuple[int, Any]:
    """Mismatches found by reconciliation (open ones unless ?status=resolved)."""
    status = call.query.get("status", MismatchStatus.OPEN)
    if status not in tuple(MismatchStatus):
        raise Invalid(
            "status must be open or resolved", errors=[FieldError("status", "open or resolved")]
        )
    page = listings.mismatches(session, MismatchStatus(status), call.query)
    return 200, page.as_contract(reconciliation.mismatch_view)
