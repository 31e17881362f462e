"""The hub's HTTP API: one FastAPI app serving the partner contract under /v1."""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio.to_thread
import swagger_ui_bundle
from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hub.context import HubContext
from hub.core import logs
from hub.core.db import ping
from hub.settings import Settings, get_settings
from integrations.endpoints import consents, response_schemas
from integrations.endpoints import openapi_operations as described
from integrations.endpoints.loans import applications as loan_applications
from integrations.endpoints.loans import fund as loan_fund
from integrations.endpoints.loans import servicing as loan_servicing
from integrations.endpoints.loans import subsidies as loan_subsidies
from integrations.endpoints.medical import credit as medical
from integrations.endpoints.medical import enrollment, settlement
from integrations.endpoints.metrics import add_operator_routes, observability
from integrations.endpoints.observed import ObservedRequests
from integrations.endpoints.pipeline import Pipeline
from integrations.endpoints.problems import (
    InternalError,
    MethodNotAllowed,
    RouteNotFound,
    problem_response,
)
from integrations.endpoints.routing import mount

log = logging.getLogger("credithub.api")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


class RequestIdMiddleware:
    """Every response carries X-Request-Id: the client's own if valid, else a new one."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        sent = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
        request_id = sent if _REQUEST_ID.match(sent) else f"req_{uuid.uuid4().hex}"
        logs.request_id.set(request_id)  # every line logged for this request carries it

        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message["headers"] = [
                    *message.get("headers", []),
                    (b"x-request-id", request_id.encode("latin-1")),
                ]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception as exc:
            # Here rather than in an exception handler, so that a 500 carries the
            # request id too (Starlette runs those handlers outside all middleware).
            if started or isinstance(exc, ClientDisconnect):
                return
            log.error("unexpected %s", type(exc).__name__, exc_info=exc)
            failure = InternalError("the hub failed to handle the request; retry it")
            await problem_response(failure)(scope, receive, send_with_id)


def _methods_on(app: FastAPI, scope: Scope) -> list[str]:
    """Every method some route serves on the request's path (for a 405's `Allow`)."""
    methods: set[str] = set()
    for route in app.router.routes:
        if isinstance(route, BaseRoute) and route.matches(scope)[0] != Match.NONE:
            methods |= getattr(route, "methods", None) or set()
    return sorted(methods)


def _health_responses() -> dict[str, Any]:
    body = {"application/json": {"schema": response_schemas.ref("Health")}}
    return {
        "200": {"description": "The hub reaches its database", "content": body},
        "503": {"description": "The hub cannot reach its database", "content": body},
    }


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    ctx = HubContext.of(settings)
    pipeline = Pipeline(ctx)
    seen = observability(ctx)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        # Database work runs on worker threads; more of them than the database
        # can serve at once only contend for the GIL.
        anyio.to_thread.current_default_thread_limiter().total_tokens = settings.api_threads
        yield
        seen.close()

    app = FastAPI(
        lifespan=lifespan,
        title="credithub",
        version="1",
        description="The credit-based services integration hub: the partner API (CONTRACT.md).",
        docs_url=None,  # served below from local assets: the hub runs offline
        redoc_url=None,
    )
    app.mount("/docs-assets", StaticFiles(directory=swagger_ui_bundle.swagger_ui_path), "docs")

    @app.get("/docs", include_in_schema=False)
    def docs() -> Response:
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title="credithub API",
            swagger_js_url="/docs-assets/swagger-ui-bundle.js",
            swagger_css_url="/docs-assets/swagger-ui.css",
            swagger_favicon_url="/docs-assets/favicon-32x32.png",
        )

    app.state.pipeline = pipeline

    @app.get(
        "/v1/health",
        tags=["health"],
        summary="Can the hub reach its database?",
        operation_id="health",
        openapi_extra={"security": [], "responses": _health_responses()},
    )
    def health() -> Response:
        try:
            ping(ctx.engine)
        except Exception:
            log.exception("health check failed")
            return JSONResponse({"status": "unavailable"}, status_code=503)
        return JSONResponse({"status": "ok"})

    add_operator_routes(app, seen)  # GET /metrics and GET /v1/ready (README, Metrics)
    schemas = mount(app, pipeline, medical.routes, "medical credit")
    schemas |= mount(app, pipeline, enrollment.routes, "enrolment")
    schemas |= mount(app, pipeline, consents.routes, "consents")
    schemas |= mount(app, pipeline, settlement.routes, "settlement")
    schemas |= mount(app, pipeline, loan_applications.routes, "loan applications")
    schemas |= mount(app, pipeline, loan_fund.routes, "risk-compensation fund")
    schemas |= mount(app, pipeline, loan_subsidies.routes, "interest subsidies")
    schemas |= mount(app, pipeline, loan_servicing.routes, "loan servicing")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 405:
            allowed = ", ".join(_methods_on(app, request.scope))
            return problem_response(
                MethodNotAllowed(f"this path takes {allowed}"), headers={"Allow": allowed}
            )
        return problem_response(RouteNotFound("no such endpoint; see /docs for the API"))

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            spec = get_openapi(
                title=app.title, version=app.version, description=app.description, routes=app.routes
            )
            components = spec.setdefault("components", {})
            components.setdefault("schemas", {}).update(described.components(schemas))
            components["schemas"].update(response_schemas.SCHEMAS)
            components["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
            app.openapi_schema = spec
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    app.add_middleware(ObservedRequests, metrics=seen.requests, after=seen.after_request)
    app.add_middleware(RequestIdMiddleware)
    return app
