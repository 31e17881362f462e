"""Each route as an OpenAPI operation: every response it can give, and its inputs'
real formats (CONTRACT.md §1).

Partners generate clients from /openapi.json, so an operation declares its
success body, each problem+json status with the `code`s it can carry (as an enum),
the headers of the contract (`Idempotency-Key`, `Idempotent-Replayed`,
`Retry-After`, `WWW-Authenticate`, `X-Request-Id`), and links from an object's
creation to the operations on it. Descriptions follow the code: they say what it
accepts, never less (the contract fixes the inputs and the order of errors).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from integrations.endpoints.response_schemas import Schema, ref

if TYPE_CHECKING:
    from integrations.endpoints.routing import Route

KINDS = frozenset({"hospital", "bank", "channel", "operator"})

PROBLEM: Schema = {
    "type": "object",
    "description": "RFC 9457 problem details; `code` is the stable, machine-readable part.",
    "required": ["type", "title", "status", "code", "detail"],
    "properties": {
        "type": {"type": "string", "format": "uri"},
        "title": {"type": "string"},
        "status": {"type": "integer", "minimum": 400, "maximum": 599},
        "code": {"type": "string"},
        "detail": {"type": "string"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["field", "message"],
                "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
            },
        },
        "existing_id": {"type": "string", "description": "the object a 409 names"},
    },
}

# HTTP drops a header value's surrounding spaces, so a key that starts or ends with
# one cannot be sent as it is: 1-255 printable ASCII, a space only inside.
IDEMPOTENCY_KEY: Schema = {
    "type": "string",
    "minLength": 1,
    "maxLength": 255,
    "pattern": r"^[\x21-\x7e]([\x20-\x7e]{0,253}[\x21-\x7e])?$",
}

_REQUEST_ID = {
    "description": "the request's id: the client's own X-Request-Id if valid, else a new one",
    "required": True,
    "schema": {"type": "string", "pattern": r"^[A-Za-z0-9._:-]{1,128}$"},
}
_REPLAYED = {
    "description": "`true` when this is the stored answer to an earlier request with the key",
    "schema": {"type": "string", "enum": ["true"]},
}

# Path parameters: the hub's ids (`hub.core.ids`). Any other text is simply no
# such object (404), so the pattern describes what can be found, not a 422.
_ID_PREFIX = {
    "credit_line_id": "cl",
    "visit_id": "vis",
    "authorization_id": "auth",
    "refund_id": "ref",
    "repayment_id": "rpy",
    "enrollment_id": "enr",
    "consent_id": "cns",
    "settlement_id": "stl",
    "application_id": "lap",
    "offer_id": "lof",
    "loan_id": "loan",
}
_PATH_SCHEMAS: dict[str, Schema] = {
    name: {"type": "string", "pattern": f"^{prefix}_[0-9a-hjkmnp-tv-z]{{26}}$"}
    for name, prefix in _ID_PREFIX.items()
} | {"code": {"type": "string", "pattern": r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"}}

# Query parameters shared by the lists (`hub.core.pagination`).
QUERY: dict[str, dict[str, Any]] = {
    "limit": {
        "name": "limit",
        "in": "query",
        "schema": {"type": "integer", "minimum": 1, "maximum": 100, "default": 20},
    },
    "cursor": {
        "name": "cursor",
        "in": "query",
        "description": "the `next_cursor` of the page before",
        "schema": {"type": "string"},
    },
}

_RETRY_AFTER = {
    "description": "seconds to wait before retrying",
    "required": True,
    "schema": {"type": "integer", "minimum": 1},
}

_COMMON_TITLES = {
    400: "Idempotency-Key missing or not 1-255 printable ASCII characters",
    401: "No valid API key",
    402: "Not enough available credit",
    403: "Not open to the caller's kind of partner",
    404: "No such object (or not visible to the caller)",
    409: "Conflicts with the object's state, a reference, or a request still running",
    413: "The body is over 1 MiB",
    415: "The body is not JSON",
    422: "Invalid input",
    429: "Over the partner's rate or concurrency limit, or its address's lookups of unknown keys",
    500: "The hub failed; retry",
    503: "Every connection of the API process is busy (answered by the server, not the app)",
}


def problems_of(route: Route) -> dict[int, list[str]]:
    """Every error status the route can answer, each with its codes, in the
    order the pipeline (`integrations.endpoints.pipeline`) checks them."""
    found: dict[int, list[str]] = {401: ["unauthenticated"], 429: ["rate_limited"]}
    if route.kinds != KINDS:
        found[403] = ["forbidden"]
    # A NUL in any query parameter is refused before the body is read.
    found[422] = ["validation_failed"]
    if route.method == "POST":
        found[400] = ["idempotency_key_missing", "idempotency_key_invalid"]
        found[409] = ["request_in_progress"]
        found[422].append("idempotency_key_reused")
    if route.body is not None:
        found[413] = ["payload_too_large"]
        found[415] = ["unsupported_media_type"]
    if "{" in route.path:
        found.setdefault(404, []).append("not_found")
    for status, codes in route.problems.items():
        known = found.setdefault(status, [])
        known.extend(code for code in codes if code not in known)
    found[500] = ["internal_error"]
    found[503] = ["too_many_connections"]  # credithub/http_protocol.py, at its connection cap
    return dict(sorted(found.items()))


def _problem_response(status: int, codes: list[str], headers: dict[str, Any]) -> dict[str, Any]:
    schema = {
        "allOf": [
            ref("Problem"),
            {"type": "object", "properties": {"code": {"type": "string", "enum": codes}}},
        ]
    }
    return {
        "description": f"{_COMMON_TITLES.get(status, 'Error')}: {', '.join(codes)}",
        "headers": headers,
        "content": {"application/problem+json": {"schema": schema}},
    }


def responses(route: Route) -> dict[str, Any]:
    """The route's success answers and its problem+json answers."""
    post = route.method == "POST"
    success_headers: dict[str, Any] = {"X-Request-Id": _REQUEST_ID}
    if post:
        success_headers["Idempotent-Replayed"] = _REPLAYED
    success: dict[str, Any] = {"description": route.summary, "headers": success_headers}
    if route.response is not None:
        success["content"] = {"application/json": {"schema": ref(route.response)}}
    if route.links:
        success["links"] = {target: _link(target, fields) for target, fields in route.links.items()}
    answers: dict[str, Any] = {str(status): success for status in (route.status, *route.also)}
    for status, codes in problems_of(route).items():
        headers: dict[str, Any] = {"X-Request-Id": _REQUEST_ID}
        if status == 503:  # refused before any request was read: no request id
            headers = {"Retry-After": _RETRY_AFTER}
        elif status == 401:
            headers["WWW-Authenticate"] = {
                "description": "the scheme to authenticate with",
                "required": True,
                "schema": {"type": "string", "enum": ["Bearer"]},
            }
        elif status == 429:
            headers["Retry-After"] = _RETRY_AFTER
        elif post and status in (402, 409):  # stored outcomes, replayed like successes
            headers["Idempotent-Replayed"] = _REPLAYED
        answers[str(status)] = _problem_response(status, codes, headers)
    return answers


def _link(target: str, fields: Mapping[str, str]) -> dict[str, Any]:
    """A link to operation `target`: each of its parameters (`body.NAME` for a field
    of its body) taken from a field of this answer."""
    link: dict[str, Any] = {"operationId": target}
    parameters = {k: f"$response.body#/{v}" for k, v in fields.items() if "." not in k}
    body = {k[5:]: f"$response.body#/{v}" for k, v in fields.items() if k.startswith("body.")}
    if parameters:
        link["parameters"] = parameters
    if body:
        link["requestBody"] = body
    return link


def parameters(route: Route, path_params: list[str]) -> list[dict[str, Any]]:
    params: list[dict[str, Any]] = [
        {
            "name": name,
            "in": "path",
            "required": True,
            "schema": _PATH_SCHEMAS.get(name, {"type": "string"}),
        }
        for name in path_params
    ]
    params += [QUERY[item] if isinstance(item, str) else item for item in route.query]
    if route.method == "POST":
        params.append(
            {
                "name": "Idempotency-Key",
                "in": "header",
                "required": True,
                "description": "the same key on the same request answers the first response again",
                "schema": IDEMPOTENCY_KEY,
            }
        )
    return params


def components(route_schemas: Mapping[str, Schema]) -> dict[str, Schema]:
    """Component schemas the operations refer to: the bodies, the answers, Problem."""
    return {**route_schemas, "Problem": PROBLEM}
