"""The hospitals' own systems (HIS), simulated: demo traffic and transaction lists to reconcile.

One server stands in for several hospitals (the partners of kind `hospital` in
the partners file `credithub up` writes). It does two things:

- The partners' traffic (`simulators.traffic`) behaves like the hospitals'
  front desks and the banks' repayment desks: it enrols residents, polls
  their enrolments, checks eligibility, opens visits, places, raises and voids
  holds, closes visits with bills that add up, refunds part of some, and, as
  the line's bank, books repayments; as the city's app (a channel) it submits
  firms' loan applications and takes offers, and as the banks' loan desks it
  publishes products, answers applications by the `loan_*` knobs, pays loans out,
  books firms' repayments by habit and claims on the fund — all through the hub's public API, with
  Idempotency-Keys and unique partner references. A background thread drives
  it in real time at `rate` actions a second (`credithub up`); with `rate` 0
  it waits for `POST /_sim/traffic/{step}`, a step of a simulated day at the
  instant named (`credithub demo`).
- Each hospital's own transaction list: every capture (a close with
  `captured_fen > 0`) and every refund as the HIS recorded it, which the
  hub's reconciliation fetches with `GET /hospitals/{code}/transactions?date=`.
  The discrepancy knobs (`drop_rate`, `duplicate_rate`, `amount_change_rate`)
  make the list miss, repeat or misstate items, decided per item from the
  seed, so reconciliation has something to find.

HTTP (bearer key on every route, `/_sim/...` included):
    GET    /hospitals/{code}/transactions?date=YYYY-MM-DD  -> {"hospital_code", "date", "items"}
    POST   /hospitals/{code}/transactions   add an item by hand (201)
    DELETE /hospitals/{code}/transactions   forget the hospital's list (204)
    GET/PUT /_sim/knobs, GET /_sim/stats (calls by kind and status), GET /_sim/requests
    POST   /_sim/traffic/{step}  {"at": RFC 3339, "count": n} -> {"step", "tally"}: what it did;
           steps: enrolments (n sign-ups), decisions (read every pending enrolment),
           visits (n patients, arrival to bill), repayments (who owes pays, by habit),
           loan_applications (n firms apply), lending (banks answer, the channel takes
           offers, banks pay out), loan_repayments (firms repay by habit; banks claim)
An item: {"ref" (his_bill_id or his_refund_id), "kind": "capture"|"refund", "amount_fen",
"visit_id" (the hub's), "hub_id" (the hub's visit_id or refund_id), "his_visit_id",
"at" (RFC 3339 UTC, the hub's time of the close or refund), "business_date" (Asia/Shanghai)}.

Decisions come from a generator seeded by `seed`; the hub's answers do the
rest. The traffic logs only the kind of an error, never a person's number,
name or phone. State lives in memory and dies with the process.

    python -m simulators.hospital --port 8121 --api-key his-key --hub-url http://127.0.0.1:8000 \
        --bureau-url http://127.0.0.1:8101 --bureau-key bureau-dev-key \
        --partners-file .credithub/up.json --rate 2 --seed 1
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from simulators.hospital_books import (
    Book,
    HospitalKnobs,
    Stats,
    TransactionItem,
    as_listed,
    load_partners,
    record,
)
from simulators.knobs import SimState, error, simulator_app
from simulators.traffic.generator import STEPS, Traffic
from simulators.traffic.pace import RealTime
from simulators.traffic.world import TrafficConfig, default_run_tag

log = logging.getLogger("simulators.hospital")


class TrafficStep(BaseModel):
    """A step of a simulated day: the instant the desks act at, and how many of them."""

    model_config = ConfigDict(extra="forbid")

    at: AwareDatetime
    count: int = Field(default=1, ge=0, le=10_000)


def create_app(
    api_key: str,
    knobs: HospitalKnobs | None = None,
    hospitals: Sequence[str] = (),
    driver: TrafficConfig | None = None,
) -> FastAPI:
    """The HIS server for these hospitals; with a traffic config, it sends traffic too."""
    state = SimState(knobs or HospitalKnobs(), api_key)
    codes = list(dict.fromkeys([*hospitals, *(driver.partners.hospitals if driver else ())]))
    book, stats = Book(codes), Stats()
    traffic = Traffic(driver, state.knobs.seed, book, stats) if driver else None
    if traffic is not None:
        traffic.world.knobs = lambda: state.knobs  # read at each action: changes apply at once
    running = RealTime(traffic, state, stats) if traffic else None
    app = simulator_app("Hospital systems simulator", state)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if running is not None:
            running.start()
        try:
            yield
        finally:
            if running is not None:
                running.stop()
            if traffic is not None:
                traffic.close()

    app.router.lifespan_context = lifespan

    @app.get("/hospitals/{code}/transactions", response_model=None)
    async def transactions(code: str, date: str = "") -> Any:
        if code not in book.items:
            return error(404, "unknown_hospital")
        try:
            day = dt.date.fromisoformat(date)
        except ValueError:
            return error(422, "invalid_date")
        if day.isoformat() != date:
            return error(422, "invalid_date")
        items = as_listed(state.knobs, code, book.of_day(code, date))
        return {"hospital_code": code, "date": date, "items": items}

    @app.post("/hospitals/{code}/transactions", status_code=201, response_model=None)
    async def add_transaction(code: str, body: TransactionItem) -> Any:
        if code not in book.items:
            return error(404, "unknown_hospital")
        item = record(body)
        book.add(code, item)
        return item

    @app.delete("/hospitals/{code}/transactions", status_code=204, response_model=None)
    async def clear_transactions(code: str) -> Any:
        if code not in book.items:
            return error(404, "unknown_hospital")
        book.clear(code)
        return None

    @app.get("/_sim/stats")
    async def sim_stats() -> dict[str, Any]:
        desks = traffic.snapshot() if traffic else {"residents": 0, "visits_in_progress": 0}
        return {
            "actions": stats.snapshot(),
            "driver": {
                "enabled": running is not None,
                "idle": running is None or running.idle.is_set(),
                **desks,
            },
            "transactions": {code: len(items) for code, items in book.items.items()},
        }

    @app.post("/_sim/traffic/{step}", response_model=None)
    def traffic_step(step: str, body: TrafficStep) -> Any:
        """A step of a simulated day (sync: it waits on the hub, in a worker thread)."""
        if traffic is None:
            return error(404, "no_traffic")
        if step not in STEPS:
            return error(404, "unknown_step", steps=list(STEPS))
        try:
            done = traffic.step(step, body.at, body.count)
        except Exception as exc:  # the kind only: a message could carry a person's data
            stats.count("driver", type(exc).__name__)
            log.warning("hospital simulator: the %s step failed: %s", step, type(exc).__name__)
            return error(500, "step_failed", kind=type(exc).__name__)
        return {"step": step, "tally": done.as_dict()}

    return app


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="The hospitals' own systems, simulated.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--api-key", required=True)
    parser.add_argument("--hub-url", required=True)
    parser.add_argument("--bureau-url", required=True)
    parser.add_argument("--bureau-key", required=True)
    parser.add_argument("--partners-file", type=Path, required=True)
    parser.add_argument("--run-tag", default=None, help="reference prefix (default: from the time)")
    for name, info in HospitalKnobs.model_fields.items():
        flag = f"--{name.replace('_', '-')}"
        if info.annotation is bool:
            parser.add_argument(flag, dest=name, action="store_true")
        else:
            kind = int if info.annotation is int else float
            parser.add_argument(flag, dest=name, type=kind, default=info.default)
    args = parser.parse_args(argv)
    knobs = HospitalKnobs.model_validate({n: getattr(args, n) for n in HospitalKnobs.model_fields})
    partners = load_partners(args.partners_file)
    config = TrafficConfig(
        hub_url=args.hub_url.rstrip("/"),
        bureau_url=args.bureau_url.rstrip("/"),
        bureau_key=args.bureau_key,
        partners=partners,
        run_tag=args.run_tag or default_run_tag(),
    )
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # its INFO lines carry identity numbers
    uvicorn.run(
        create_app(args.api_key, knobs, list(partners.hospitals), config),
        host=args.host,
        port=args.port,
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=2,
    )


if __name__ == "__main__":
    main()
