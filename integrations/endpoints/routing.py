"""A small route table: each route names who may call it, the body it takes and
what it answers.

Routes take the raw request so the pipeline, not the framework, decides the
order of errors; what they take and give is still documented in OpenAPI
(`integrations.endpoints.openapi_operations`): each route's own problem codes,
success schema and links sit here, next to its handler.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import Response

from integrations.endpoints import openapi_operations as described
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
    query: tuple[str | dict[str, Any], ...] = ()  # a shared list parameter, or one described
    before: Before | None = None  # runs first, outside the transaction
    response: str | None = None  # the success body's schema (`response_schemas.SCHEMAS`)
    problems: Mapping[int, tuple[str, ...]] = field(default_factory=dict)  # the use case's
    links: Mapping[str, Mapping[str, str]] = field(default_factory=dict)  # op id: param: field
    also: tuple[int, ...] = ()  # other success statuses


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
        also: tuple[int, ...] = (),
        query: tuple[str | dict[str, Any], ...] = (),
        before: Before | None = None,
        response: str | None = None,
        problems: Mapping[int, tuple[str, ...]] | None = None,
        links: Mapping[str, Mapping[str, str]] | None = None,
    ) -> Callable[[Handler], Handler]:
        """Register a handler. `problems`: the error codes its use case raises, by
        status (those of the pipeline are added for every route); `links`: the
        operations (by id, the handler's name) that act on what this one answers,
        each with its parameters (`body.NAME`: a field of its body) taken from
        fields of the answer."""

        def register(handler: Handler) -> Handler:
            summary = (handler.__doc__ or handler.__name__).strip().splitlines()[0]
            self.routes.append(
                Route(
                    method,
                    path,
                    handler,
                    frozenset(kinds),
                    body,
                    status,
                    summary,
                    query,
                    before,
                    response,
                    problems or {},
                    links or {},
                    also,
                )
            )
            return handler

        return register


def _openapi_extra(route: Route, schemas: dict[str, Any]) -> dict[str, Any]:
    extra: dict[str, Any] = {
        "parameters": described.parameters(route, _PARAM.findall(route.path)),
        "security": [{"bearer": []}],
        "responses": described.responses(route),
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
            operation_id=route.handler.__name__,  # what links name
        )
    return schemas
