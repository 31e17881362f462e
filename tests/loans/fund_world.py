"""Loans for the fund's and the subsidies' tests, made by inserting rows.

Disbursement and repayments are another part's (hub/loans/servicing.py); these
tests need only a loan in a given state and the repayments it reported, so the
rows are written directly through the models: the firm, its consent, an
accepted application and offer, `loans.approve` as acceptance calls it, then the
loan's state, and `LoanRepayment` rows with their interest parts.
"""

from __future__ import annotations

import itertools
import uuid
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import update

from hub.core import clock
from hub.core.db import get_engine, unit_of_work
from hub.core.ids import new_id
from hub.core.personal_data import get_vault
from hub.core.uscc import ALPHABET, check_character
from hub.loans import loans
from models.core.tables import Consent
from models.loans.tables import (
    ApplicationStatus,
    Firm,
    Loan,
    LoanApplication,
    LoanOffer,
    LoanRepayment,
    LoanStatus,
    OfferStatus,
)

_serial = itertools.count(1)


def new_uscc() -> str:
    digits = f"{uuid.uuid4().int % 10**8:08d}{next(_serial) % 10**5:05d}"
    body = "9135" + "".join(ALPHABET[int(d)] for d in digits)
    return body + check_character(body)


def make_loan(
    world: Any,
    *,
    bank: str = "b1",
    channel: str = "ch",
    principal_fen: int = 1_200_000,
    outstanding_fen: int | None = None,
    annual_rate_bps: int = 600,
    grade: str = "A",
    status: LoanStatus = LoanStatus.ACTIVE,
) -> str:
    """A loan of `bank` (a World partner) through `channel` in `status`, owing
    `outstanding_fen` of principal (all of it by default); its id."""
    now = clock.now()
    uscc = new_uscc()
    with unit_of_work(get_engine(world.settings)) as session:
        firm = Firm(id=new_id("firm"), uscc=uscc, name="厦门测试有限公司", created_at=now)
        consent = Consent(
            id=new_id("cns"),
            partner_id=world.ids[channel],
            subject_hash=get_vault(world.settings).lookup_hash(uscc),
            purpose="business_loan",
            scope={"banks": ["*"]},
            text_version="test",
            granted_at=now - timedelta(days=5),
            expires_at=now + timedelta(days=365),
            withdrawn_at=None,
            created_at=now,
        )
        session.add_all([firm, consent])
        session.flush()
        application = LoanApplication(
            id=new_id("lap"),
            firm_id=firm.id,
            channel_id=world.ids[channel],
            consent_id=consent.id,
            amount_fen=principal_fen,
            term_months=12,
            purpose="working capital",
            status=ApplicationStatus.ACCEPTED,
            profile={"score": 820, "grade": grade},
            created_at=now,
        )
        session.add(application)
        session.flush()
        offer = LoanOffer(
            id=new_id("off"),
            application_id=application.id,
            bank_id=world.ids[bank],
            product_code="TEST",
            amount_fen=principal_fen,
            annual_rate_bps=annual_rate_bps,
            term_months=12,
            status=OfferStatus.ACCEPTED,
            expires_at=now + timedelta(days=7),
            created_at=now,
        )
        session.add(offer)
        session.flush()
        loan = loans.approve(session, application, offer, now)
        session.execute(
            update(Loan)
            .where(Loan.id == loan.id)
            .values(
                status=status,
                outstanding_principal_fen=(
                    principal_fen if outstanding_fen is None else outstanding_fen
                ),
                disbursed_on=date(2026, 1, 15),
                disbursed_at=now,
            )
        )
        return loan.id


def repaid(
    world: Any, loan_id: str, paid_on: date, *, interest_fen: int, principal_fen: int = 0
) -> str:
    """A repayment the loan's bank reported as paid at noon (business time) on `paid_on`,
    of `interest_fen` interest and `principal_fen` principal; its id."""
    zone = ZoneInfo(world.settings.business_timezone)
    paid_at = datetime.combine(paid_on, time(12), zone)
    with unit_of_work(get_engine(world.settings)) as session:
        loan = session.get(Loan, loan_id)
        assert loan is not None
        repayment = LoanRepayment(
            id=new_id("lrp"),
            loan_id=loan_id,
            bank_id=loan.bank_id,
            bank_txn_id=f"T-{uuid.uuid4().hex}",
            amount_fen=interest_fen + principal_fen,
            overdue_interest_fen=0,
            overdue_principal_fen=0,
            current_interest_fen=interest_fen,
            current_principal_fen=principal_fen,
            early_principal_fen=0,
            fund_share_fen=0,
            paid_at=paid_at,
            paid_on=paid_on,
            created_at=clock.now(),
        )
        session.add(repayment)
        return repayment.id


def fund_books_agree(settings: Any) -> bool:
    """The fund's and the subsidies' accounts agree with their rows, and the medical
    books hold (these loans are rows made here, without their payouts' entries, so
    the loans' own books are not asked)."""
    from hub.core.books import describe
    from hub.loans import fund_views
    from hub.medical import books

    with unit_of_work(get_engine(settings), write=False) as session:
        found = [*fund_views.discrepancies(session), *books.checks(session)]
    assert not found, "the books disagree with the business:\n" + describe(found)
    return True
