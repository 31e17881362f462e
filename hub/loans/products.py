"""Banks' loan products (CONTRACT.md §4 Products): a bank publishes or replaces
its products by code; channels see every bank's, a bank its own. A change
applies to applications matched after it (matching reads products when it runs).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from hub.core.errors import FieldError, Invalid
from hub.core.ids import new_id
from hub.core.pagination import Page, newest_first
from hub.loans import matching
from models.core.tables import Partner
from models.loans.tables import LoanProduct

_CODE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


@dataclass(frozen=True)
class Terms:
    """A product's terms as the bank sends them."""

    name: str
    min_score: int
    max_amount_fen: int
    max_term_months: int
    annual_rate_bps_min: int
    annual_rate_bps_max: int
    industries: list[str] | None


def check_code(code: str) -> str:
    if not _CODE.fullmatch(code):
        raise Invalid(
            "a product code is 1-64 letters, digits, '.', '_' or '-'",
            errors=[FieldError("code", "1-64 letters, digits, '.', '_' or '-'")],
        )
    return code


def _check(terms: Terms) -> None:
    if terms.annual_rate_bps_min > terms.annual_rate_bps_max:
        raise Invalid(
            "annual_rate_bps_min is above annual_rate_bps_max",
            errors=[FieldError("annual_rate_bps_min", "must not exceed annual_rate_bps_max")],
        )


def put(
    session: Session, bank_id: str, code: str, terms: Terms, now: datetime
) -> tuple[LoanProduct, bool]:
    """Publish the bank's product `code`, or replace its terms: (product, created)."""
    check_code(code)
    _check(terms)
    values = {
        "name": terms.name,
        "min_score": terms.min_score,
        "max_amount_fen": terms.max_amount_fen,
        "max_term_months": terms.max_term_months,
        "annual_rate_bps_min": terms.annual_rate_bps_min,
        "annual_rate_bps_max": terms.annual_rate_bps_max,
        "industries": sorted(set(terms.industries)) if terms.industries is not None else None,
        "updated_at": now,
    }
    product = _find(session, bank_id, code)
    if product is None:
        try:
            with session.begin_nested():  # a racing PUT of the same code may insert first
                product = LoanProduct(
                    id=new_id("prd"), bank_id=bank_id, code=code, created_at=now, **values
                )
                session.add(product)
        except IntegrityError:
            product = _find(session, bank_id, code)
            assert product is not None, "the racing insert committed"
        else:
            return product, True
    for field, value in values.items():
        setattr(product, field, value)
    session.flush()
    return product, False


def _find(session: Session, bank_id: str, code: str) -> LoanProduct | None:
    return session.scalar(
        select(LoanProduct)
        .where(LoanProduct.bank_id == bank_id, LoanProduct.code == code)
        .with_for_update()
    )


def listing(
    session: Session, partner_id: str, kind: str, params: Mapping[str, str]
) -> Page[tuple[LoanProduct, str]]:
    """Products a partner may see, newest first: a bank its own, a channel every active
    bank's (a disabled bank's products are offered to no one)."""
    query = select(LoanProduct)
    if kind == "bank":
        query = query.where(LoanProduct.bank_id == partner_id)
    else:
        query = query.join(Partner, Partner.id == LoanProduct.bank_id).where(
            Partner.status == "active"
        )
    page = newest_first(session, query, LoanProduct.id, params)
    codes = dict(
        session.execute(
            select(Partner.id, Partner.code).where(
                Partner.id.in_({product.bank_id for product in page.items})
            )
        ).all()
    )
    return Page([(product, codes[product.bank_id]) for product in page.items], page.next_cursor)


def view(product: LoanProduct, bank_code: str) -> dict[str, Any]:
    """The product as the contract shows it, with its code and bank."""
    return {
        "code": product.code,
        "bank_code": bank_code,
        "name": product.name,
        "min_score": product.min_score,
        "max_amount_fen": product.max_amount_fen,
        "max_term_months": product.max_term_months,
        "annual_rate_bps_min": product.annual_rate_bps_min,
        "annual_rate_bps_max": product.annual_rate_bps_max,
        "industries": product.industries,
        "updated_at": product.updated_at,
    }


def for_matching(product: LoanProduct, bank_code: str) -> matching.Product:
    return matching.Product(
        bank_code=bank_code,
        code=product.code,
        min_score=product.min_score,
        max_amount_fen=product.max_amount_fen,
        max_term_months=product.max_term_months,
        annual_rate_bps_min=product.annual_rate_bps_min,
        annual_rate_bps_max=product.annual_rate_bps_max,
        industries=frozenset(product.industries) if product.industries is not None else None,
    )


def active_products(session: Session) -> list[matching.Product]:
    """Every active bank's products, as matching reads them now."""
    rows = session.execute(
        select(LoanProduct, Partner.code)
        .join(Partner, Partner.id == LoanProduct.bank_id)
        .where(Partner.kind == "bank", Partner.status == "active")
        .order_by(Partner.code, LoanProduct.code)
    ).all()
    return [for_matching(product, code) for product, code in rows]


def bank_product(session: Session, bank_id: str, code: str) -> matching.Product | None:
    """The bank's product `code` for checking an offer, or None."""
    row = session.execute(
        select(LoanProduct, Partner.code)
        .join(Partner, Partner.id == LoanProduct.bank_id)
        .where(LoanProduct.bank_id == bank_id, LoanProduct.code == code)
    ).first()
    return for_matching(row[0], row[1]) if row is not None else None
