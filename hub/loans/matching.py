"""Which banks see an application, and whether a bank's offer fits (CONTRACT.md §4).

A product matches an application when the firm's score reaches its
`min_score`, the requested amount and term are within its maxima, and its
`industries` is null (any) or holds the firm's industry. The application goes
to the banks with a matching product that the firm's consent covers: its banks
list names them, or is ``["*"]`` (all banks).

An offer fits when it names one of the bank's products and stays within that
product's limits (amount, term, rate range) and within the amount the firm
asked for.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from hub.core.errors import FieldError

ALL_BANKS = "*"


@dataclass(frozen=True)
class Product:
    bank_code: str
    code: str
    min_score: int
    max_amount_fen: int
    max_term_months: int
    annual_rate_bps_min: int = 0
    annual_rate_bps_max: int = 0
    industries: frozenset[str] | None = None  # None: every industry


@dataclass(frozen=True)
class Request:
    """What matching needs of an application: the profile's score and industry, the ask."""

    score: int
    industry: str
    amount_fen: int
    term_months: int


@dataclass(frozen=True)
class Offer:
    amount_fen: int
    annual_rate_bps: int
    term_months: int


def product_matches(product: Product, request: Request) -> bool:
    return (
        request.score >= product.min_score
        and request.amount_fen <= product.max_amount_fen
        and request.term_months <= product.max_term_months
        and (product.industries is None or request.industry in product.industries)
    )


def consent_covers(consented_banks: Iterable[str], bank_code: str) -> bool:
    """Whether the firm's consent lets `bank_code` see its profile."""
    if isinstance(consented_banks, str):  # a str is an iterable of letters, not of codes
        raise TypeError("consented_banks is a list of bank codes")
    banks = set(consented_banks)
    return ALL_BANKS in banks or bank_code in banks


def matching_products(
    products: Iterable[Product], request: Request, consented_banks: Sequence[str]
) -> list[Product]:
    """The products that match, of banks the consent covers, in the order given."""
    return [
        product
        for product in products
        if product_matches(product, request) and consent_covers(consented_banks, product.bank_code)
    ]


def banks_to_offer(
    products: Iterable[Product], request: Request, consented_banks: Sequence[str]
) -> list[str]:
    """The banks the application is offered to, each once, sorted by code."""
    return sorted({p.bank_code for p in matching_products(products, request, consented_banks)})


def offer_problems(product: Product, offer: Offer, requested_amount_fen: int) -> list[FieldError]:
    """Why an offer does not fit its product or the request (empty: it fits)."""
    problems: list[FieldError] = []
    if not 1 <= offer.amount_fen <= product.max_amount_fen:
        problems.append(FieldError("amount_fen", "outside the product's amount limit"))
    elif offer.amount_fen > requested_amount_fen:
        problems.append(FieldError("amount_fen", "more than the firm asked for"))
    if not product.annual_rate_bps_min <= offer.annual_rate_bps <= product.annual_rate_bps_max:
        problems.append(FieldError("annual_rate_bps", "outside the product's rate range"))
    if not 1 <= offer.term_months <= product.max_term_months:
        problems.append(FieldError("term_months", "outside the product's term limit"))
    return problems
