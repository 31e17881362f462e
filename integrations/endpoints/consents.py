"""The consent endpoint (CONTRACT.md §5): the partner that recorded a consent
withdraws it, and every further use stops at once — for either programme.

The withdrawal and what it ends are one transaction: a loan application still
`profiling` or `open` under the consent is declined `consent_expired` there and
then (`hub.loans.consents`), so no bank sees the firm's profile again, answers
it, or has its offer taken. Withdrawing twice changes and announces nothing.
"""

from __future__ import annotations

from typing import Any

from hub.core import consent
from hub.core.db import Transaction
from hub.loans import consents as loan_consents
from integrations.endpoints.pipeline import Call
from integrations.endpoints.routing import RouteTable
from models.core import schemas

routes = RouteTable()
RECORDERS = {"hospital", "channel"}  # who records consents: enrolments, loan applications


@routes.add(
    "POST",
    "/v1/consents/{consent_id}/withdraw",
    kinds=RECORDERS,
    body=schemas.WithdrawConsentRequest,
    response="Consent",
)
def withdraw_consent(call: Call, session: Transaction) -> tuple[int, Any]:
    """Withdraw a consent: every further use stops at once."""
    withdrawn = consent.withdraw(
        session,
        partner_id=call.caller.partner_id,
        consent_id=call.params["consent_id"],
        now=call.now,
    )
    loan_consents.consent_withdrawn(session, withdrawn.id, call.now)
    v = consent.view(withdrawn, call.now)
    return 200, {
        "consent_id": v.consent_id,
        "purpose": v.purpose,
        "status": v.status,
        "granted_at": v.granted_at,
        "withdrawn_at": v.withdrawn_at,
    }
