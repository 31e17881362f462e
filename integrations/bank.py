"""Client of a partner bank: credit lines for enrolled residents, payouts to hospitals,
statements, and firms' interest subsidies.

Each request that moves money or opens a line carries an Idempotency-Key the
caller derives from its own ids (`payout:<settlement line id>`,
`subsidy:<subsidy id>`), so a retry
or a rerun of a flow gets the bank's first answer instead of a second payment.
"""

from __future__ import annotations

import datetime as dt

from pydantic import TypeAdapter

from integrations.partner_client import PartnerClient, segment
from models.loans.fund_schemas import SubsidyPayout
from models.medical.partner_records import CreditLineDecision, Payout, Statement

_DECISION: TypeAdapter[CreditLineDecision] = TypeAdapter(CreditLineDecision)
_PAYOUT = TypeAdapter(Payout)
_STATEMENT = TypeAdapter(Statement)
_SUBSIDY = TypeAdapter(SubsidyPayout)


class BankClient(PartnerClient):
    partner = "bank"

    def request_credit_line(
        self,
        *,
        enrollment_id: str,
        id_number: str,
        name: str,
        phone: str | None,
        requested_limit_fen: int,
        score: int,
        idempotency_key: str,
    ) -> CreditLineDecision:
        """Ask the bank to open a line: approved (maybe for less) or declined."""
        body = {
            "enrollment_id": enrollment_id,
            "id_number": id_number,
            "name": name,
            "phone": phone,
            "requested_limit_fen": requested_limit_fen,
            "score": score,
        }
        return self._call(
            "request_credit_line",
            "POST",
            "/credit-lines",
            _DECISION,
            body=body,
            idempotency_key=idempotency_key,
        )

    def pay(
        self,
        *,
        payout_id: str,
        hospital_code: str,
        amount_fen: int,
        value_date: dt.date,
        idempotency_key: str,
    ) -> Payout:
        """Instruct a payout to a hospital; a repeat of the same payout id never pays twice."""
        body = {
            "payout_id": payout_id,
            "hospital_code": hospital_code,
            "amount_fen": amount_fen,
            "value_date": value_date.isoformat(),
        }
        return self._call(
            "pay", "POST", "/payouts", _PAYOUT, body=body, idempotency_key=idempotency_key
        )

    def payout(self, payout_id: str) -> Payout | None:
        """The payout as the bank has it; None when the bank never received it."""
        return self._lookup("payout", f"/payouts/{segment(payout_id)}", _PAYOUT)

    def statement(self, date: dt.date) -> Statement:
        """The bank's statement of one value date."""
        return self._call("statement", "GET", f"/statements/{date.isoformat()}", _STATEMENT)

    def pay_subsidy(
        self,
        *,
        subsidy_id: str,
        loan_id: str,
        uscc: str,
        amount_fen: int,
        month: str,
        idempotency_key: str,
    ) -> SubsidyPayout:
        """Instruct the bank to pay a firm its interest subsidy; a repeat of the same
        subsidy id never pays twice."""
        body = {
            "subsidy_id": subsidy_id,
            "loan_id": loan_id,
            "uscc": uscc,
            "amount_fen": amount_fen,
            "month": month,
        }
        return self._call(
            "pay_subsidy",
            "POST",
            "/subsidy-payouts",
            _SUBSIDY,
            body=body,
            idempotency_key=idempotency_key,
        )
