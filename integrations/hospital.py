"""The client for hospitals' own systems (HIS): their transaction lists, for reconciliation."""

from __future__ import annotations

import datetime as dt
from typing import ClassVar

from pydantic import TypeAdapter

from integrations.partner_client import PartnerClient, segment
from models.medical.partner_records import HospitalTransactions

_TRANSACTIONS = TypeAdapter(HospitalTransactions)


class HospitalClient(PartnerClient):
    partner: ClassVar[str] = "hospital"

    def transactions(self, hospital_code: str, date: dt.date) -> HospitalTransactions:
        """What the hospital recorded as captured and refunded on one business date."""
        path = f"/hospitals/{segment(hospital_code)}/transactions?date={date.isoformat()}"
        return self._call("transactions", "GET", path, _TRANSACTIONS)
