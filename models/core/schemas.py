"""The partner contract's conventions for request shapes (CONTRACT.md §1).

Money is `StrictInt` fen from 0 to 10^12 (operation amounts from 1): a float,
a string, a boolean, a negative or a bigger number is refused. Unknown fields
are refused by name. Instants must carry an offset.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictInt,
    StrictStr,
)

MAX_FEN = 10**12
_RFC3339 = re.compile(r"\d{4}-\d\d-\d\d[Tt ]\d\d:\d\d:\d\d(\.\d+)?([Zz]|[+-]\d\d:\d\d)")


def _rfc3339_text(value: Any) -> Any:
    if not isinstance(value, str) or not _RFC3339.fullmatch(value):
        raise ValueError("must be an RFC 3339 time with an offset, e.g. 2026-03-01T10:00:00+08:00")
    return value


def _representable_in_utc(value: datetime) -> datetime:
    try:
        return value.astimezone(UTC)
    except OverflowError as exc:
        raise ValueError("is out of range") from exc


Instant = Annotated[
    AwareDatetime, BeforeValidator(_rfc3339_text), AfterValidator(_representable_in_utc)
]
"""A point in time: RFC 3339 text with an offset (no bare numbers, no naive times)."""

Str = Annotated[StrictStr, Field(pattern=r"^[^\x00]*$")]
"""Text without NUL, which no database column can hold."""

MoneyFen = Annotated[StrictInt, Field(ge=0, le=MAX_FEN)]
"""Any amount of money in a request: whole fen, 0 to 10^12."""

AmountFen = Annotated[StrictInt, Field(ge=1, le=MAX_FEN)]
"""The amount of an operation (hold, increment, refund, repayment): at least 1 fen."""

Reference = Annotated[Str, Field(min_length=1, max_length=128)]
"""A partner-side reference, unique per partner and field."""

Text = Annotated[Str, Field(max_length=500)]

# Identity numbers and firm codes are checked by the use cases (check character
# included), which answer `invalid_id_number` / `invalid_uscc`, not a field error:
# so the shape is only described to clients here, and validation stays 1-64 chars.
IdNumber = Annotated[
    Str,
    Field(
        min_length=1,
        max_length=64,
        json_schema_extra={
            "description": "18-character resident identity number (GB 11643), check "
            "character included; a lowercase x is taken as X",
            "pattern": r"^[0-9]{17}[0-9Xx]$",
            "minLength": 18,
            "maxLength": 18,
        },
    ),
]
Uscc = Annotated[
    Str,
    Field(
        min_length=1,
        max_length=64,
        json_schema_extra={
            "description": "18-character unified social credit code (GB 32100), check "
            "character included; case is ignored",
            "pattern": r"^[0-9A-HJ-NP-RTUW-Ya-hj-np-rtuw-y]{18}$",
            "minLength": 18,
            "maxLength": 18,
        },
    ),
]
ObjectId = Annotated[Str, Field(min_length=1, max_length=64)]


class Request(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def example(body: dict[str, Any]) -> ConfigDict:
    """A request model's config with an example body for /openapi.json (the API docs
    show it; Schemathesis sends it first)."""
    return ConfigDict(extra="forbid", frozen=True, json_schema_extra={"examples": [body]})


class WithdrawConsentRequest(Request):
    # `POST /v1/consents/{id}/withdraw` takes an empty object (CONTRACT.md §5); no
    # docstring, which would become the schema's description.
    pass
