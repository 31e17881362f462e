"""Errors as RFC 9457 problem+json, and the one table from hub errors to statuses."""

from __future__ import annotations

import json
from typing import Any

from pydantic import ValidationError
from starlette.responses import Response

from hub.core.errors import (
    Conflict,
    FieldError,
    Forbidden,
    HubError,
    InsufficientCredit,
    Invalid,
    NotFound,
    Unauthenticated,
)

STATUS_BY_FAMILY: list[tuple[type[HubError], int]] = [
    (Unauthenticated, 401),
    (Forbidden, 403),
    (Invalid, 422),
    (NotFound, 404),
    (Conflict, 409),
    (InsufficientCredit, 402),
]


class ApiError(HubError):
    """An error of the HTTP layer itself, with its own status."""

    status = 400


class IdempotencyKeyMissing(ApiError):
    code = "idempotency_key_missing"
    title = "Every POST needs an Idempotency-Key header"


class IdempotencyKeyInvalid(ApiError):
    code = "idempotency_key_invalid"
    title = "Idempotency-Key must be 1-255 printable ASCII characters"


class PayloadTooLarge(ApiError):
    status = 413
    code = "payload_too_large"
    title = "The request body is over 1 MiB"


class UnsupportedMediaType(ApiError):
    status = 415
    code = "unsupported_media_type"
    title = "The request body must be JSON"


class RateLimited(ApiError):
    status = 429
    code = "rate_limited"
    title = "Too many requests"

    def __init__(self, retry_after: int, reason: str = "over the rate limit"):
        super().__init__(f"{reason}; retry after {retry_after} s")
        self.retry_after = retry_after


class RouteNotFound(ApiError):
    status = 404
    code = "not_found"
    title = "No such endpoint"


class MethodNotAllowed(ApiError):
    status = 405
    code = "method_not_allowed"
    title = "Method not allowed here"


class InternalError(ApiError):
    status = 500
    code = "internal_error"
    title = "Internal error"


class RequestInProgress(Conflict):
    code = "request_in_progress"
    title = "A request with this Idempotency-Key is still running"


class IdempotencyKeyReused(Invalid):
    code = "idempotency_key_reused"
    title = "This Idempotency-Key was used for a different request"


def status_of(error: HubError) -> int:
    if isinstance(error, ApiError):
        return error.status
    for family, status in STATUS_BY_FAMILY:
        if isinstance(error, family):
            return status
    return 500


def problem_body(error: HubError) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": f"https://credithub.dev/problems/{error.code}",
        "title": error.title,
        "status": status_of(error),
        "code": error.code,
        "detail": error.detail,
    }
    if error.errors:
        body["errors"] = [{"field": e.field, "message": e.message} for e in error.errors]
    existing = getattr(error, "existing_id", None)
    if existing:
        body["existing_id"] = existing
    return body


def problem_text(error: HubError) -> str:
    return json.dumps(problem_body(error), ensure_ascii=False)


def problem_response(error: HubError, headers: dict[str, str] | None = None) -> Response:
    headers = dict(headers or {})
    if isinstance(error, Unauthenticated):
        headers["WWW-Authenticate"] = "Bearer"
    if isinstance(error, RateLimited):
        headers["Retry-After"] = str(error.retry_after)
    return Response(
        problem_text(error),
        status_code=status_of(error),
        media_type="application/problem+json",
        headers=headers,
    )


def validation_error(exc: ValidationError) -> Invalid:
    """Pydantic's errors as the contract's dotted field paths (never echoing input)."""
    fields = [
        FieldError(".".join(str(part) for part in err["loc"]) or "body", err["msg"])
        for err in exc.errors(include_url=False, include_input=False)
    ]
    names = ", ".join(f.field for f in fields[:5])
    return Invalid(f"invalid fields: {names}", errors=fields)


def invalid_id_number(field: str = "id_number") -> Invalid:
    """An identity number that fails GB 11643 (never echoed back)."""
    return Invalid(
        f"{field} is not a valid resident identity number (GB 11643)",
        code="invalid_id_number",
        errors=[FieldError(field, "not a valid 18-character identity number")],
    )
