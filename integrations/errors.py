"""How a call to a partner system can fail, as the hub's flows need to tell it apart.

- `Rejected`: the partner answered and said no (a 4xx other than 429). Retrying
  the same request will not help; the caller decides what the refusal means.
- `Unavailable`: no usable answer within the retry budget (5xx, 429, timeouts,
  connection errors). The request may or may not have taken effect, which is
  why every retry of it carries the same Idempotency-Key: retry later, safely.
- `BadResponse`: the partner answered 2xx with something we cannot read.

Each is also the matching `models.partner_errors` class, the hub's own words
for these failures, so use cases catch those without knowing about HTTP.
Messages name the partner and the operation, never personal data.
"""

from __future__ import annotations

from typing import Any

from models.core.partner_errors import (
    PartnerBadResponse,
    PartnerError,
    PartnerRejected,
    PartnerUnavailable,
)


class PartnerCallFailed(PartnerError):
    """Any failure of a call to a partner system: which partner, which operation."""

    def __init__(self, partner: str, operation: str, message: str) -> None:
        super().__init__(f"{partner} {operation}: {message}")
        self.partner = partner
        self.operation = operation


class Rejected(PartnerCallFailed, PartnerRejected):
    """The partner refused the request; `body` is its answer (parsed JSON when it was JSON)."""

    def __init__(self, partner: str, operation: str, status: int, body: Any) -> None:
        code = body.get("error") if isinstance(body, dict) else None
        reason = f"rejected with {status} ({code})" if code else f"rejected with {status}"
        super().__init__(partner, operation, reason)
        self.status = status
        self.body = body


class Unavailable(PartnerCallFailed, PartnerUnavailable):
    """Retries exhausted or deadline passed; `cause` describes the last failure."""

    def __init__(self, partner: str, operation: str, attempts: int, cause: str) -> None:
        super().__init__(partner, operation, f"unavailable after {attempts} attempt(s): {cause}")
        self.attempts = attempts
        self.cause = cause


class BadResponse(PartnerCallFailed, PartnerBadResponse):
    """A 2xx answer that is not JSON or does not match the expected shape."""

    def __init__(self, partner: str, operation: str, status: int, reason: str) -> None:
        super().__init__(partner, operation, f"unreadable {status} answer: {reason}")
        self.status = status
        self.reason = reason
