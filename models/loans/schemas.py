"""Credit-easy loans: the contract's request shapes for products, applications,
offers and declines (CONTRACT.md §4). Rules that need the hub's data (a known
bank, a product's limits) are checked by the use cases, not here."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from models.core.schemas import AmountFen, Instant, Request, Str, Text, Uscc, example

Code = Annotated[Str, Field(min_length=1, max_length=64)]
Months = Annotated[int, Field(strict=True, ge=1, le=600)]  # up to 50 years
Bps = Annotated[int, Field(strict=True, ge=0, le=100_000)]


class ProductRequest(Request):
    model_config = example(
        {
            "name": "Tech firm credit",
            "min_score": 600,
            "max_amount_fen": 100_000_000,
            "max_term_months": 36,
            "annual_rate_bps_min": 350,
            "annual_rate_bps_max": 600,
            "industries": None,
        }
    )

    name: Annotated[Str, Field(min_length=1, max_length=200)]
    min_score: Annotated[int, Field(strict=True, ge=0, le=1000)]
    max_amount_fen: AmountFen
    max_term_months: Months
    annual_rate_bps_min: Bps
    annual_rate_bps_max: Bps
    # None: every industry; a list names at least one.
    industries: Annotated[list[Code], Field(min_length=1, max_length=200)] | None = None


class LoanConsent(Request):
    granted_at: Instant
    expires_at: Instant
    banks: Annotated[list[Code], Field(min_length=1, max_length=100)]


class ApplicationRequest(Request):
    model_config = example(
        {
            "uscc": "91350200MA3123456J",
            "firm_name": "厦门示例科技有限公司",
            "amount_fen": 50_000_000,
            "term_months": 12,
            "purpose": "working capital",
            "consent": {
                "granted_at": "2026-03-01T10:00:00+08:00",
                "expires_at": "2036-03-01T10:00:00+08:00",
                "banks": ["B1"],
            },
        }
    )

    uscc: Uscc
    firm_name: Annotated[Str, Field(min_length=1, max_length=200)]
    amount_fen: AmountFen
    term_months: Months
    purpose: Annotated[Str, Field(min_length=1, max_length=500)]
    consent: LoanConsent


class OfferRequest(Request):
    product_code: Code
    amount_fen: AmountFen
    annual_rate_bps: Bps
    term_months: Months


class DeclineRequest(Request):
    reason: Annotated[Text, Field(min_length=1)]


class AcceptRequest(Request):
    pass
