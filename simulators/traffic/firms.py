"""The small firms the channel makes up: valid unified social credit codes, names,
what each asks for, and how each repays its loan.

The credit-database stand-in derives each firm's record from its code, so the
firms here need only a valid code; the hub decides the rest.
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass, field

from simulators.credit_bureau import uscc_check_character

# Registration authority and kind: 91 a company (most), 92 a sole trader, N3 a
# farmers' cooperative — codes that start with a letter are valid too.
_KINDS = (("91", 0.8), ("92", 0.1), ("N3", 0.1))
_AREAS = ("350200", "350203", "350205", "350206", "350211", "350212", "350213")
_BODY = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_TRADES = ("贸易", "科技", "食品", "建材", "物流", "服装", "茶业", "电子")
HABITS = ("on_time", "early", "late", "never")  # how a firm repays
LATE_BY_DAYS = 12  # a late payer pays this long after each due date
TERMS = (6, 12, 12, 24, 36)


def firm_code(rng: random.Random) -> str:
    kind = rng.choices([k for k, _ in _KINDS], weights=[w for _, w in _KINDS])[0]
    body = "".join(rng.choice(_BODY) for _ in range(9))
    first17 = f"{kind}{rng.choice(_AREAS)}{body}"
    return first17 + uscc_check_character(first17)


def pays_on(habit: str, due: dt.date) -> dt.date | None:
    """When a firm of this habit pays an instalment due on `due` (None: never)."""
    if habit == "never":
        return None
    if habit == "late":
        return due + dt.timedelta(days=LATE_BY_DAYS)
    return due


@dataclass(eq=False)  # a firm is itself, whatever its fields
class Firm:
    """A firm the channel knows, from its application on."""

    uscc: str
    name: str
    amount_fen: int
    term_months: int
    habit: str
    application_id: str | None = None
    status: str = "new"  # new, applied, borrowing, done (declined or expired: done)
    loan_id: str | None = None
    bank_code: str | None = None
    disbursed: bool = False
    claimed: bool = False
    paid_off_early: bool = False
    looked_at: dict[str, int] = field(default_factory=dict)  # bank code -> looks before answering


def new_firm(rng: random.Random, habits: tuple[float, float, float, float]) -> Firm:
    """A firm asking for 100,000 to 3,000,000 yuan, with a repayment habit drawn by weight."""
    return Firm(
        uscc=firm_code(rng),
        name=f"厦门{rng.choice('鹭岛海湾同安翔安集美思明')}{rng.choice(_TRADES)}有限公司",
        amount_fen=rng.randrange(100_000, 3_000_000, 10_000) * 100,
        term_months=rng.choice(TERMS),
        habit=rng.choices(HABITS, weights=habits)[0],
    )
