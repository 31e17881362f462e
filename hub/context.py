"""What every hub use case needs from the process: settings, the database, the vault.

Built once per process from the settings; flows, the API and the command line
take it from here and hand it to use cases, which open their own units of work.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

from sqlalchemy import Engine

from hub.core.db import get_engine
from hub.core.personal_data import Vault, get_vault
from hub.settings import Settings, get_settings

if TYPE_CHECKING:
    from hub.medical.enrollment import Rules


@dataclass(frozen=True)
class HubContext:
    settings: Settings
    engine: Engine
    vault: Vault

    @classmethod
    def of(cls, settings: Settings) -> HubContext:
        """A context for these settings (the process's own is left as it is)."""
        return cls(settings, get_engine(settings), get_vault(settings))

    @property
    def enrollment_rules(self) -> Rules:
        from hub.medical.enrollment import Rules  # the medical programme builds on this module

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
    """Run this process's use cases with these settings (tests, `credithub run`)."""
    global _current
    _current = HubContext.of(settings)
    return _current
