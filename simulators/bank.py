"""A partner bank, simulated: it grants credit lines and pays hospitals.

Credit lines: the hub asks for a line for an enrolled resident; the bank
approves (possibly for less than asked, `limit_factor`) or declines
(`decline_rate`). The decision is a hash of the seed and the enrollment id, so
it does not depend on the order of calls, and a repeat (same Idempotency-Key
or same enrollment id) gets the stored answer.

Payouts: the hub settles with a hospital through the bank. A payout is paid
once per payout id, whatever the retries. The bank's daily statement lists
the payouts of a value date; the statement knobs make it drop, duplicate or
misstate items (decided per payout id) so that reconciliation has something
to find.

Subsidy payouts: the hub tells the bank to pay a firm its interest subsidy. It
is taken once per subsidy id, whatever the retries; the same Idempotency-Key
for another subsidy, or the same subsidy with other figures, is refused.

    python -m simulators.bank --port 8102 --seed 1 --api-key bank-key --decline-rate 0.1
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from decimal import ROUND_FLOOR, Decimal
from typing import Annotated, Any

from fastapi import FastAPI, Header
from pydantic import BaseModel, ConfigDict, Field, StrictInt

from simulators.knobs import (
    Knobs,
    SimState,
    error,
    run_from_command_line,
    simulator_app,
    stable_fraction,
    stable_token,
)

Text = Annotated[str, Field(min_length=1, max_length=128)]


class BankKnobs(Knobs):
    decline_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    limit_factor: float = Field(default=1.0, ge=0.0)
    statement_drop_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    statement_duplicate_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    statement_amount_change_rate: float = Field(default=0.0, ge=0.0, le=1.0)


class CreditLineRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enrollment_id: Text
    id_number: Text
    name: Text
    phone: Text | None = None  # the bank may call the resident; not every enrolment gives one
    requested_limit_fen: Annotated[StrictInt, Field(gt=0)]
    score: Annotated[StrictInt, Field(ge=0, le=1000)]


class PayoutRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    payout_id: Text
    hospital_code: Text
    amount_fen: Annotated[StrictInt, Field(gt=0)]
    value_date: dt.date


class SubsidyPayoutRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    subsidy_id: Text
    loan_id: Text
    uscc: Annotated[str, Field(min_length=18, max_length=18)]
    amount_fen: Annotated[StrictInt, Field(gt=0)]
    month: Annotated[str, Field(pattern=r"^\d{4}-(0[1-9]|1[0-2])$")]


def granted_limit(requested_fen: int, limit_factor: float) -> int:
    """`min(requested, floor(requested * factor))`, in exact decimal arithmetic."""
    scaled = (Decimal(requested_fen) * Decimal(str(limit_factor))).to_integral_value(ROUND_FLOOR)
    return min(requested_fen, int(scaled))


class Bank:
    """The bank's memory: decisions and payouts, each findable by id and by key."""

    def __init__(self) -> None:
        self.decisions: dict[str, dict[str, Any]] = {}  # enrollment_id -> decision
        self.decision_keys: dict[str, str] = {}  # Idempotency-Key -> enrollment_id
        self.payouts: dict[str, dict[str, Any]] = {}  # payout_id -> payout
        self.payout_keys: dict[str, str] = {}  # Idempotency-Key -> payout_id
        self.subsidies: dict[str, dict[str, Any]] = {}  # subsidy_id -> subsidy payout
        self.subsidy_keys: dict[str, str] = {}  # Idempotency-Key -> subsidy_id


def decide(knobs: BankKnobs, body: CreditLineRequest) -> dict[str, Any]:
    seed, enrollment = knobs.seed, body.enrollment_id
    if stable_fraction(seed, "decline", enrollment) < knobs.decline_rate:
        return {"enrollment_id": enrollment, "decision": "declined", "reason": "bank_policy"}
    return {
        "enrollment_id": enrollment,
        "decision": "approved",
        "bank_line_ref": f"BL{stable_token(seed, 'line', enrollment, length=12)}",
        "limit_fen": granted_limit(body.requested_limit_fen, knobs.limit_factor),
    }


def statement_items(knobs: BankKnobs, payouts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The statement as the bank prints it, faults included (fixed per payout id)."""
    items: list[dict[str, Any]] = []
    for payout in payouts:
        seed, payout_id = knobs.seed, payout["payout_id"]
        if stable_fraction(seed, "drop", payout_id) < knobs.statement_drop_rate:
            continue
        item = {k: payout[k] for k in ("bank_txn_id", "payout_id", "hospital_code", "value_date")}
        item["amount_fen"] = payout["amount_fen"]
        if stable_fraction(seed, "amount", payout_id) < knobs.statement_amount_change_rate:
            # Off by 1 to 100 fen either way, never to zero or below.
            delta = 1 + int(stable_fraction(seed, "delta", payout_id) * 100)
            down = stable_fraction(seed, "sign", payout_id) < 0.5 and delta < item["amount_fen"]
            item["amount_fen"] += -delta if down else delta
        items.append(item)
        if stable_fraction(seed, "duplicate", payout_id) < knobs.statement_duplicate_rate:
            items.append(dict(item))
    return items


def create_app(api_key: str, knobs: BankKnobs | None = None) -> FastAPI:
    state = SimState(knobs or BankKnobs(), api_key)
    bank = Bank()
    app = simulator_app("Bank simulator", state)

    @app.post("/credit-lines", response_model=None)
    async def request_credit_line(
        body: CreditLineRequest, idempotency_key: str | None = Header(default=None)
    ) -> Any:
        if not idempotency_key:
            return error(400, "idempotency_key_required")
        earlier = bank.decision_keys.setdefault(idempotency_key, body.enrollment_id)
        if earlier != body.enrollment_id:
            return error(409, "idempotency_key_reused")
        if body.enrollment_id not in bank.decisions:
            bank.decisions[body.enrollment_id] = decide(state.knobs, body)
        return bank.decisions[body.enrollment_id]

    @app.post("/payouts", response_model=None)
    async def pay(body: PayoutRequest, idempotency_key: str | None = Header(default=None)) -> Any:
        if not idempotency_key:
            return error(400, "idempotency_key_required")
        earlier = bank.payout_keys.setdefault(idempotency_key, body.payout_id)
        if earlier != body.payout_id:
            return error(409, "idempotency_key_reused")
        asked = body.model_dump(mode="json")
        paid = bank.payouts.get(body.payout_id)
        if paid is None:
            txn = f"T{stable_token(state.knobs.seed, 'txn', body.payout_id)}"
            paid = bank.payouts[body.payout_id] = {**asked, "status": "settled", "bank_txn_id": txn}
        elif any(paid[k] != v for k, v in asked.items()):
            # Same payout id, different instruction: refuse rather than pay twice or guess.
            return error(409, "payout_conflict")
        return paid

    @app.post("/subsidy-payouts", response_model=None)
    async def pay_subsidy(
        body: SubsidyPayoutRequest, idempotency_key: str | None = Header(default=None)
    ) -> Any:
        if not idempotency_key:
            return error(400, "idempotency_key_required")
        earlier = bank.subsidy_keys.setdefault(idempotency_key, body.subsidy_id)
        if earlier != body.subsidy_id:
            return error(409, "idempotency_key_reused")
        asked = body.model_dump(mode="json")
        taken = bank.subsidies.get(body.subsidy_id)
        if taken is None:
            ref = f"S{stable_token(state.knobs.seed, 'subsidy', body.subsidy_id)}"
            taken = bank.subsidies[body.subsidy_id] = {
                **asked,
                "status": "accepted",
                "bank_reference": ref,
            }
        elif any(taken[k] != v for k, v in asked.items()):
            return error(409, "subsidy_conflict")
        return taken

    @app.get("/subsidy-payouts/{subsidy_id}", response_model=None)
    async def get_subsidy_payout(subsidy_id: str) -> Any:
        return bank.subsidies.get(subsidy_id) or error(404, "not_found")

    @app.get("/payouts/{payout_id}", response_model=None)
    async def get_payout(payout_id: str) -> Any:
        return bank.payouts.get(payout_id) or error(404, "not_found")

    @app.get("/_sim/effects", response_model=None)
    async def effects() -> dict[str, Any]:
        """Everything the bank did, once per object: decisions by enrolment, payouts and
        subsidy payouts by id with their amounts (what a soak counts)."""
        return {
            "decisions": {e: d["decision"] for e, d in bank.decisions.items()},
            "payouts": {p: payout["amount_fen"] for p, payout in bank.payouts.items()},
            "subsidy_payouts": {s: sub["amount_fen"] for s, sub in bank.subsidies.items()},
        }

    @app.get("/statements/{value_date}", response_model=None)
    async def statement(value_date: str) -> Any:
        try:
            day = dt.date.fromisoformat(value_date)
        except ValueError:
            day = None
        if day is None or day.isoformat() != value_date:  # YYYY-MM-DD only, not 20240101
            return error(422, "invalid_date")
        of_day = [p for p in bank.payouts.values() if p["value_date"] == day.isoformat()]
        return {"date": day.isoformat(), "items": statement_items(state.knobs, of_day)}

    return app


def main(argv: Sequence[str] | None = None) -> None:
    run_from_command_line(argv, "A partner bank, simulated.", BankKnobs, create_app)


if __name__ == "__main__":
    main()
