"""Interest subsidies paid without application (免申即享, CONTRACT.md §4).

On the 1st of each month the hub grants each eligible loan a share of the
interest its firm paid in the previous business month, and tells the loan's
bank to pay it to the firm; nobody applies. Eligible: the loan's grade (the
profile's when the loan was taken) is one of `subsidy_grades`, and the firm
was not dishonest — which it never is on a loan, since a dishonest entity is
declined before any bank sees it. The amount is `policy.subsidy_amount`:
``floor(interest × min(points, rate) / rate)``; nothing is granted when it is 0.

The money-safe sequence, as for settlement payouts: record the subsidy (one per
loan and month, by a unique key), the ledger entry (Dr subsidies:granted / Cr
bank:{B}:subsidies_due, one per bank and run for the sum of its subsidies) and
the `subsidy.granted` event, and commit; then ask
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

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Integer,
    case,
    cast,
    false,
    func,
    insert,
    literal,
    select,
    union_all,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from hub.core import clock
from hub.core.db import unit_of_work
from hub.core.ids import new_id
from hub.core.pagination import Page, newest_first
from hub.loans import accounts
from models.core.partner_errors import PartnerError, PartnerRejected
from models.core.tables import Event, EventStatus, Instant, LedgerPosting, Partner, table_of
from models.loans.fund_schemas import SubsidyPayout
from models.loans.tables import Firm, Loan, LoanRepayment, Subsidy, SubsidyStatus

if TYPE_CHECKING:
    from hub.context import HubContext

RULE = "interest_points"
FORMULA = "floor(interest_paid_fen * min(points_bps, annual_rate_bps) / annual_rate_bps)"
RULES = {RULE: FORMULA}  # a subsidy's rule, by the name it records: its formula


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
        "rule": why(item),
        "status": item.status,
    }


def why(item: Subsidy) -> dict[str, Any]:
    """The rule and the figures behind a subsidy's amount, as its recorded columns say."""
    return {
        "rule": item.rule,
        "formula": RULES[item.rule],
        "grade": item.grade,
        "dishonest": False,  # a loan's firm passed the dishonesty check (module docstring)
        "interest_paid_fen": item.interest_paid_fen,
        "annual_rate_bps": item.annual_rate_bps,
        "points_bps": item.points_bps,
        "amount_fen": item.amount_fen,
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
    """Grant the month's subsidies not granted yet; how many were granted now.

    Set-based, three statements whatever the number of loans: the subsidies
    (one aggregate of the month's repayments per loan, the rule worked out in
    SQL), then the ledger entries (one per bank), then their `subsidy.granted` events, each an
    INSERT ... SELECT. The run's rows share an id prefix (`_Run`), so the second
    and third statements read back exactly the subsidies this run inserted. A run
    racing this one cannot grant a loan's month twice: the unique key (loan,
    month) decides, and the loser's insert skips the row (ON CONFLICT DO NOTHING),
    so it posts no entry and sends no event for it.
    """
    connection = session.connection()
    dialect, run = connection.dialect.name, _Run.new()
    connection.execute(_insert_subsidies(dialect, run, month, grades, points_bps, now))
    # Counted back rather than read from rowcount, which an INSERT ... SELECT does not
    # always report through SQLAlchemy (-1 on psycopg).
    count = int(connection.scalar(select(func.count()).where(run.subsidies())) or 0)
    if count:
        connection.execute(_insert_entries(dialect, run, now))
        connection.execute(_insert_events(dialect, run, now))
    return count


# The statements of grant_month. Ids are made in SQL in the shape hub.core.ids gives
# them in Python: a run's ids start with a new id's first 18 characters (its
# millisecond and 40 random bits) and end with the row's number in 8 hexadecimal
# digits (characters of the ids' own alphabet), so they are unique, sort by creation
# time, and look like every other id.

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"  # hub.core.ids'
_NUMBER_CHARS = 8  # up to 16**8 rows a run


@dataclass(frozen=True)
class _Run:
    """The id prefixes of one run's rows: subsidies, ledger entries, events, and the
    events' rows for the channel and for the bank."""

    subsidy: str
    entry: str
    event: str
    to_channel: str
    to_bank: str

    @classmethod
    def new(cls) -> _Run:
        def prefix(kind: str) -> str:
            return new_id(kind)[:-_NUMBER_CHARS]

        return cls(prefix("sub"), prefix("je"), prefix("evt"), prefix("evd"), prefix("evd"))

    def subsidies(self) -> ColumnElement[bool]:
        """This run's subsidies (ids of one shape compare alike in any collation)."""
        return Subsidy.id.between(
            self.subsidy + _ALPHABET[0] * _NUMBER_CHARS,
            self.subsidy + _ALPHABET[-1] * _NUMBER_CHARS,
        )

    def number_of(self, subsidy_id: Any) -> ColumnElement[str]:
        """The row number part of a subsidy's id: its entry's and its event's too."""
        return func.substr(subsidy_id, len(self.subsidy) + 1, _NUMBER_CHARS)


def _numbered(dialect: str, k: ColumnElement[int]) -> ColumnElement[str]:
    """`k` as `_NUMBER_CHARS` hexadecimal digits, zero-padded (so they sort as numbers)."""
    if dialect == "postgresql":
        return func.lpad(func.to_hex(k), _NUMBER_CHARS, "0")
    return func.printf(f"%0{_NUMBER_CHARS}x", k)


def _json_object(dialect: str, pairs: dict[str, Any]) -> ColumnElement[Any]:
    builder = func.json_build_object if dialect == "postgresql" else func.json_object
    return builder(*(part for key, value in pairs.items() for part in (literal(key), value)))


def _json_false(dialect: str) -> ColumnElement[Any]:
    return false() if dialect == "postgresql" else func.json("false")


_COLUMNS = ["id", "loan_id", "bank_id", "channel_id", "month", "interest_paid_fen",
            "amount_fen", "rule", "grade", "annual_rate_bps", "points_bps", "status",
            "created_at"]  # fmt: skip


def _insert_subsidies(
    dialect: str, run: _Run, month: Month, grades: list[str], points_bps: int, now: dt.datetime
) -> Any:
    """The month's subsidies (`_computed`), inserted unless the loan's month has one.

    The unique key (loan, month) skips the loans granted already, not a NOT EXISTS
    in the SELECT: that would read the table this statement fills, and when the
    table's statistics say it is empty (a new installation's first month)
    PostgreSQL probes it with a scan per row, each longer than the last — 184 s
    for 80,000 loans instead of 0.35 s."""
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    selected = _computed(dialect, run, month, grades, points_bps, now, skip_granted=False)
    return (
        insert(table_of(Subsidy))
        .from_select(_COLUMNS, selected)
        .on_conflict_do_nothing(index_elements=["loan_id", "month"])
    )


def computed(
    session: Session, month: Month, grades: list[str], points_bps: int, now: dt.datetime
) -> list[dict[str, Any]]:
    """The month's subsidies as `grant_month` would record them now, recording nothing
    (the loans granted the month already left out)."""
    dialect = session.connection().dialect.name
    statement = _computed(dialect, _Run.new(), month, grades, points_bps, now, skip_granted=True)
    return [dict(zip(_COLUMNS, row, strict=True)) for row in session.execute(statement)]


def computing(
    dialect: str, month: Month, grades: list[str], points_bps: int, now: dt.datetime
) -> Any:
    """The statement that computes the month, `grant_month` inserts from it (the loans
    granted already are skipped by the insert): the computation alone, which
    `bench/loans.py` times against a bare aggregate."""
    return _computed(dialect, _Run.new(), month, grades, points_bps, now, skip_granted=False)


def _computed(
    dialect: str,
    run: _Run,
    month: Month,
    grades: list[str],
    points_bps: int,
    now: dt.datetime,
    *,
    skip_granted: bool,
) -> Any:
    """The month's eligible loans (those not granted yet if `skip_granted`), with their
    amount by `policy.subsidy_amount`: floor(interest × min(points, rate) / rate),
    integer division of non-negative integers; a row per subsidy in `_COLUMNS`
    order, ids numbered within the run."""
    # The month's interest per loan first (the bare aggregate itself), numbered as it
    # comes (unique; no order, which is cheaper), then joined to the loans: cheaper
    # than grouping the join, and the window numbers narrow rows.
    paid = (
        select(
            LoanRepayment.loan_id,
            cast(
                func.sum(LoanRepayment.overdue_interest_fen + LoanRepayment.current_interest_fen),
                BigInteger,
            ).label("interest"),
            func.row_number(type_=BigInteger).over().label("k"),
        )
        .where(LoanRepayment.paid_on >= month.first, LoanRepayment.paid_on < month.after)
        .group_by(LoanRepayment.loan_id)
        .subquery()
    )
    rate = Loan.annual_rate_bps
    points = case((rate < points_bps, rate), else_=literal(points_bps, Integer))
    per_loan = (
        select(
            Loan.id.label("loan_id"),
            Loan.bank_id,
            Loan.channel_id,
            Loan.grade,
            rate.label("rate"),
            paid.c.interest.label("paid"),
            (paid.c.interest * points // rate).label("amount"),
            paid.c.k,
        )
        .join(paid, paid.c.loan_id == Loan.id)
        # A loan's firm passed the dishonesty check at its profile (module docstring).
        .where(Loan.grade.in_(grades), rate > 0)
    )
    if skip_granted:
        granted = select(Subsidy.id).where(Subsidy.loan_id == Loan.id, Subsidy.month == month.label)
        per_loan = per_loan.where(~granted.exists())
    eligible = per_loan.subquery()
    return select(
        literal(run.subsidy).concat(_numbered(dialect, eligible.c.k)),
        eligible.c.loan_id,
        eligible.c.bank_id,
        eligible.c.channel_id,
        literal(month.label),
        eligible.c.paid,
        eligible.c.amount,
        literal(RULE),
        eligible.c.grade,
        eligible.c.rate,
        literal(points_bps, Integer),
        literal(str(SubsidyStatus.GRANTED)),
        literal(now, Instant),
    ).where(eligible.c.amount > 0)


def _insert_entries(dialect: str, run: _Run, now: dt.datetime) -> Any:
    """The run's entries, one per bank: Dr subsidies:granted / Cr bank:{B}:subsidies_due by
    the sum of the bank's subsidies this run granted, balanced. The subsidies are the
    detail (a subledger): the entry's ref is the run's id prefix, so an entry's subsidies
    are those of its bank whose ids start with its ref, and the books check per bank that
    the subsidies and the ledger agree. One entry per subsidy would write two legs each
    (and run the ledger's balance check for each) for nothing the subsidies do not say."""
    before, after = accounts.bank_subsidies_due("\0").split("\0")
    per_bank = (
        select(
            Subsidy.bank_id,
            cast(func.sum(Subsidy.amount_fen), BigInteger).label("total"),
            func.row_number(type_=BigInteger).over(order_by=Subsidy.bank_id).label("k"),
        )
        .where(run.subsidies())
        .group_by(Subsidy.bank_id)
        .subquery()
    )
    entry = literal(run.entry).concat(_numbered(dialect, per_bank.c.k))
    common = (literal("subsidy_grant"), literal(run.subsidy), literal(now, Instant))
    debit = select(entry, literal(accounts.SUBSIDIES_GRANTED), per_bank.c.total, *common)
    credit = select(
        entry, literal(before).concat(per_bank.c.bank_id).concat(after), -per_bank.c.total, *common
    )
    columns = ["entry_id", "account", "amount_fen", "kind", "ref", "created_at"]
    return insert(table_of(LedgerPosting)).from_select(columns, union_all(debit, credit))


def _insert_events(dialect: str, run: _Run, now: dt.datetime) -> Any:
    """`subsidy.granted` with `view(subsidy)` to the loan's channel and bank, each that
    has a webhook URL (as `events.emit` queues them): one event id, a row per recipient."""
    number = run.number_of(Subsidy.id)
    payload = _json_object(
        dialect,
        {
            "subsidy_id": Subsidy.id,
            "loan_id": Subsidy.loan_id,
            "month": Subsidy.month,
            "interest_paid_fen": Subsidy.interest_paid_fen,
            "amount_fen": Subsidy.amount_fen,
            "rule": _json_object(  # as why(subsidy) builds it
                dialect,
                {
                    "rule": Subsidy.rule,
                    "formula": literal(FORMULA),  # the one rule grant_month applies
                    "grade": Subsidy.grade,
                    "dishonest": _json_false(dialect),
                    "interest_paid_fen": Subsidy.interest_paid_fen,
                    "annual_rate_bps": Subsidy.annual_rate_bps,
                    "points_bps": Subsidy.points_bps,
                    "amount_fen": Subsidy.amount_fen,
                },
            ),
            "status": Subsidy.status,
        },
    )

    def to(recipient: Any, prefix: str) -> Any:
        return (
            select(
                literal(prefix).concat(number),
                literal(run.event).concat(number),
                literal("subsidy.granted"),
                Partner.id,
                payload,
                literal(str(EventStatus.PENDING)),
                literal(0, Integer),
                literal(now, Instant),
                literal(now, Instant),
            )
            .join(Partner, Partner.id == recipient)
            .where(run.subsidies(), Partner.webhook_url.is_not(None))
        )

    rows = union_all(to(Subsidy.channel_id, run.to_channel), to(Subsidy.bank_id, run.to_bank))
    columns = ["id", "event_id", "type", "partner_id", "payload", "status", "attempts",
               "next_attempt_at", "created_at"]  # fmt: skip
    return insert(table_of(Event)).from_select(columns, rows)


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
