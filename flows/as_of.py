"""Re-running a day: flows that take `as_of`, a business date."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from datetime import date
from typing import ParamSpec, TypeVar

from hub.context import hub_context
from hub.core import clock

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
