"""Interest subsidies paid without application (免申即享, CONTRACT.md §4).

On the 1st of each month the hub grants each eligible loan a share of the
interest its firm paid in the previous business month, and tells the loan's
bank to pay it to the firm; nobody applies. Eligible: the loan's grade (the
profile's when the loan was taken) is one of `subsidy_grades`, and the firm
was not dishonest — which it never is on a loan, since a dishonest entity is
declined before any bank sees it. The amount is `policy.subsidy_amount`:
``floor(interest × min(points, rate) / rate)``; nothing is granted when it is 0.

The money-safe sequence, as for settlement payouts: record the subsidy (one per
loan and month, by a unique key), its ledger entry (Dr subsidies:granted / Cr
bank:{B}:subsidies_due) and the `subsidy.granted` event, and commit; then ask
the bank under the key `subsidy:<subsidy id>`, and record the outcome:
`instructed`, `failed` (the bank refused it) or still `granted` (the bank was
unreachable: the next run asks again under the same key). A run grants nothing
twice and instructs only what is not instructed yet.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from hub.core import clock, events, ledger, references
from hub.core.db import unit_of_work
from hub.core.ids import new_id
from hub.core.pagination import Page, newest_first
from hub.loans import accounts, policy
from models.core.partner_errors import PartnerError, PartnerRejected
from models.core.tables import Partner
from models.loans.fund_schemas import SubsidyPayout
from models.loans.tables import Firm, Loan, LoanRepayment, Subsidy, SubsidyStatus

if TYPE_CHECKING:
    from hub.context import HubContext

RULE = "interest_points"
FORMULA = "floor(interest_paid_fen * min(points_bps, annual_rate_bps) / annual_rate_bps)"


class SubsidyBank(Protocol):
    """A bank that pays firms their subsidies on the hub's instruction (once per key)."""

    def pay_subsidy(
        self,
        *,
        subsidy_id: str,
        loan_id: str,
        uscc: str,
        amount_fen: int,
        month: str,
        idempotency_key: str,
    ) -> SubsidyPayout: ...


@dataclass(frozen=True)
class Month:
    """A business month: its first day, the first day of the next, and `YYYY-MM`."""

    first: dt.date
    after: dt.date

    @property
    def label(self) -> str:
        return f"{self.first:%Y-%m}"


def previous_month(day: dt.date) -> Month:
    """The business month before the one `day` is in (the 1st's run grants it)."""
    first_of_this = day.replace(day=1)
    return Month((first_of_this - dt.timedelta(days=1)).replace(day=1), first_of_this)


@dataclass(frozen=True)
class Order:
    """A granted subsidy for its bank to pay."""

    subsidy_id: str
    bank_code: str
    loan_id: str
    uscc: str
    amount_fen: int
    month: str

    @property
    def key(self) -> str:
        return f"subsidy:{self.subsidy_id}"


def view(item: Subsidy) -> dict[str, Any]:
    """A subsidy as `GET /v1/subsidies` lists it (and `subsidy.granted` carries it)."""
    return {
        "subsidy_id": item.id,
        "loan_id": item.loan_id,
        "month": item.month,
        "interest_paid_fen": item.interest_paid_fen,
        "amount_fen": item.amount_fen,
        "rule": item.rule,
        "status": item.status,
    }


def listed(
    session: Session, partner_id: str, kind: str, params: Mapping[str, str]
) -> Page[Subsidy]:
    """Subsidies newest first: all for operators, a channel's own firms' for a channel."""
    query = select(Subsidy)
    if kind != "operator":
        query = query.where(Subsidy.channel_id == partner_id)
    return newest_first(session, query, Subsidy.id, params)


def grant_month(
    session: Session, month: Month, grades: list[str], points_bps: int, now: dt.datetime
) -> int:
    """Grant the month's subsidies not granted yet (set-based: one aggregate of the
    month's repayments per loan); how many were granted now."""
    interest = LoanRepayment.overdue_interest_fen + LoanRepayment.current_interest_fen
    rows = session.execute(
        select(
            Loan.id,
            Loan.bank_id,
            Loan.channel_id,
            Loan.grade,
            Loan.annual_rate_bps,
            func.sum(interest),
        )
        .join(LoanRepayment, LoanRepayment.loan_id == Loan.id)
        .where(
            LoanRepayment.paid_on >= month.first,
            LoanRepayment.paid_on < month.after,
            Loan.grade.in_(grades),
            ~select(Subsidy.id)
            .where(Subsidy.loan_id == Loan.id, Subsidy.month == month.label)
            .exists(),
        )
        .group_by(Loan.id, Loan.bank_id, Loan.channel_id, Loan.grade, Loan.annual_rate_bps)
        .order_by(Loan.id)
    )
    granted = 0
    for loan_id, bank_id, channel_id, grade, rate, paid in rows:
        # A loan's firm passed the dishonesty check at its profile: see the module's docstring.
        if not policy.subsidy_eligible(grade, dishonest=False, grades=grades):
            continue
        amount = policy.subsidy_amount(int(paid), rate, points_bps)
        if amount == 0:
            continue
        rule = {
            "rule": RULE,
            "formula": FORMULA,
            "grade": grade,
            "dishonest": False,
            "interest_paid_fen": int(paid),
            "annual_rate_bps": rate,
            "points_bps": points_bps,
            "amount_fen": amount,
        }
        subsidy = Subsidy(
            id=new_id("sub"),
            loan_id=loan_id,
            bank_id=bank_id,
            channel_id=channel_id,
            month=month.label,
            interest_paid_fen=int(paid),
            amount_fen=amount,
            rule=rule,
            status=SubsidyStatus.GRANTED,
            created_at=now,
        )
        values = {c.key: getattr(subsidy, c.key) for c in Subsidy.__table__.columns}
        # A run racing this one may have granted it meanwhile: the unique key decides.
        if not references.insert_new(session, Subsidy, values):
            continue
        ledger.transfer(
            session,
            "subsidy_grant",
            subsidy.id,
            accounts.SUBSIDIES_GRANTED,
            accounts.bank_subsidies_due(bank_id),
            amount,
            now,
        )
        events.emit(session, "subsidy.granted", view(subsidy), [channel_id, bank_id], now)
        granted += 1
    return granted


def orders(session: Session) -> list[Order]:
    """Every subsidy granted and not yet instructed, of any month, oldest first."""
    rows = session.execute(
        select(Subsidy, Partner.code, Firm.uscc)
        .join(Loan, Loan.id == Subsidy.loan_id)
        .join(Firm, Firm.id == Loan.firm_id)
        .join(Partner, Partner.id == Subsidy.bank_id)
        .where(Subsidy.status == SubsidyStatus.GRANTED)
        .order_by(Subsidy.id)
    )
    return [Order(s.id, code, s.loan_id, uscc, s.amount_fen, s.month) for s, code, uscc in rows]


def _settle(session: Session, subsidy_id: str, **values: Any) -> None:
    """Record an outcome, only while the subsidy is still granted (a late answer of an
    earlier run never undoes a later one)."""
    session.execute(
        update(Subsidy)
        .where(Subsidy.id == subsidy_id, Subsidy.status == SubsidyStatus.GRANTED)
        .values(**values)
    )


# Use cases, as the loan-subsidies flow runs them: each step its own transaction.


def today(ctx: HubContext) -> dt.date:
    return clock.business_date(clock.now(), ctx.settings.business_timezone)


def grant(ctx: HubContext, month: Month) -> int:
    """Record the month's subsidies (with their entries and events) and commit."""
    s = ctx.settings
    with unit_of_work(ctx.engine) as session:
        return grant_month(
            session, month, list(s.subsidy_grades), s.subsidy_points_bps, clock.now()
        )


def to_instruct(ctx: HubContext) -> list[Order]:
    with unit_of_work(ctx.engine, write=False) as session:
        return orders(session)


def instruct(ctx: HubContext, bank: SubsidyBank, order: Order) -> str:
    """Tell the bank to pay one subsidy: instructed, failed (refused) or retry_later."""
    try:
        payout = bank.pay_subsidy(
            subsidy_id=order.subsidy_id,
            loan_id=order.loan_id,
            uscc=order.uscc,
            amount_fen=order.amount_fen,
            month=order.month,
            idempotency_key=order.key,
        )
    except PartnerRejected as exc:
        with unit_of_work(ctx.engine) as session:
            _settle(session, order.subsidy_id, status=SubsidyStatus.FAILED, last_error=_short(exc))
        return "failed"
    except PartnerError as exc:
        with unit_of_work(ctx.engine) as session:
            _settle(session, order.subsidy_id, last_error=_short(exc))  # still granted
        return "retry_later"
    with unit_of_work(ctx.engine) as session:
        _settle(
            session,
            order.subsidy_id,
            status=SubsidyStatus.INSTRUCTED,
            bank_reference=payout.bank_reference,
            instructed_at=clock.now(),
            last_error=None,
        )
    return "instructed"


def month_report(ctx: HubContext, month: Month) -> list[dict[str, Any]]:
    """The month's subsidies per bank and status: count and amount (fen)."""
    with unit_of_work(ctx.engine, write=False) as session:
        rows = session.execute(
            select(Partner.code, Subsidy.status, func.count(), func.sum(Subsidy.amount_fen))
            .join(Partner, Partner.id == Subsidy.bank_id)
            .where(Subsidy.month == month.label)
            .group_by(Partner.code, Subsidy.status)
            .order_by(Partner.code, Subsidy.status)
        )
        return [
            {"bank_code": code, "status": status, "count": int(n), "amount_fen": int(total)}
            for code, status, n, total in rows
        ]


def _short(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}"[:200]
