"""The hospitals' systems, simulated: their knobs, the partners file, and the
transaction lists (what each hospital recorded) that reconciliation reads."""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StrictInt

from simulators.knobs import Knobs, stable_fraction

SHANGHAI = dt.timezone(dt.timedelta(hours=8), "Asia/Shanghai")  # no DST since 1991
Text = Annotated[str, Field(min_length=1, max_length=128)]


class HospitalKnobs(Knobs):
    """The fault knobs, the driver's pace and the transaction list's discrepancies."""

    rate: float = Field(default=2.0, ge=0.0, le=1000.0)
    paused: bool = False
    poll_interval_s: float = Field(default=5.0, ge=0.0)
    drop_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    duplicate_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    amount_change_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    # The loan desks (simulators/traffic/lending.py) and the firms they lend to.
    loan_offer_rate: float = Field(default=0.7, ge=0.0, le=1.0)
    loan_answer_rate: float = Field(default=0.6, ge=0.0, le=1.0)
    loan_rate_position: float = Field(default=0.5, ge=0.0, le=1.0)
    firm_late_rate: float = Field(default=0.04, ge=0.0, le=1.0)
    firm_never_rate: float = Field(default=0.03, ge=0.0, le=1.0)


# Partners and the people ----------------------------------------------------------------------


@dataclass(frozen=True)
class Partners:
    """API keys of the hospitals this server plays, of the banks whose desks it plays,
    and of the channels firms apply through."""

    hospitals: dict[str, str]
    banks: dict[str, str]
    channels: dict[str, str] = field(default_factory=dict)


def load_partners(path: Path) -> Partners:
    """Read `partner_keys` and `partners` ([{kind, code, name}]) from the `up` file."""
    content = json.loads(path.read_text())
    keys: dict[str, str] = content.get("partner_keys", {})
    kinds = {p["code"]: p["kind"] for p in content.get("partners", [])}

    def of(kind: str) -> dict[str, str]:
        return {code: keys[code] for code, k in kinds.items() if k == kind and code in keys}

    return Partners(hospitals=of("hospital"), banks=of("bank"), channels=of("channel"))


class TransactionItem(BaseModel):
    """A capture or a refund as the HIS recorded it."""

    model_config = ConfigDict(extra="forbid")

    ref: Text
    kind: Literal["capture", "refund"]
    amount_fen: Annotated[StrictInt, Field(gt=0, le=10**12)]
    visit_id: Text
    hub_id: Text
    at: AwareDatetime
    business_date: dt.date | None = None
    his_visit_id: Text | None = None


def rfc3339(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def record(item: TransactionItem) -> dict[str, Any]:
    """The stored form: UTC time and the business date in Asia/Shanghai."""
    day = item.business_date or item.at.astimezone(SHANGHAI).date()
    stored = item.model_dump(mode="json", exclude_none=True)
    return {**stored, "at": rfc3339(item.at), "business_date": day.isoformat()}


class Book:
    """Each hospital's transaction list, shared by the driver thread and the server."""

    def __init__(self, codes: Sequence[str]) -> None:
        self.lock = threading.Lock()
        self.items: dict[str, list[dict[str, Any]]] = {code: [] for code in codes}

    def add(self, code: str, item: dict[str, Any]) -> None:
        with self.lock:
            self.items[code].append(item)

    def clear(self, code: str) -> None:
        with self.lock:
            self.items[code].clear()

    def of_day(self, code: str, day: str) -> list[dict[str, Any]]:
        with self.lock:
            return [dict(i) for i in self.items[code] if i["business_date"] == day]


def as_listed(knobs: HospitalKnobs, code: str, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The list as the HIS exports it, discrepancies included (fixed per item by the seed)."""
    listed: list[dict[str, Any]] = []
    for item in items:
        parts = (code, item["kind"], item["ref"])
        if stable_fraction(knobs.seed, "drop", *parts) < knobs.drop_rate:
            continue
        item = dict(item)
        if stable_fraction(knobs.seed, "amount", *parts) < knobs.amount_change_rate:
            delta = 1 + int(stable_fraction(knobs.seed, "delta", *parts) * 100)
            down = stable_fraction(knobs.seed, "sign", *parts) < 0.5 and delta < item["amount_fen"]
            item["amount_fen"] += -delta if down else delta
        listed.append(item)
        if stable_fraction(knobs.seed, "duplicate", *parts) < knobs.duplicate_rate:
            listed.append(dict(item))
    return listed


# Calling the hub ------------------------------------------------------------------------------


class Stats:
    """How many calls of each kind ended with each status (or transport error)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.counts: dict[str, Counter[str]] = {}

    def count(self, kind: str, outcome: str) -> None:
        with self.lock:
            self.counts.setdefault(kind, Counter())[outcome] += 1

    def snapshot(self) -> dict[str, dict[str, int]]:
        with self.lock:
            return {kind: dict(c) for kind, c in sorted(self.counts.items())}
