"""The benchmark's server: the real app plus two baselines, mounted only here.

- ``/bench/trivial`` returns a tiny JSON: the framework's ceiling.
- ``/bench/bare-hold`` is a hold with nothing around it: one pooled transaction
  with the conditional UPDATE and the two INSERTs (authorization, ledger legs),
  raw SQL on the app's own engine, run in the threadpool like the real handler.
  No auth, no idempotency, no ORM.

Run by bench/authorizations.py as
``uvicorn bench.bench_app:create_bench_app --factory`` (settings from CREDITHUB_*).
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from fastapi import FastAPI
from sqlalchemy import Engine, text
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from hub.core import clock
from hub.core.db import get_engine
from hub.core.ids import new_id
from hub.settings import get_settings
from integrations.endpoints.app import create_app

_RESERVE = text(
    "UPDATE credit_lines SET held_fen = held_fen + :a"
    " WHERE id = :line AND status = 'active' AND held_fen + outstanding_fen + :a <= limit_fen"
)
_INSERT_AUTH = text(
    "INSERT INTO authorizations (id, visit_id, credit_line_id, hospital_id, his_order_id,"
    " description, status, amount_fen, initial_fen, captured_fen, created_at, expires_at)"
    " VALUES (:id, :visit, :line, :hospital, :order, :description, 'held', :a, :a, 0,"
    " :now, :expires)"
)
_INSERT_LEGS = text(
    "INSERT INTO ledger_postings (entry_id, account, amount_fen, kind, ref, created_at) VALUES"
    " (:entry, :debit, :a, 'hold_placed', :id, :now),"
    " (:entry, :credit, -CAST(:a AS BIGINT), 'hold_placed', :id, :now)"
)


def bare_hold(engine: Engine, body: dict[str, Any], now: datetime) -> tuple[int, dict[str, Any]]:
    """One transaction, three statements: the irreducible work of a hold."""
    amount, line, hospital = body["amount_fen"], body["credit_line_id"], body["hospital_id"]
    auth_id = new_id("auth")
    with engine.begin() as conn:
        if conn.execute(_RESERVE, {"a": amount, "line": line}).rowcount != 1:
            conn.rollback()
            return 402, {"error": "insufficient_credit"}
        conn.execute(_INSERT_AUTH, {
            "id": auth_id, "visit": body["visit_id"], "line": line, "hospital": hospital,
            "order": body["his_order_id"], "description": body.get("description"),
            "a": amount, "now": now, "expires": now + timedelta(hours=72),
        })  # fmt: skip
        conn.execute(_INSERT_LEGS, {
            "entry": new_id("je"), "debit": f"line:{line}:held",
            "credit": f"hospital:{hospital}:holds", "a": amount, "id": auth_id, "now": now,
        })  # fmt: skip
    return 201, {"authorization_id": auth_id, "status": "held", "amount_fen": amount}


def create_bench_app() -> FastAPI:
    settings = get_settings()
    app = create_app(settings)
    engine = get_engine(settings)

    @app.api_route("/bench/trivial", methods=["GET", "POST"], include_in_schema=False)
    async def trivial() -> Response:
        return JSONResponse({"ok": True})

    @app.post("/bench/bare-hold", include_in_schema=False)
    async def bare(request: Request) -> Response:
        body = json.loads(await request.body())
        status, payload = await run_in_threadpool(bare_hold, engine, body, clock.now())
        return JSONResponse(payload, status_code=status)

    return app
