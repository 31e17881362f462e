"""Settings: one object, read from the environment (prefix ``CREDITHUB_``).

Grouped per programme (`hub.core.settings`, `hub.medical.settings`, `hub.loans.settings`) and
composed here, so every variable keeps its flat name (`CREDITHUB_HOLD_TTL_...`).
Every default works on a fresh machine: a SQLite file and a key file under
``.credithub/`` next to the project, so every command works from any directory.
"""

from __future__ import annotations

import json
from functools import lru_cache

from pydantic_settings import BaseSettings, SettingsConfigDict

from hub.core.settings import PROJECT_ROOT, CoreSettings
from hub.loans.settings import LoansSettings
from hub.medical.settings import MedicalSettings

__all__ = ["PROJECT_ROOT", "Settings", "get_settings"]


class Settings(CoreSettings, MedicalSettings, LoansSettings, BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CREDITHUB_", extra="ignore")

    def as_environment(self) -> dict[str, str]:
        """These settings as CREDITHUB_* variables, for a child process to read back."""
        environment = {}
        for name, value in self.model_dump(mode="json").items():
            if value is not None:
                text = json.dumps(value) if isinstance(value, dict | list) else str(value)
                environment[f"CREDITHUB_{name.upper()}"] = text
        return environment


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
