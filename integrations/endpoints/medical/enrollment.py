"""The enrolment endpoints (CONTRACT.md §2 Enrolment): start an enrolment and read
its state (a consent is withdrawn in `integrations.endpoints.consents`)."""

from __future__ import annotations

from typing import Any

from hub.core.db import Transaction
from hub.core.personal_data import normalize_id_number
from hub.medical import enrollment
from integrations.endpoints.pipeline import Call
from integrations.endpoints.problems import invalid_id_number
from integrations.endpoints.routing import RouteTable
from models.medical import schemas

routes = RouteTable()
STARTERS = {"hospital", "channel"}


@routes.add(
    "POST",
    "/v1/enrollments",
    kinds=STARTERS,
    body=schemas.EnrollmentRequest,
    status=202,
    response="EnrollmentStarted",
    problems={409: ("already_enrolled",), 422: ("invalid_id_number", "unknown_bank")},
    links={
        "get_enrollment": {"enrollment_id": "enrollment_id"},
        "withdraw_consent": {"consent_id": "consent_id"},
    },
)
def start_enrollment(call: Call, session: Transaction) -> tuple[int, Any]:
    """Start an enrolment; the enrolment flow decides it."""
    b = call.body
    id_number = normalize_id_number(b.id_number)
    if id_number is None:
        raise invalid_id_number()
    started = enrollment.start(
        session,
        call.vault,
        partner_id=call.caller.partner_id,
        id_number=id_number,
        name=b.name.strip(),
        phone=b.phone,
        bank_code=b.bank_code,
        purpose=b.consent.purpose,
        granted_at=b.consent.granted_at,
        text_version=b.consent.text_version,
        now=call.now,
    )
    return 202, {
        "enrollment_id": started.id,
        "consent_id": started.consent_id,
        "status": started.status,
    }


@routes.add("GET", "/v1/enrollments/{enrollment_id}", kinds=STARTERS, response="Enrollment")
def get_enrollment(call: Call, session: Transaction) -> tuple[int, Any]:
    """An enrolment's state and, once approved, its credit line."""
    found = enrollment.get(session, call.caller.partner_id, call.params["enrollment_id"])
    return 200, enrollment.view(session, found)
