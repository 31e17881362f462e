"""What the partner systems answer: the public credit database's records and the bank's replies.

These are the shapes our outbound clients parse. Unlike our own contract's
shapes (`models/schemas.py`, which refuse unknown fields), these ignore fields
they do not know: a partner adding a field must not break the hub. Money is
integer fen and must arrive as a JSON integer.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt

Fen = Annotated[StrictInt, Field(ge=0)]


class PartnerRecord(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class PersonRecord(PartnerRecord):
    """A person as the public credit database knows them."""

    id_number: str
    name: str
    score: Annotated[int, Field(ge=0, le=1000)]
    dishonest_debtor: bool
    insured: bool


class FirmRecord(PartnerRecord):
    """A firm as the public credit database knows it."""

    uscc: str
    name: str
    registered_on: dt.date
    industry: str
    tax_credit_rating: Literal["A", "B", "M", "C", "D"]
    employees_insured: Annotated[int, Field(ge=0)]
    utilities_on_time_months: Annotated[int, Field(ge=0)]
    court_judgments_3y: Annotated[int, Field(ge=0)]
    penalties_3y: Annotated[int, Field(ge=0)]
    dishonest_entity: bool


class OverdueReceipt(PartnerRecord):
    """The database's acknowledgement of an overdue-debt report."""

    report_id: str
    status: Literal["recorded"]
