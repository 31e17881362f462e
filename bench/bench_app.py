"""The benchmark's server: the real app plus two baselines, mounted only here.

- ``/bench/trivial`` returns a tiny JSON: the framework's ceiling.
- ``/bench/bare-hold`` is a hold with nothing around it: one pooled transaction
  with the conditional UPDATE and the two INSERTs (authorization, ledger legs),
  raw SQL on the app's own engine, run in the threadpool like the real handler.
  No auth, no idempotency, no ORM.
- ``/bench/bare-repayment`` is a loan repayment with nothing around it (for
  bench/loans.py): one pooled transaction with the repayment's writes — the
  loan's conditional UPDATE (which locks it, as the real one does), the current
  instalment's UPDATE, the repayment's INSERT and its two ledger legs — for a
  repayment that pays current interest only, as the benchmark's do. No auth, no
  idempotency, no ORM, no allocation rules.

Run by bench/authorizations.py and bench/loans.py as
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


_REPAY_LOAN = text(
    "UPDATE loans SET days_past_due = 0 WHERE id = :loan AND bank_id = :bank"
    " AND status IN ('active', 'overdue', 'defaulted') RETURNING outstanding_principal_fen"
)
_PAY_INSTALMENT = text(
    "UPDATE loan_instalments SET paid_fen = paid_fen + :a WHERE loan_id = :loan AND n ="
    " (SELECT min(n) FROM loan_instalments WHERE loan_id = :loan AND due_date >= :paid_on)"
)
_INSERT_REPAYMENT = text(
    "INSERT INTO loan_repayments (id, loan_id, bank_id, bank_txn_id, amount_fen,"
    " overdue_interest_fen, overdue_principal_fen, current_interest_fen, current_principal_fen,"
    " early_principal_fen, fund_share_fen, outstanding_after_fen, paid_at, paid_on, created_at)"
    " VALUES (:id, :loan, :bank, :txn, :a, 0, 0, :a, 0, 0, 0, :outstanding, :paid_at, :paid_on,"
    " :now)"
)
_INSERT_REPAYMENT_LEGS = text(
    "INSERT INTO ledger_postings (entry_id, account, amount_fen, kind, ref, created_at) VALUES"
    " (:entry, :debit, :a, 'loan_repayment', :id, :now),"
    " (:entry, :credit, -CAST(:a AS BIGINT), 'loan_repayment', :id, :now)"
)


def bare_repayment(
    engine: Engine, body: dict[str, Any], now: datetime, zone: str
) -> tuple[int, dict[str, Any]]:
    """One transaction, four statements: the irreducible writes of a repayment."""
    amount, loan, bank = body["amount_fen"], body["loan_id"], body["bank_id"]
    paid_at = datetime.fromisoformat(body["paid_at"])
    paid_on = clock.business_date(paid_at, zone)
    repayment_id = new_id("lrp")
    with engine.begin() as conn:
        outstanding = conn.execute(_REPAY_LOAN, {"loan": loan, "bank": bank}).scalar()
        if outstanding is None:
            conn.rollback()
            return 404, {"error": "not_found"}
        conn.execute(_PAY_INSTALMENT, {"a": amount, "loan": loan, "paid_on": paid_on})
        conn.execute(_INSERT_REPAYMENT, {
            "id": repayment_id, "loan": loan, "bank": bank, "txn": body["bank_txn_id"],
            "a": amount, "outstanding": outstanding, "paid_at": paid_at, "paid_on": paid_on,
            "now": now,
        })  # fmt: skip
        conn.execute(_INSERT_REPAYMENT_LEGS, {
            "entry": new_id("je"), "debit": f"bank:{bank}:loan_receipts",
            "credit": f"bank:{bank}:interest_earned", "a": amount, "id": repayment_id, "now": now,
        })  # fmt: skip
    return 201, {
        "repayment_id": repayment_id, "loan_id": loan, "amount_fen": amount,
        "current_interest_fen": amount, "outstanding_principal_fen": outstanding,
    }  # fmt: skip


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

    @app.post("/bench/bare-repayment", include_in_schema=False)
    async def bare_repay(request: Request) -> Response:
        body = json.loads(await request.body())
        zone = settings.business_timezone
        status, payload = await run_in_threadpool(bare_repayment, engine, body, clock.now(), zone)
        return JSONResponse(payload, status_code=status)

    return app
