"""What operators scrape and probe: `GET /metrics` (Prometheus) and `GET /v1/ready`.

Neither is part of the partner contract. /metrics is left out of /openapi.json
(as /docs is) and asks for no credentials: operators keep it behind their
firewall. /v1/ready is described there, beside `GET /v1/health`.

Where each figure is true:
- requests, latency, holds placed and refused: in this process, as it answers
  (`integrations.endpoints.observed`);
- the database pool: this process's own (each process has its own pool);
- holds by state (expired by time included), enrolments, loan applications and
  loans by outcome, settlement lines and amounts: the whole hub's, read from the
  database when scraped (`hub.figures`), since flow workers decide most of them;
- flow runs by flow and state: Prefect's, read from its API when scraped.

A scrape never waits long on either: each read runs on a thread of its own, one
at a time, and is waited for at most CREDITHUB_OBSERVE_TIMEOUT_SECONDS (the
database stops its statements then too); a read that failed or is late leaves
its figures out and its `*_up` gauge at 0. A good read of the database serves
the scrapes of the next CREDITHUB_FIGURES_CACHE_SECONDS, so several scrapers
cost one read.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import prometheus_client
from fastapi import FastAPI
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Gauge,
    generate_latest,
    multiprocess,
)
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.responses import JSONResponse, Response

from hub import figures
from hub.context import HubContext
from hub.core import clock, readiness
from hub.core.db import observer_engine
from hub.core.money import yuan_number
from hub.medical.figures import MedicalFigures
from integrations import flow_runs
from integrations.endpoints import response_schemas
from integrations.endpoints.observed import RequestMetrics
from integrations.endpoints.snapshot import Snapshot

prometheus_client.disable_created_metrics()  # `_created` series double the count, say little
FLOW_RUN_WINDOW = timedelta(hours=24)
FLOW_RUNS_CACHE_SECONDS = 30.0


def multiprocess_dir() -> str | None:
    """Where workers sharing a port keep their counts (prometheus-client's variable)."""
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


def _gauge(name: str, doc: str, labels: list[str], rows: dict[Any, Any]) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, doc, labels=labels)
    for key, value in sorted(rows.items()):
        family.add_metric(list(key) if isinstance(key, tuple) else [key], value)
    return family


class FiguresCollector(Collector):
    """The hub's figures from the database, as of the last good read."""

    def __init__(self, snapshot: Snapshot[figures.Figures]):
        self.snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        reading = self.snapshot.latest
        yield GaugeMetricFamily(
            "credithub_figures_up",
            "1 when the last read of the hub's figures from the database succeeded in time.",
            value=1 if reading.ok else 0,
        )
        yield GaugeMetricFamily(
            "credithub_figures_read_seconds",
            "How long the last read of the figures from the database took.",
            value=reading.seconds,
        )
        if not reading.ok or reading.value is None:
            return
        medical, loans = reading.value.medical, reading.value.loans
        yield from _medical_families(medical)
        yield _gauge(
            "credithub_loan_applications",
            "Loan applications by status and decline reason (database).",
            ["status", "decline_reason"],
            loans.applications,
        )
        yield _gauge("credithub_loans", "Loans by status (database).", ["status"], loans.loans)


def _medical_families(medical: MedicalFigures) -> Iterator[Metric]:
    yield _gauge(
        "credithub_holds",
        "Holds by state (database): held (live), captured, released, voided, expired "
        "(past its expiry, swept or not).",
        ["state"],
        medical.holds,
    )
    yield _gauge(
        "credithub_enrollments",
        "Enrolments by status and decline reason (database).",
        ["status", "decline_reason"],
        medical.enrollments,
    )
    lines = medical.settlement_lines
    yield _gauge(
        "credithub_settlement_lines",
        "Settlement lines (a bank and a hospital in one window) by status (database).",
        ["status"],
        {status: count for status, (count, _net) in lines.items()},
    )
    yield _gauge(
        "credithub_settlement_net_yuan",
        "The nets of settlement lines by status, in yuan (database; exact from fen).",
        ["status"],
        {status: yuan_number(net) for status, (_count, net) in lines.items()},
    )
    yield CounterMetricFamily(
        "credithub_settlement_paid_yuan",
        "Paid to hospitals by banks through settlement, in yuan (database; exact from fen).",
        value=yuan_number(lines.get("settled", (0, 0))[1]),
    )


class FlowRunsCollector(Collector):
    """Flow runs by flow and state, from Prefect's API (absent without one)."""

    def __init__(self, snapshot: Snapshot[dict[tuple[str, str], int]]):
        self.snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        reading = self.snapshot.latest
        yield GaugeMetricFamily(
            "credithub_prefect_up",
            "1 when the last read of flow runs from Prefect's API succeeded in time.",
            value=1 if reading.ok else 0,
        )
        if reading.ok and reading.value is not None:
            yield _gauge(
                "credithub_flow_runs",
                "Flow runs expected to start in the last 24 hours, by flow and state "
                "(Prefect's API).",
                ["flow", "state"],
                reading.value,
            )


def _pool_stats(ctx: HubContext) -> dict[str, float] | None:
    pool = ctx.engine.pool
    if not all(hasattr(pool, a) for a in ("size", "checkedout", "overflow")):
        return None  # a pool that keeps no connections (SQLite in memory, NullPool)
    size, overflow = pool.size(), pool.overflow()  # type: ignore[attr-defined]
    return {
        "size": size,
        "open": size + overflow,
        "checked_out": pool.checkedout(),  # type: ignore[attr-defined]
        "overflow": max(0, overflow),
    }


_POOL_DOCS = {
    "size": "Connections the database pool keeps (this process).",
    "open": "Connections the database pool has open (this process).",
    "checked_out": "Pooled connections in use (this process).",
    "overflow": "Connections open beyond the pool's size (this process).",
}


class PoolCollector(Collector):
    """This process's database pool, as it is when scraped."""

    def __init__(self, ctx: HubContext):
        self.ctx = ctx

    def collect(self) -> Iterator[Metric]:
        for name, value in (_pool_stats(self.ctx) or {}).items():
            yield GaugeMetricFamily(f"credithub_db_pool_{name}", _POOL_DOCS[name], value=value)


class SharedPoolGauges:
    """Workers sharing a port: each worker's pool, summed over the live workers,
    brought up to date after each of its requests (prometheus-client's `livesum`)."""

    def __init__(self, ctx: HubContext):
        self.ctx = ctx
        self.gauges = {
            name: Gauge(
                f"credithub_db_pool_{name}", doc, registry=None, multiprocess_mode="livesum"
            )
            for name, doc in _POOL_DOCS.items()
        }

    def update(self) -> None:
        for name, value in (_pool_stats(self.ctx) or {}).items():
            self.gauges[name].set(value)


@dataclass
class Observability:
    """The app's metrics: what the middleware counts, and how /metrics answers."""

    requests: RequestMetrics
    registry: CollectorRegistry
    hub_figures: Snapshot[figures.Figures]
    flow_runs: Snapshot[dict[tuple[str, str], int]] | None
    ready: Snapshot[readiness.Readiness]
    after_request: Callable[[], None] | None = None

    async def exposition(self) -> bytes:
        await asyncio.gather(
            self.hub_figures.refresh(), *([self.flow_runs.refresh()] if self.flow_runs else [])
        )
        return generate_latest(self.registry)

    def close(self) -> None:
        """At the app's shutdown: a worker sharing a port leaves the pool sums. (The
        reading threads stay: an app may be started again, as tests do, and an idle
        thread costs nothing.)"""
        if multiprocess_dir() is not None:
            multiprocess.mark_process_dead(os.getpid())


def observability(ctx: HubContext) -> Observability:
    s = ctx.settings
    timeout = s.observe_timeout_seconds
    engine = observer_engine(s, timeout)
    shared = multiprocess_dir() is not None
    registry = CollectorRegistry()
    requests = RequestMetrics(None if shared else registry)
    after: Callable[[], None] | None = None
    if shared:
        multiprocess.MultiProcessCollector(registry)
        after = SharedPoolGauges(ctx).update
    else:
        prometheus_client.ProcessCollector(registry=registry)
        prometheus_client.PlatformCollector(registry=registry)
        prometheus_client.GCCollector(registry=registry)
        registry.register(PoolCollector(ctx))
    figures_now = Snapshot(
        "figures",
        lambda: figures.read(engine, clock.now(), timeout),
        s.figures_cache_seconds,
        timeout,
    )
    registry.register(FiguresCollector(figures_now))
    runs = None
    api = flow_runs.prefect_api()
    if api is not None:

        def read_runs() -> dict[tuple[str, str], int]:
            now = datetime.now(UTC)
            return flow_runs.runs_by_state(api, now - FLOW_RUN_WINDOW, now, timeout)

        runs = Snapshot("flow-runs", read_runs, FLOW_RUNS_CACHE_SECONDS, timeout)
        registry.register(FlowRunsCollector(runs))
    ready = Snapshot("readiness", lambda: readiness.check(engine, timeout), 0.0, timeout)
    return Observability(requests, registry, figures_now, runs, ready, after)


def _readiness_responses() -> dict[str, Any]:
    body = {"application/json": {"schema": response_schemas.ref("Readiness")}}
    return {
        "200": {
            "description": "Ready: the database answers and its schema is this release's",
            "content": body,
        },
        "503": {
            "description": "Not ready: the database does not answer in time, or its schema "
            "is behind (not yet migrated) or ahead (a newer release migrated it)",
            "content": body,
        },
    }


def add_operator_routes(app: FastAPI, seen: Observability) -> None:
    """`GET /metrics` (outside the partner schema) and `GET /v1/ready`."""

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(await seen.exposition(), media_type=CONTENT_TYPE_LATEST)

    @app.get(
        "/v1/ready",
        tags=["health"],
        summary="Can this process serve: does its database answer, at this release's schema?",
        operation_id="ready",
        openapi_extra={"security": [], "responses": _readiness_responses()},
    )
    async def ready() -> Response:
        reading = await seen.ready.refresh()
        state = reading.value if reading.ok and reading.value else None
        state = state or readiness.Readiness("unreachable", "unknown")
        body = {
            "status": "ready" if state.ready else "unavailable",
            "database": state.database,
            "schema": state.schema,
        }
        return JSONResponse(body, status_code=200 if state.ready else 503)
