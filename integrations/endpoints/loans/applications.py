"""The loan application endpoints (CONTRACT.md §4): banks' products, applications,
banks' offers and declines, the firm's acceptance, and banks' monthly answers.

Where the contract is silent, these choices (the same across the hub):
- a product shows its `code`, `bank_code` and `updated_at` besides the contract's
  fields; the product list and the statistics answer as every list does
  (`{"data", "has_more", "next_cursor"}`; statistics also name the `month`);
- an offer on an application shows `offer_id`, `bank_code`, `product_code`, the
  terms, `status` (an open offer reads `expired` from `expires_at` on) and
  `expires_at`; `POST .../offers` answers with that object, `.../declines` with
  `{"application_id", "answer": "decline", "reason", "answered_at"}`;
- a consent naming a code that is no bank is a 422 `unknown_bank`, an offer naming
  a product the bank does not have a 422 `unknown_product`;
- accepting an offer of an application no longer open (another offer taken,
  declined, expired) or whose firm's consent is withdrawn or expired is a 409
  `application_not_open`, as is a bank's answer under such a consent; a bank then
  reads the application with `profile: null` and no longer lists it as awaiting
  its answer;
- besides the contract's `loan_application.offered` and `.answered`, the channel
  is told `loan_application.declined` and `loan_application.expired`, and the
  channel and the bank `loan_application.accepted`; each event's data is the
  application as its recipient's GET shows it.
"""

from __future__ import annotations

from typing import Any

from hub.core.db import Transaction
from hub.loans import answers, applications, matching, products, statistics
from hub.loans.applications import Viewer
from integrations.endpoints.pipeline import Call
from integrations.endpoints.routing import RouteTable
from models.loans import schemas

routes = RouteTable()
BANK, CHANNEL, OPERATOR = "bank", "channel", "operator"


def _viewer(call: Call) -> Viewer:
    return Viewer(call.caller.partner_id, call.caller.kind)


@routes.add(
    "PUT",
    "/v1/loan-products/{code}",
    kinds={BANK},
    body=schemas.ProductRequest,
    also=(201,),
    response="LoanProduct",
)
def put_product(call: Call, session: Transaction) -> tuple[int, Any]:
    """Publish or change one of the bank's products (201 created, 200 replaced)."""
    b = call.body
    product, created = products.put(
        session,
        call.caller.partner_id,
        call.params["code"],
        products.Terms(
            name=b.name,
            min_score=b.min_score,
            max_amount_fen=b.max_amount_fen,
            max_term_months=b.max_term_months,
            annual_rate_bps_min=b.annual_rate_bps_min,
            annual_rate_bps_max=b.annual_rate_bps_max,
            industries=b.industries,
        ),
        call.now,
    )
    return (201 if created else 200), products.view(product, call.caller.code)


@routes.add(
    "GET",
    "/v1/loan-products",
    kinds={BANK, CHANNEL},
    query=("limit", "cursor"),
    response="LoanProductPage",
)
def list_products(call: Call, session: Transaction) -> tuple[int, Any]:
    """Products: a bank its own, a channel every bank's."""
    page = products.listing(session, call.caller.partner_id, call.caller.kind, call.query)
    return 200, page.as_contract(lambda item: products.view(*item))


@routes.add(
    "POST",
    "/v1/loan-applications",
    kinds={CHANNEL},
    body=schemas.ApplicationRequest,
    status=202,
    response="LoanApplicationStarted",
    problems={409: ("application_pending",), 422: ("invalid_uscc", "unknown_bank")},
    links={
        "get_application": {"application_id": "application_id"},
        "withdraw_consent": {"consent_id": "consent_id"},
    },
)
def submit_application(call: Call, session: Transaction) -> tuple[int, Any]:
    """A firm applies, under its consent; the profiling flow takes it from here."""
    b = call.body
    application = applications.submit(
        session,
        call.vault,
        channel_id=call.caller.partner_id,
        ask=applications.Ask(
            uscc=b.uscc,
            firm_name=b.firm_name.strip(),
            amount_fen=b.amount_fen,
            term_months=b.term_months,
            purpose=b.purpose,
            granted_at=b.consent.granted_at,
            expires_at=b.consent.expires_at,
            banks=list(b.consent.banks),
        ),
        now=call.now,
    )
    return 202, {
        "application_id": application.id,
        "consent_id": application.consent_id,
        "status": application.status,
    }


@routes.add(
    "GET",
    "/v1/loan-applications/{application_id}",
    kinds={CHANNEL, BANK},
    response="LoanApplication",
)
def get_application(call: Call, session: Transaction) -> tuple[int, Any]:
    """The application, as this partner may see it."""
    viewer = _viewer(call)
    application = applications.visible(session, call.params["application_id"], viewer)
    return 200, applications.view(session, application, viewer, call.now)


@routes.add(
    "GET",
    "/v1/loan-applications",
    kinds={BANK},
    query=(
        {
            "name": "status",
            "in": "query",
            "required": True,
            "description": "only `open`: the applications awaiting this bank's answer",
            "schema": {"type": "string", "enum": ["open"]},
        },
        "limit",
        "cursor",
    ),
    response="LoanApplicationPage",
)
def list_applications(call: Call, session: Transaction) -> tuple[int, Any]:
    """Applications offered to this bank awaiting its answer (status=open)."""
    viewer = _viewer(call)
    page = applications.awaiting_answer(session, viewer.partner_id, call.query, call.now)
    return 200, page.as_contract(lambda a: applications.view(session, a, viewer, call.now))


@routes.add(
    "POST",
    "/v1/loan-applications/{application_id}/offers",
    kinds={BANK},
    body=schemas.OfferRequest,
    status=201,
    response="LoanOffer",
    problems={409: ("already_answered", "application_not_open"), 422: ("unknown_product",)},
    links={
        "accept_offer": {"offer_id": "offer_id"},
        "get_application": {"application_id": "application_id"},
    },
)
def make_offer(call: Call, session: Transaction) -> tuple[int, Any]:
    """The bank offers a loan within one of its products."""
    b = call.body
    made = answers.offer(
        session,
        bank_id=call.caller.partner_id,
        application_id=call.params["application_id"],
        product_code=b.product_code,
        terms=matching.Offer(b.amount_fen, b.annual_rate_bps, b.term_months),
        offer_valid_days=call.settings.offer_valid_days,
        now=call.now,
    )
    return 201, {
        **applications.offer_view(made, call.caller.code, call.now),
        "offer_id": made.id,
        "expires_at": made.expires_at,
    }


@routes.add(
    "POST",
    "/v1/loan-applications/{application_id}/declines",
    kinds={BANK},
    body=schemas.DeclineRequest,
    status=201,
    response="LoanDecline",
    problems={409: ("already_answered", "application_not_open")},
)
def decline(call: Call, session: Transaction) -> tuple[int, Any]:
    """The bank declines the application."""
    return 201, answers.decline(
        session,
        bank_id=call.caller.partner_id,
        application_id=call.params["application_id"],
        reason=call.body.reason,
        now=call.now,
    )


@routes.add(
    "POST",
    "/v1/offers/{offer_id}/accept",
    kinds={CHANNEL},
    body=schemas.AcceptRequest,
    status=201,
    response="LoanAccepted",
    problems={409: ("offer_expired", "application_not_open")},
    links={"get_loan": {"loan_id": "loan_id"}},
)
def accept_offer(call: Call, session: Transaction) -> tuple[int, Any]:
    """The firm takes this offer: the others lapse, and it becomes a loan."""
    loan = answers.accept(
        session, channel_id=call.caller.partner_id, offer_id=call.params["offer_id"], now=call.now
    )
    return 201, {"loan_id": loan.id, "status": loan.status}


@routes.add(
    "GET",
    "/v1/loan-statistics",
    kinds={OPERATOR, BANK},
    query=(
        {
            "name": "month",
            "in": "query",
            "required": True,
            "description": "YYYY-MM, in the business zone",
            "schema": {"type": "string", "pattern": r"^[0-9]{4}-(0[1-9]|1[0-2])$"},
        },
    ),
    response="LoanStatistics",
)
def loan_statistics(call: Call, session: Transaction) -> tuple[int, Any]:
    """Banks' answers in a month (a bank sees its own row)."""
    month = call.query.get("month")
    rows = statistics.month_of_answers(
        session,
        month,
        call.settings.business_timezone,
        call.caller.partner_id if call.caller.kind == BANK else None,
    )
    return 200, {
        "month": month,
        "data": [row.as_contract() for row in rows],
        "has_more": False,
        "next_cursor": None,
    }
