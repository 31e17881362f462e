"""The hub's errors: one hierarchy, each with a stable machine-readable `code`.

Only the endpoints know HTTP statuses; they map these families to them.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FieldError:
    field: str  # dotted path, e.g. "items.0.amount_fen"
    message: str


class HubError(Exception):
    code = "hub_error"
    title = "Request failed"

    def __init__(
        self, detail: str, *, code: str | None = None, errors: list[FieldError] | None = None
    ):
        super().__init__(detail)
        self.detail = detail
        if code is not None:
            self.code = code
        self.errors = errors or []


class Unauthenticated(HubError):
    code = "unauthenticated"
    title = "Missing or unknown API key"


class Forbidden(HubError):
    code = "forbidden"
    title = "Not open to this kind of partner"


class Invalid(HubError):
    """The request is well formed but breaks a rule about its values (422)."""

    code = "validation_failed"
    title = "The request is not valid"


class NotFound(HubError):
    code = "not_found"
    title = "No such object"


class Conflict(HubError):
    """The request clashes with the object's state or an earlier request (409)."""

    code = "conflict"
    title = "Conflicts with the current state"


class InsufficientCredit(HubError):
    code = "insufficient_credit"
    title = "Not enough available credit"


class DuplicateReference(Conflict):
    code = "duplicate_reference"
    title = "This reference was used for a different request"

    def __init__(self, field: str, existing_id: str):
        super().__init__(f"{field} is already used by {existing_id}")
        self.existing_id = existing_id


def not_found(what: str, object_id: str) -> NotFound:
    return NotFound(f"no {what} {object_id}")
