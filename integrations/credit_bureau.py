"""Client of the city's public credit database: person and firm records, overdue reports.

Whether the hub may ask at all (consent, purpose, reuse within 24 hours) is
the hub's decision, made before this client is called; this module only
speaks the database's HTTP API.
"""

from __future__ import annotations

import datetime as dt

from pydantic import TypeAdapter

from integrations.partner_client import PartnerClient, segment
from models.core.partner_records import FirmRecord, OverdueReceipt, PersonRecord

_PERSON = TypeAdapter(PersonRecord)
_FIRM = TypeAdapter(FirmRecord)
_RECEIPT = TypeAdapter(OverdueReceipt)


class CreditBureauClient(PartnerClient):
    partner = "credit_bureau"

    def person(self, id_number: str) -> PersonRecord | None:
        """The person's record; None when the database does not know them."""
        return self._lookup("person", f"/persons/{segment(id_number)}", _PERSON)

    def firm(self, uscc: str) -> FirmRecord | None:
        """The firm's record; None when the database does not know it."""
        return self._lookup("firm", f"/firms/{segment(uscc)}", _FIRM)

    def report_overdue(
        self,
        *,
        report_id: str,
        id_number: str,
        amount_fen: int,
        days_past_due: int,
        reported_on: dt.date,
        idempotency_key: str,
    ) -> OverdueReceipt:
        """Report a debt past due; a repeat with the same key or report id is recorded once."""
        debtor = {"id_number": id_number}
        return self._report(report_id, debtor, amount_fen, days_past_due, reported_on,
                            idempotency_key)  # fmt: skip

    def report_firm_overdue(
        self,
        *,
        report_id: str,
        uscc: str,
        amount_fen: int,
        days_past_due: int,
        reported_on: dt.date,
        idempotency_key: str,
    ) -> OverdueReceipt:
        """Report a firm's debt past due (a loan instalment), by its credit code; a
        repeat with the same key or report id is recorded once."""
        debtor = {"uscc": uscc}
        return self._report(report_id, debtor, amount_fen, days_past_due, reported_on,
                            idempotency_key)  # fmt: skip

    def _report(
        self,
        report_id: str,
        debtor: dict[str, str],
        amount_fen: int,
        days_past_due: int,
        reported_on: dt.date,
        idempotency_key: str,
    ) -> OverdueReceipt:
        body = {
            "report_id": report_id,
            **debtor,
            "amount_fen": amount_fen,
            "days_past_due": days_past_due,
            "reported_on": reported_on.isoformat(),
        }
        return self._call(
            "report_overdue",
            "POST",
            "/reports/overdue",
            _RECEIPT,
            body=body,
            idempotency_key=idempotency_key,
        )
