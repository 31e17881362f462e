"""What the desks share: whom they act as, how they call, whom and what they remember,
the time they act at, and the tally of what they did.

Only one thread acts on a world at a time (the generator holds a lock); the
hospitals' book and the call counts are shared with the server and locked.
"""

from __future__ import annotations

import datetime as dt
import random
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from simulators.hospital_books import SHANGHAI, Book, HospitalKnobs, Partners, Stats
from simulators.traffic.calls import Answer, Caller
from simulators.traffic.firms import Firm
from simulators.traffic.people import Resident


@dataclass
class Tally:
    """What the desks did, in counts and fen."""

    approved: int = 0
    declined: int = 0
    visits: int = 0
    turned_away: int = 0  # not eligible (overdue, suspended): pays at the desk instead
    left_open: int = 0  # the patient left with holds placed: they expire by themselves
    captured_fen: int = 0
    refunded_fen: int = 0
    repaid_fen: int = 0
    applications: int = 0  # loans: firms' applications through the channel
    offers: int = 0
    not_lent: int = 0  # applications declined or expired
    loans: int = 0  # offers taken
    lent_fen: int = 0
    loan_repaid_fen: int = 0
    claims: int = 0

    def since(self, before: Tally) -> Tally:
        """What was done since `before` (a copy of this tally taken earlier)."""
        return Tally(
            **{f.name: getattr(self, f.name) - getattr(before, f.name) for f in fields(self)}
        )

    def plus(self, other: Tally) -> Tally:
        return Tally(
            **{f.name: getattr(self, f.name) + getattr(other, f.name) for f in fields(self)}
        )

    def as_dict(self) -> dict[str, int]:
        return asdict(self)

    @classmethod
    def from_dict(cls, content: dict[str, Any]) -> Tally:
        return cls(**{f.name: int(content.get(f.name, 0)) for f in fields(cls)})


@dataclass(eq=False)  # a visit is itself, whatever its fields
class Visit:
    resident: Resident
    hospital: str
    kind: str
    his_visit_id: str
    department: str
    visit_id: str | None = None
    holds: dict[str, int] = field(default_factory=dict)  # live holds: authorization id -> fen
    planned_holds: int = 1
    bill: dict[str, Any] | None = None  # sent, outcome unknown: resent as is
    bill_key: str = ""
    captured_fen: int = 0
    refunded_fen: int = 0
    refund: dict[str, Any] | None = None  # sent, outcome unknown: resent as is
    refund_key: str = ""
    refund_tries: int = 0


@dataclass(frozen=True)
class TrafficConfig:
    """Where the hub and the credit database are, and whom the desks act as."""

    hub_url: str
    bureau_url: str
    bureau_key: str
    partners: Partners
    run_tag: str  # makes references unique across runs of the same seed on one hub


def default_run_tag() -> str:
    return f"R{int(time.time()) % 36**6:06X}"


class World:
    """The desks' shared memory and means; `at` is the instant they act at (None: now)."""

    def __init__(self, config: TrafficConfig, seed: int, book: Book, stats: Stats) -> None:
        self.config, self.book = config, book
        self.rng = random.Random(seed)
        self.stopping = threading.Event()
        self.call = Caller(stats, self.stopping)
        self.residents: list[Resident] = []
        self.visits: list[Visit] = []  # checked or open
        self.closed: list[Visit] = []  # closed with something captured, newest last
        self.firms: list[Firm] = []  # applied or borrowing; done ones are dropped
        self.products_published: set[str] = set()  # banks whose desks published products
        self.tally = Tally()
        self.serial = 0
        self.at: dt.datetime | None = None
        self.knobs: Callable[[], HospitalKnobs] = HospitalKnobs  # the server's, once running

    def now(self) -> dt.datetime:
        return self.at if self.at is not None else dt.datetime.now(SHANGHAI)

    def today(self) -> dt.date:
        return self.now().astimezone(SHANGHAI).date()

    def ref(self, partner: str, letter: str) -> str:
        """A partner reference, unique per run: `XMH1-R1A2B3C-V000042`."""
        self.serial += 1
        return f"{partner}-{self.config.run_tag}-{letter}{self.serial:06d}"

    def key(self, action: str) -> str:
        self.serial += 1
        return f"his:{self.config.run_tag}:{action}:{self.serial}"

    def hospital_key(self, code: str) -> str:
        return self.config.partners.hospitals[code]

    def hospitals(self) -> list[str]:
        return sorted(self.config.partners.hospitals)

    def get(self, kind: str, path: str, key: str) -> Answer:
        return self.call(kind, "GET", f"{self.config.hub_url}/v1{path}", key)

    def post(self, kind: str, path: str, key: str, body: Any, idem: str | None = None) -> Answer:
        """A POST to the hub under a fresh Idempotency-Key, or the one given (a resend)."""
        url = f"{self.config.hub_url}/v1{path}"
        return self.call(kind, "POST", url, key, body, idem or self.key(kind))

    def put(self, kind: str, path: str, key: str, body: Any) -> Answer:
        url = f"{self.config.hub_url}/v1{path}"
        return self.call(kind, "PUT", url, key, body, self.key(kind))

    def close(self) -> None:
        """Stop: waits between retries end at once, then the connections close."""
        self.stopping.set()
        self.call.close()
