"""What every flow needs from the hub, built once per process from the settings."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from typing import ParamSpec, TypeVar

from sqlalchemy import Engine

from hub.core import clock
from hub.core.db import get_engine
from hub.core.personal_data import Vault, get_vault
from hub.medical.enrollment import Rules
from hub.settings import Settings, get_settings


@dataclass(frozen=True)
class HubContext:
    settings: Settings
    engine: Engine
    vault: Vault

    @property
    def enrollment_rules(self) -> Rules:
        s = self.settings
        return Rules(
            min_age=s.min_age,
            min_score=s.min_score,
            limit_tiers=s.limit_tiers,
            zone=s.business_timezone,
            lookup_validity=timedelta(hours=s.bureau_lookup_validity_hours),
            retry_after=timedelta(seconds=s.enrollment_retry_seconds),
        )


_current: HubContext | None = None


def hub_context() -> HubContext:
    """The context of this process: from the settings, unless `use()` chose others."""
    global _current
    if _current is None:
        _current = use(get_settings())
    return _current


def use(settings: Settings) -> HubContext:
    """Run the flows of this process with these settings (tests, `credithub run`)."""
    global _current
    _current = HubContext(settings, get_engine(settings), get_vault(settings))
    return _current


P = ParamSpec("P")
R = TypeVar("R")


def runs_as_of(fn: Callable[P, R]) -> Callable[P, R]:
    """A flow that takes `as_of` (a business date): for the whole run the hub's clock
    reads that date's last second in the business zone — how an operator re-runs a
    day (`credithub run FLOW --as-of DATE`). Without it, the clock runs as it was
    (a subflow inherits its parent's day). Put it under `@flow`, on a function
    that declares `as_of: date | None = None`, so the deployment shows the parameter.
    """
    signature = inspect.signature(fn)
    if "as_of" not in signature.parameters:
        raise TypeError(f"{fn.__name__} must declare an as_of parameter")

    @functools.wraps(fn)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        as_of = signature.bind(*args, **kwargs).arguments.get("as_of")
        if as_of is None:
            return fn(*args, **kwargs)
        day = as_of if isinstance(as_of, date) else date.fromisoformat(str(as_of))
        zone = hub_context().settings.business_timezone
        with clock.frozen_at(clock.end_of_business_day(day, zone)):
            return fn(*args, **kwargs)

    return run
