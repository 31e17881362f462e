"""Every request counted, timed and logged once, by what it asked for, never by
what it carried.

Labels are bounded and free of personal data: the route's template
(`/v1/visits/{visit_id}/authorizations`, never the path with its ids; a path no
route serves is `unmatched`), the method, the caller's partner kind (`none`
before authentication) and the status. Partners' ids stay out of the labels —
a city has hundreds of hospitals, and each would multiply every series — but
the access log line names the partner's code.

Holds are counted here too, since only the API sees a hold placed or refused:
a 2xx answer to a hold or an increment is one placed, a 4xx one refused, by the
problem's `code` (the contract's fixed set). A replayed answer (the same
Idempotency-Key again) is neither: nothing happened again.

These counts are this process's own: each API process answers /metrics for
itself, as Prometheus scrapes a fleet. Workers sharing one port
(`credithub api --workers N`) keep them in prometheus-client's multiprocess
files instead (PROMETHEUS_MULTIPROC_DIR), so any worker answers for all.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

access = logging.getLogger("credithub.access")

# Seconds: a bare hold answers in 2-5 ms, a loaded one in tens, a stuck one in seconds.
BUCKETS = (0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
HOLD_ROUTES = {
    ("POST", "/v1/visits/{visit_id}/authorizations"): "hold",
    ("POST", "/v1/authorizations/{authorization_id}/increments"): "increment",
}
UNMATCHED = "unmatched"


class RequestMetrics:
    """The counts only this process sees, on `registry`."""

    def __init__(self, registry: CollectorRegistry | None):
        labels = ("route", "method", "partner_kind", "status")
        self.requests = Counter(
            "credithub_http_requests",
            "Requests answered, by route template, method, partner kind and status.",
            labels,
            registry=registry,
        )
        self.latency = Histogram(
            "credithub_http_request_duration_seconds",
            "Time from a request's arrival to the end of its answer, by route template, "
            "method, partner kind and status.",
            labels,
            buckets=BUCKETS,
            registry=registry,
        )
        self.holds_placed = Counter(
            "credithub_holds_placed",
            "Holds placed (operation=hold) and raised (operation=increment) through the API.",
            ("operation",),
            registry=registry,
        )
        self._series: dict[tuple[str, str, str, int], tuple[Any, Any]] = {}
        self.holds_refused = Counter(
            "credithub_holds_refused",
            "Holds and increments refused, by the problem's code (insufficient_credit, ...).",
            ("operation", "reason"),
            registry=registry,
        )

    def series(self, route: str, method: str, kind: str, status: int) -> tuple[Any, Any]:
        """The request's counter and histogram (looked up once per label set: the
        client's `labels()` costs microseconds a call, on every request)."""
        key = (route, method, kind, status)
        found = self._series.get(key)
        if found is None:
            labels = (route, method, kind, str(status))
            found = self._series[key] = (
                self.requests.labels(*labels),
                self.latency.labels(*labels),
            )
        return found


def _route_of(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else UNMATCHED


class ObservedRequests:
    """ASGI middleware: the request's metrics and its access log line, after its answer.

    Runs inside RequestIdMiddleware, so the line carries the request id. `after`
    runs after each request (the multiprocess pool gauges)."""

    def __init__(
        self,
        app: ASGIApp,
        metrics: RequestMetrics,
        after: Callable[[], None] | None = None,
    ):
        self.app, self.metrics, self.after = app, metrics, after

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        answer = {"status": 500, "replayed": False}
        problem: list[bytes] = []

        async def send_observed(message: Message) -> None:
            if message["type"] == "http.response.start":
                answer["status"] = message["status"]
                answer["replayed"] = (b"idempotent-replayed", b"true") in message.get("headers", [])
            elif message["type"] == "http.response.body" and answer["status"] >= 400:
                problem.append(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, send_observed)
        finally:
            self._record(scope, int(answer["status"]), bool(answer["replayed"]), problem, started)

    def _record(
        self, scope: Scope, status: int, replayed: bool, problem: list[bytes], started: float
    ) -> None:
        seconds = time.perf_counter() - started
        route, method = _route_of(scope), scope["method"]
        state = scope.get("state") or {}
        kind = state.get("partner_kind", "none")
        count, latency = self.metrics.series(route, method, kind, status)
        count.inc()
        latency.observe(seconds)
        operation = HOLD_ROUTES.get((method, route))
        if operation is not None and not replayed:
            if status < 300:
                self.metrics.holds_placed.labels(operation).inc()
            elif status < 500:
                reason = _problem_code(b"".join(problem))
                self.metrics.holds_refused.labels(operation, reason).inc()
        if self.after is not None:
            self.after()
        access.info(
            "%s %s %s %.1f ms",
            method,
            route,
            status,
            seconds * 1000,
            extra={
                "method": method,
                "route": route,
                "status": status,
                "duration_ms": round(seconds * 1000, 2),
                "partner_kind": kind,
                "partner": state.get("partner"),
            },
        )


def _problem_code(body: bytes) -> str:
    """The `code` of a problem+json answer (the hub's own, from a fixed set)."""
    try:
        code = json.loads(body).get("code")
    except (ValueError, AttributeError):
        return "unknown"
    return code if isinstance(code, str) and code.isidentifier() else "unknown"
