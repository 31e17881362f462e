"""What every simulated partner system shares: its fault knobs, its door and its command line.

A simulator behaves like a real partner on a bad day when told to: it answers
late (`latency_ms`), fails (`error_rate`: 500 or 503), hangs until the caller
gives up (`timeout_rate`), or answers 200 with a body that is not JSON
(`garbage_rate`). The draws come from one `random.Random` seeded by `seed`,
so a sequence of calls behaves the same on every run. Knobs are set at start
(command-line flags) and changed at run time with `PUT /_sim/knobs`.

Only the simulators use this module; it knows nothing of the hub.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import hashlib
import hmac
import json
import random
import re
from collections.abc import Callable, Sequence
from typing import Any, Generic, Literal, TypeVar

import uvicorn
from fastapi import APIRouter, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.datastructures import Headers
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

Fault = Literal["none", "error", "timeout", "garbage"]
REQUEST_LOG_SIZE = 500
# An identity number in a path is personal data even in a simulator's request log.
_ID_IN_PATH = re.compile(r"(?<![0-9A-Za-z])([0-9]{4})[0-9]{10}([0-9]{3}[0-9Xx])(?![0-9A-Za-z])")


class Knobs(BaseModel):
    """The fault knobs every simulator has. Rates are probabilities per request."""

    model_config = ConfigDict(extra="forbid")

    seed: int = 0
    latency_ms: int = Field(default=0, ge=0)
    error_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    timeout_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    timeout_sleep_s: float = Field(default=30.0, ge=0.0)
    garbage_rate: float = Field(default=0.0, ge=0.0, le=1.0)


K = TypeVar("K", bound=Knobs)


def stable_fraction(seed: int, *parts: str) -> float:
    """A number in [0, 1) fixed by the seed and the parts, independent of call order."""
    digest = hashlib.sha256(":".join((str(seed), *parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def stable_rng(seed: int, *parts: str) -> random.Random:
    """A generator fixed by the seed and the parts: the source of a derived record."""
    digest = hashlib.sha256(":".join((str(seed), *parts)).encode()).digest()
    return random.Random(int.from_bytes(digest[:16], "big"))


def stable_token(seed: int, *parts: str, length: int = 16) -> str:
    """An upper-case hex reference fixed by the seed and the parts."""
    digest = hashlib.sha256(":".join((str(seed), *parts)).encode()).hexdigest()
    return digest[:length].upper()


def mask_path(path: str) -> str:
    return _ID_IN_PATH.sub(lambda m: f"{m.group(1)}**********{m.group(2)}", path)


def error(status: int, code: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": code, **extra}, status_code=status)


class SimState(Generic[K]):
    """A simulator's knobs, its seeded fault generator and its log of recent requests."""

    def __init__(self, knobs: K, api_key: str) -> None:
        self.knobs = knobs
        self.api_key = api_key
        self.rng = random.Random(knobs.seed)
        self.requests: collections.deque[dict[str, Any]] = collections.deque(
            maxlen=REQUEST_LOG_SIZE
        )
        self.faults: collections.Counter[str] = collections.Counter()  # injected, by kind

    def update_knobs(self, changes: dict[str, Any]) -> K:
        """Apply a partial change; a new seed restarts the fault sequence."""
        merged = type(self.knobs).model_validate({**self.knobs.model_dump(), **changes})
        if "seed" in changes:
            self.rng.seed(merged.seed)
        self.knobs = merged
        return merged

    def authorized(self, headers: Headers) -> bool:
        scheme, _, token = headers.get("authorization", "").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(
            token.encode(), self.api_key.encode()
        )

    def draw_fault(self) -> tuple[Fault, int]:
        """One draw per request, checked in order: error, timeout, garbage."""
        knobs = self.knobs
        roll = self.rng.random()
        status = self.rng.choice((500, 503))
        if roll < knobs.error_rate:
            return "error", status
        if roll < knobs.error_rate + knobs.timeout_rate:
            return "timeout", 0
        if roll < knobs.error_rate + knobs.timeout_rate + knobs.garbage_rate:
            return "garbage", 0
        return "none", 0


async def _stall(receive: Receive, seconds: float) -> Receive | None:
    """Hold the request for `seconds`; None when the caller hung up meanwhile.

    The body is read first so that the only thing left to receive is the
    caller's disconnect: a stalled request then ends when the caller gives up,
    instead of keeping the server (and its shutdown) busy for the full sleep.
    """
    body: list[Message] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        body.append(message)
        if not message.get("more_body", False):
            break
    try:
        await asyncio.wait_for(receive(), timeout=seconds)
        return None
    except TimeoutError:
        pass

    async def replay() -> Message:
        return body.pop(0) if body else await receive()

    return replay


class FaultMiddleware:
    """The door of a simulator: bearer key, request log, latency and injected faults.

    `/_sim/...` (the operator's panel) needs the key too but never suffers
    faults, so a test can always turn them off again.
    """

    def __init__(self, app: ASGIApp, state: SimState[Any]) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        path: str = scope["path"]
        if path.startswith("/_sim/"):
            if not self.state.authorized(headers):
                await _unauthorized()(scope, receive, send)
                return
            await self.app(scope, receive, send)
            return
        entry: dict[str, Any] = {
            "method": scope["method"],
            "path": mask_path(path),
            "idempotency_key": headers.get("idempotency-key"),
            "fault": "none",
            "status": None,
        }
        self.state.requests.append(entry)

        async def send_noting_status(message: Message) -> None:
            if message["type"] == "http.response.start":
                entry["status"] = message["status"]
            await send(message)

        await self._handle(scope, receive, send_noting_status, headers, entry)

    async def _handle(
        self, scope: Scope, receive: Receive, send: Send, headers: Headers, entry: dict[str, Any]
    ) -> None:
        if not self.state.authorized(headers):
            await _unauthorized()(scope, receive, send)
            return
        knobs = self.state.knobs
        if knobs.latency_ms:
            await asyncio.sleep(knobs.latency_ms / 1000)
        fault, status = self.state.draw_fault()
        entry["fault"] = fault
        if fault != "none":
            self.state.faults[fault] += 1
        if fault == "error":
            await error(status, "injected_fault")(scope, receive, send)
            return
        if fault == "garbage":
            garbage = PlainTextResponse("<html>upstream maintenance</html>", media_type="text/html")
            await garbage(scope, receive, send)
            return
        if fault == "timeout":
            stalled = await _stall(receive, knobs.timeout_sleep_s)
            if stalled is None:
                return
            receive = stalled
        await self.app(scope, receive, send)


def _unauthorized() -> Response:
    response = error(401, "unauthorized")
    response.headers["WWW-Authenticate"] = "Bearer"
    return response


def _panel(state: SimState[Any]) -> APIRouter:
    router = APIRouter(prefix="/_sim", tags=["simulator"])

    @router.get("/knobs")
    async def read_knobs() -> dict[str, Any]:
        return state.knobs.model_dump()

    @router.put("/knobs", response_model=None)
    async def change_knobs(changes: dict[str, Any]) -> dict[str, Any] | JSONResponse:
        try:
            return state.update_knobs(changes).model_dump()
        except ValidationError as exc:
            return error(422, "invalid_knobs", detail=json.loads(exc.json(include_url=False)))

    @router.get("/requests")
    async def recent_requests(limit: int = Query(default=50, ge=1, le=REQUEST_LOG_SIZE)) -> Any:
        """The last requests seen, oldest first: method, path, key and fault, never bodies."""
        return {"items": list(state.requests)[-limit:]}

    @router.get("/faults")
    async def faults_injected() -> dict[str, int]:
        """How many faults of each kind this simulator has injected since it started."""
        return {kind: state.faults[kind] for kind in ("error", "timeout", "garbage")}

    @router.delete("/requests", status_code=204)
    async def forget_requests() -> None:
        state.requests.clear()

    return router


async def _invalid_request(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    detail = [{"loc": list(e["loc"]), "msg": e["msg"]} for e in exc.errors()]
    return error(422, "invalid_request", detail=detail)


def simulator_app(title: str, state: SimState[Any]) -> FastAPI:
    """A FastAPI app with the simulator door, the knobs panel and `{"error": ...}` bodies."""
    app = FastAPI(title=title, docs_url=None, redoc_url=None)
    app.add_middleware(FaultMiddleware, state=state)
    app.add_exception_handler(RequestValidationError, _invalid_request)
    app.include_router(_panel(state))
    return app


def run_from_command_line(
    argv: Sequence[str] | None,
    description: str,
    knobs_type: type[K],
    create_app: Callable[[str, K], FastAPI],
) -> None:
    """`python -m simulators.X --port P --seed S --api-key K [--<knob> V ...]`."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--api-key", required=True)
    for name, field in knobs_type.model_fields.items():
        kind = int if field.annotation is int else float  # knobs are counts or rates
        flag = f"--{name.replace('_', '-')}"
        parser.add_argument(flag, dest=name, type=kind, default=field.default)
    args = parser.parse_args(argv)
    knobs = knobs_type.model_validate(
        {name: getattr(args, name) for name in knobs_type.model_fields}
    )
    # No access log: paths carry identity numbers, which must not reach a log line.
    uvicorn.run(
        create_app(args.api_key, knobs),
        host=args.host,
        port=args.port,
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=2,
    )
