"""What every flow needs from the hub, built once per process from the settings."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import Engine

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
