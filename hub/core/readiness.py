"""Whether this process can serve partners: its database answers, within a short
time, and its schema is the one this code was written for (Alembic's head).

`GET /v1/health` (the contract's) says only that the database answers; a load
balancer or an orchestrator asks this before sending a process traffic.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from hub.core import migrate
from hub.core.db import Transaction, run_read_within

log = logging.getLogger("credithub.readiness")


@dataclass(frozen=True)
class Readiness:
    database: str  # "ok" or "unreachable"
    schema: str  # "current", "behind", "ahead" (migrate.schema_state) or "unknown"

    @property
    def ready(self) -> bool:
        return self.database == "ok" and self.schema == "current"


def check(engine: Engine, seconds: float) -> Readiness:
    """Ask the database, its statements stopped after `seconds`."""

    def state(session: Transaction) -> str:
        return migrate.schema_state(session.connection())

    try:
        schema = run_read_within(engine, seconds, state)
    except (SQLAlchemyError, OSError) as exc:
        # The class only: a driver's message may name hosts or statement parameters.
        log.warning("readiness: the database did not answer (%s)", type(exc).__name__)
        return Readiness("unreachable", "unknown")
    return Readiness("ok", schema)
