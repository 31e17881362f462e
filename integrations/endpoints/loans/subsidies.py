"""The interest subsidies' endpoint (CONTRACT.md §4): subsidies granted without application."""

from __future__ import annotations

from typing import Any

from hub.core.db import Transaction
from hub.loans import subsidies
from integrations.endpoints.pipeline import Call
from integrations.endpoints.routing import RouteTable

routes = RouteTable()


@routes.add(
    "GET",
    "/v1/subsidies",
    kinds={"operator", "channel"},
    query=("limit", "cursor"),
    response="SubsidyPage",
)
def list_subsidies(call: Call, session: Transaction) -> tuple[int, Any]:
    """Subsidies, newest first: every one for operators, its firms' for a channel."""
    page = subsidies.listed(session, call.caller.partner_id, call.caller.kind, call.query)
    return 200, page.as_contract(subsidies.view)
