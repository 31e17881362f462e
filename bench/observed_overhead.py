"""What counting, timing and logging a request costs on the hot path (no network).

The same Starlette app — one route with a path parameter, behind the hub's
RequestIdMiddleware — is called directly through ASGI N times, bare and with
`integrations.endpoints.observed.ObservedRequests` (a counter, a histogram and
the access log line as JSON, written to /dev/null). The difference per request
is the overhead; best of --rounds. `bench/authorizations.py` shows it under wrk.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import time
from typing import Any

from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from hub.core import logs
from integrations.endpoints.app import RequestIdMiddleware
from integrations.endpoints.observed import ObservedRequests, RequestMetrics


async def hold(request: Request) -> Response:
    request.state.partner_kind, request.state.partner = "hospital", "XMH1"
    return Response(b'{"status":"held"}', status_code=201, media_type="application/json")


def app(observed: bool) -> Any:
    inner: Any = Starlette(
        routes=[Route("/v1/visits/{visit_id}/authorizations", hold, methods=["POST"])]
    )
    if observed:
        inner = ObservedRequests(inner, RequestMetrics(CollectorRegistry()))
    return RequestIdMiddleware(inner)


async def run(asgi: Any, n: int) -> float:
    scope = {"type": "http", "method": "POST", "path": "/v1/visits/vis_01/authorizations",
             "headers": [], "query_string": b"", "root_path": "", "scheme": "http",
             "server": ("127.0.0.1", 8000), "client": ("127.0.0.1", 1)}  # fmt: skip

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(_message: dict[str, Any]) -> None:
        return None

    started = time.perf_counter()
    for _ in range(n):
        await asgi(dict(scope), receive, send)
    return (time.perf_counter() - started) / n * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    handler = logging.StreamHandler(open("/dev/null", "w"))  # noqa: SIM115
    handler.setFormatter(logs.JsonFormatter())
    logging.getLogger().addHandler(handler)
    logging.getLogger().setLevel(logging.INFO)
    logs.lighten_records()  # as `credithub api` configures its logging
    bare, observed = app(False), app(True)
    times: dict[str, list[float]] = {"bare": [], "observed": []}
    for _ in range(args.rounds):
        times["bare"].append(asyncio.run(run(bare, args.requests)))
        times["observed"].append(asyncio.run(run(observed, args.requests)))
    for name, values in times.items():
        best, median = min(values), statistics.median(values)
        print(f"{name:>9}: best {best:6.1f} µs, median {median:6.1f} µs a request")
    overhead = min(times["observed"]) - min(times["bare"])
    print(f" overhead: {overhead:6.1f} µs a request (best against best)")


if __name__ == "__main__":
    main()
