"""Test factory: an approved loan in one call, without the application flow.

It inserts the rows an accepted offer leaves behind — the firm, its consent, an
accepted application with a profile, the bank's accepted offer — and calls
`hub.loans.loans.approve`, exactly as acceptance does. Tests of what happens to
a loan after approval (disbursement, repayments, delinquency, the fund,
subsidies) start here; the application path has its own tests.

    from tests.loans.factory import approved_loan, disbursed_loan
    loan_id = approved_loan(world)                       # status approved
    loan_id = disbursed_loan(world, disbursed_at=...)    # active, through the API
    loan_id = defaulted_loan(world)                      # 90+ days past due, defaulted

Amounts default to 1,200,000 fen at 600 bps over 12 months (monthly payment
103,280 fen). The hub clock (`hub.core.clock.set_now`) must read no earlier than
the payout: a payout more than 5 minutes ahead of it is refused.
"""

from __future__ import annotations

import itertools
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from hub.core import clock
from hub.core.clock import business_date
from hub.core.db import get_engine, unit_of_work
from hub.core.ids import new_id
from hub.core.personal_data import get_vault
from hub.core.uscc import ALPHABET, check_character
from hub.loans import delinquency, loans
from models.core.tables import Consent
from models.loans.tables import (
    Answer,
    ApplicationBank,
    ApplicationStatus,
    Firm,
    LoanApplication,
    LoanOffer,
    OfferStatus,
)

PROFILE: dict[str, Any] = {
    "score": 820,
    "grade": "A",
    "industry": "manufacturing",
    "indicators": {
        "years_in_business_band": "5+",
        "tax_credit_rating": "A",
        "employees_insured_band": "10-49",
        "utilities_on_time_band": "12m+",
        "court_judgments_3y": 0,
        "penalties_3y": 0,
    },
}

_serial = itertools.count(1)


def new_uscc() -> str:
    """A valid, unique unified social credit code (letter-free body, right check)."""
    digits = f"{uuid.uuid4().int % 10**8:08d}{next(_serial) % 10**5:05d}"
    body = "9135" + "".join(ALPHABET[int(d)] for d in digits)  # 17 characters
    return body + check_character(body)


def approved_loan(
    world: Any,
    *,
    bank: str = "b1",
    channel: str = "ch",
    amount_fen: int = 1_200_000,
    annual_rate_bps: int = 600,
    term_months: int = 12,
    grade: str = "A",
    uscc: str | None = None,
    firm_name: str = "厦门测试有限公司",
    now: datetime | None = None,
) -> str:
    """The id of a new `approved` loan of `bank` (a World partner name) taken through
    `channel`, for `amount_fen` at `annual_rate_bps` over `term_months`."""
    at = now or clock.now()
    settings = world.settings
    bank_id, channel_id = world.ids[bank], world.ids[channel]
    code = uscc or new_uscc()
    with unit_of_work(get_engine(settings)) as session:
        firm = Firm(id=new_id("firm"), uscc=code, name=firm_name, created_at=at)
        consent = Consent(
            id=new_id("cns"),
            partner_id=channel_id,
            subject_hash=get_vault(settings).lookup_hash(code),
            purpose="business_loan",
            scope={"banks": ["*"]},
            text_version="test",
            granted_at=at - timedelta(days=5),
            expires_at=at + timedelta(days=365),
            withdrawn_at=None,
            created_at=at,
        )
        session.add_all([firm, consent])
        session.flush()
        application = LoanApplication(
            id=new_id("lap"),
            firm_id=firm.id,
            channel_id=channel_id,
            consent_id=consent.id,
            amount_fen=amount_fen,
            term_months=term_months,
            purpose="working capital",
            status=ApplicationStatus.ACCEPTED,
            decline_reason=None,
            profile={**PROFILE, "grade": grade},
            respond_by=at - timedelta(days=1),
            created_at=at - timedelta(days=4),
            opened_at=at - timedelta(days=4),
            decided_at=at,
        )
        session.add(application)
        session.flush()
        session.add(
            ApplicationBank(
                application_id=application.id,
                bank_id=bank_id,
                offered_at=at - timedelta(days=4),
                answer=Answer.OFFER,
                decline_reason=None,
                answered_at=at - timedelta(days=2),
            )
        )
        offer = LoanOffer(
            id=new_id("off"),
            application_id=application.id,
            bank_id=bank_id,
            product_code="TEST",
            amount_fen=amount_fen,
            annual_rate_bps=annual_rate_bps,
            term_months=term_months,
            status=OfferStatus.ACCEPTED,
            expires_at=at + timedelta(days=7),
            created_at=at - timedelta(days=2),
        )
        session.add(offer)
        session.flush()
        return loans.approve(session, application, offer, at).id


def disbursed_loan(
    world: Any,
    *,
    disbursed_at: datetime | None = None,
    bank: str = "b1",
    **kwargs: Any,
) -> str:
    """The id of a new `active` loan, paid out through the API at `disbursed_at`
    (default: now) for its offered amount; other arguments as `approved_loan`."""
    at = disbursed_at or clock.now()
    amount = kwargs.setdefault("amount_fen", 1_200_000)
    loan_id = approved_loan(world, bank=bank, now=at, **kwargs)
    response = world.post(
        bank,
        f"/v1/loans/{loan_id}/disbursements",
        {
            "amount_fen": amount,
            "bank_txn_id": f"pay-{loan_id}",
            "disbursed_at": at.astimezone(UTC).isoformat(),
        },
    )
    assert response.status_code == 201, response.text
    return loan_id


def defaulted_loan(world: Any, *, bank: str = "b1", **kwargs: Any) -> str:
    """The id of a new `defaulted` loan: paid out 130 days before the hub clock's now
    and never repaid (its first instalment 99-102 days past due), moved by the
    delinquency use case as the daily flow would (events included); other arguments
    as `approved_loan`."""
    now = clock.now()
    loan_id = disbursed_loan(world, disbursed_at=now - timedelta(days=130), bank=bank, **kwargs)
    settings = world.settings
    with unit_of_work(get_engine(settings)) as session:
        today = business_date(now, settings.business_timezone)
        delinquency.run_batch(session, [loan_id], today, settings.default_after_days_past_due, now)
    return loan_id
