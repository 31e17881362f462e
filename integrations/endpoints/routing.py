"""A small route table: each route names who may call it and the body it takes.

Routes take the raw request so the pipeline, not the framework, decides the
order of errors; their bodies and parameters are still documented in OpenAPI.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import Response

from integrations.endpoints.pipeline import Before, Handler, Pipeline

_PARAM = re.compile(r"{(\w+)}")


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    handler: Handler
    kinds: frozenset[str]
    body: type[BaseModel] | None
    status: int
    summary: str
    query: tuple[str, ...] = ()
    before: Before | None = None  # runs first, outside the transaction


@dataclass
class RouteTable:
    routes: list[Route] = field(default_factory=list)

    def add(
        self,
        method: str,
        path: str,
        *,
        kinds: set[str],
        body: type[BaseModel] | None = None,
        status: int = 200,
        query: tuple[str, ...] = (),
        before: Before | None = None,
    ) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            summary = (handler.__doc__ or handler.__name__).strip().splitlines()[0]
            self.routes.append(
                Route(method, path, handler, frozenset(kinds), body, status, summary, query, before)
            )
            return handler

        return register


def _openapi_extra(route: Route, schemas: dict[str, Any]) -> dict[str, Any]:
    params = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in _PARAM.findall(route.path)
    ]
    params += [{"name": name, "in": "query", "schema": {"type": "string"}} for name in route.query]
    if route.method == "POST":
        params.append(
            {
                "name": "Idempotency-Key",
                "in": "header",
                "required": True,
                "schema": {"type": "string"},
            }
        )
    extra: dict[str, Any] = {
        "parameters": params,
        "security": [{"bearer": []}],
        "responses": {str(route.status): {"description": "OK"}},
    }
    if route.body is not None:
        schema = route.body.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(schema.pop("$defs", {}))
        schemas[route.body.__name__] = schema
        extra["requestBody"] = {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {"$ref": f"#/components/schemas/{route.body.__name__}"}
                }
            },
        }
    return extra


def _endpoint(pipeline: Pipeline, route: Route) -> Callable[[Request], Any]:
    async def endpoint(request: Request) -> Response:
        return await pipeline.handle(
            request, route.handler, kinds=route.kinds, body_model=route.body, before=route.before
        )

    return endpoint


def mount(app: FastAPI, pipeline: Pipeline, table: RouteTable, tag: str) -> dict[str, Any]:
    """Add the table's routes to the app; returns the body schemas for OpenAPI."""
    schemas: dict[str, Any] = {}
    for route in table.routes:
        app.add_api_route(
            route.path,
            _endpoint(pipeline, route),
            methods=[route.method],
            summary=route.summary,
            tags=[tag],
            status_code=route.status,
            include_in_schema=True,
            openapi_extra=_openapi_extra(route, schemas),
            name=route.handler.__name__,
        )
    return schemas
