"""Settings: one object, read from the environment (prefix ``CREDITHUB_``).

Every default works on a fresh machine: a SQLite file and a key file under
``.credithub/`` next to the project, so every command works from any directory.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CREDITHUB_", extra="ignore")

    home: Path = PROJECT_ROOT / ".credithub"
    database_url: str = ""  # empty: a SQLite file under `home`
    secret_key: str = ""  # empty: a key file under `home`, created on first run
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    business_timezone: str = "Asia/Shanghai"

    # Partners
    rate_limit_per_second: float = 200.0
    auth_cache_seconds: float = 5.0  # how long a key lookup is trusted in one process
    rotated_key_grace_hours: int = 24
    idempotency_retention_hours: int = 24

    # Medical credit
    hold_ttl_outpatient_hours: int = 72
    hold_ttl_inpatient_days: int = 30
    repayment_window_days: int = 15  # due date = business date of the close + this
    max_paid_at_future_seconds: int = 300

    # Enrolment rules (CONTRACT.md §2): age on the day of the decision, credit score
    # 0-1000, and the limit asked of the bank by score tier (lowest score first).
    min_age: int = 18
    min_score: int = 500
    limit_tiers: list[tuple[int, int]] = [(500, 100_000), (600, 300_000), (650, 500_000)]
    bureau_lookup_validity_hours: int = 24
    enrollment_batch_size: int = 500
    enrollment_concurrency: int = 16  # partner calls in flight at once
    enrollment_retry_seconds: int = 60  # first wait after a partner failure; doubles
    enrollment_interval_seconds: int = 10  # how often the served flow looks for work

    # Partner systems the hub calls (addresses and keys). Banks by partner code,
    # as JSON: CREDITHUB_BANK_SYSTEMS='{"XMBANK": {"url": "...", "api_key": "..."}}'
    bureau_url: str = "http://127.0.0.1:8101"
    bureau_api_key: str = "bureau-dev-key"
    bank_systems: dict[str, dict[str, str]] = {}
    hospital_systems: dict[str, dict[str, str]] = {}  # hospitals' own systems (HIS), by code

    demo_rate: float = 1.0  # actions a second the hospitals' stand-in sends under `up`

    # Collections (CONTRACT.md §2 Overdue)
    suspend_after_days_past_due: int = 3
    report_after_days_past_due: int = 30

    # Schedules of the served deployments (cron in the business zone)
    settlement_cron: str = "30 23 * * *"
    collections_cron: str = "0 9 * * *"
    hold_expiry_cron: str = "0 * * * *"

    # Webhooks (CONTRACT.md §3)
    webhook_timeout_seconds: float = 10.0
    webhook_retry_hours: int = 72
    webhook_interval_seconds: int = 15

    pool_size: int = Field(default=40, ge=1)  # PostgreSQL connections per process
    api_threads: int = Field(default=40, ge=1)  # the API's worker threads for database work

    def sqlalchemy_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.home / 'credithub.db'}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
