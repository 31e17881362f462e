"""The settlement endpoints (CONTRACT.md §2 Settlement): close the window, read batches."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from hub.core.errors import FieldError, Invalid
from hub.medical import reconciliation, settlement, windows
from integrations.endpoints.medical import presenters as present
from integrations.endpoints.pipeline import Call
from integrations.endpoints.routing import RouteTable, limit_param
from integrations.flow_runs import start_run
from models.medical import schemas
from models.medical.tables import Mismatch, SettlementBatch

routes = RouteTable()
PARTIES = {"bank", "hospital", "operator"}


@routes.add(
    "POST",
    "/v1/settlement-windows/close",
    kinds={"operator"},
    body=schemas.CloseWindowRequest,
    status=202,
)
def close_window(call: Call, session: Session) -> tuple[int, Any]:
    """Close the open window now and settle it."""
    open_id = windows.peek_open_window_id(session, call.now)
    # Asked before the window is locked, so captures do not wait on Prefect; the run
    # waits for this window to be closed, and the same window gets the same run.
    parameters = {"window_id": open_id, "close": False}  # the deployment's default closes
    run_id = start_run("settlement/settlement", parameters, f"settle:{open_id}")
    closed = windows.close_window(session, call.now)
    return 202, {"window_id": closed, "flow_run_id": run_id}


@routes.add("GET", "/v1/settlements", kinds=PARTIES, query=("limit", "cursor"))
def list_settlements(call: Call, session: Session) -> tuple[int, Any]:
    """Settlement batches this partner is party to, newest first."""
    limit = limit_param(call.query)
    query = settlement.visible_batches(session, call.caller.partner_id, call.caller.kind)
    if cursor := call.query.get("cursor"):
        query = query.where(SettlementBatch.id < cursor)
    found = list(session.scalars(query.limit(limit + 1)))
    mine = call.caller.partner_id if call.caller.kind == "hospital" else None
    items = [settlement.batch_view(session, b, mine) for b in found[:limit]]
    has_more = len(found) > limit
    return 200, present.page(items, has_more, found[limit - 1].id if has_more else None)


@routes.add("GET", "/v1/settlements/{settlement_id}", kinds=PARTIES)
def get_settlement(call: Call, session: Session) -> tuple[int, Any]:
    """One settlement batch (a hospital sees only its own lines)."""
    kind = call.caller.kind
    batch = settlement.get_batch(
        session, call.caller.partner_id, kind, call.params["settlement_id"]
    )
    mine = call.caller.partner_id if kind == "hospital" else None
    return 200, settlement.batch_view(session, batch, mine)


@routes.add(
    "GET", "/v1/reconciliation/mismatches", kinds={"operator"}, query=("status", "limit", "cursor")
)
def list_mismatches(call: Call, session: Session) -> tuple[int, Any]:
    """Mismatches found by reconciliation (open ones unless ?status=resolved)."""
    limit = limit_param(call.query)
    status = call.query.get("status", "open")
    if status not in ("open", "resolved"):
        raise Invalid(
            "status must be open or resolved", errors=[FieldError("status", "open or resolved")]
        )
    query = reconciliation.open_mismatches(status)
    if cursor := call.query.get("cursor"):
        query = query.where(Mismatch.id < cursor)
    found = list(session.scalars(query.limit(limit + 1)))
    items = [reconciliation.mismatch_view(m) for m in found[:limit]]
    has_more = len(found) > limit
    return 200, present.page(items, has_more, found[limit - 1].id if has_more else None)
