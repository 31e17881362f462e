"""The hub in figures for operators' dashboards: both programmes, read in one go.

What flow workers decide (enrolments, settlement payouts, holds lapsing with
time, profiling and loan states) happens in other processes than the API's, so
counting it in one API process's memory would show a fraction of the truth. It
is read from the database instead, when a dashboard asks: a handful of
aggregate statements in one read-only transaction, stopped by the database
after a deadline, on the observer engine (`hub.core.db.observer_engine`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine

from hub.core.db import Transaction, run_read_within
from hub.loans import figures as loans
from hub.medical import figures as medical


@dataclass(frozen=True)
class Figures:
    medical: medical.MedicalFigures
    loans: loans.LoansFigures


def read(engine: Engine, now: datetime, seconds: float) -> Figures:
    """Every figure as of `now`; raises when the database fails or takes over `seconds`."""

    def work(session: Transaction) -> Figures:
        return Figures(medical.read(session, now), loans.read(session))

    return run_read_within(engine, seconds, work)
