"""The shared core's settings: where the data lives, the API, partners,
idempotency, the credit database and the banks' systems, webhooks.

A mixin of `hub.settings.Settings`: every field keeps its flat
``CREDITHUB_<NAME>`` environment variable.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

PROJECT_ROOT = Path(__file__).resolve().parent.parent.parent
DEFAULT_SQLITE_FILE = "credithub.db"  # in the home folder, when no database URL is set


class CoreSettings(BaseModel):
    home: Path = PROJECT_ROOT / ".credithub"
    database_url: str = ""  # empty: a SQLite file under `home`
    secret_key: str = ""  # empty: a key file under `home`, created on first run
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    # Where `credithub up` has the Prefect server listen; beyond loopback it requires
    # PREFECT_SERVER_API_AUTH_STRING (credithub/prefect_access.py).
    prefect_host: str = "127.0.0.1"
    # Slow clients (credithub/http_protocol.py): a request's head must arrive within
    # the header timeout, head and body within the request timeout; each API process
    # keeps at most this many connections open.
    api_header_timeout_seconds: float = Field(default=5.0, gt=0)
    api_request_timeout_seconds: float = Field(default=30.0, gt=0)
    api_max_connections: int = Field(default=2000, ge=1)
    business_timezone: str = "Asia/Shanghai"

    # Partners
    rate_limit_per_second: float = 200.0
    # How long a key lookup is trusted in one process: a disabled partner or a
    # lapsed key is refused by every API process within this time.
    auth_cache_seconds: float = 5.0
    # Lookups of keys never seen, per client address: a flood of guessed keys
    # stays off the database.
    unknown_key_lookups_per_second: float = 20.0
    # A partner's requests doing database work at once (per API process, or over
    # all of them with `redis_url`); more
    # wait up to `partner_queue_seconds` (then 429), so no partner takes the
    # threads and connections the others need.
    partner_concurrency: int = Field(default=8, ge=0)
    partner_queue_seconds: float = Field(default=2.0, gt=0)
    # Several API processes: empty keeps the limits above per process (one
    # process, `up`'s default); a Redis URL makes every process on it count
    # together (integrations/endpoints/shared_guards.py). A slot's lease is how
    # long a process killed mid-request keeps its slots taken.
    redis_url: str = ""
    redis_key_prefix: str = "credithub"
    partner_slot_lease_seconds: float = Field(default=10.0, gt=0)
    rotated_key_grace_hours: int = 24
    idempotency_retention_hours: int = 24

    # The public credit database (CONTRACT.md §5): lookups reused for this long.
    bureau_lookup_validity_hours: int = 24

    # Partner systems the hub calls (addresses and keys). Banks by partner code,
    # as JSON: CREDITHUB_BANK_SYSTEMS='{"XMBANK": {"url": "...", "api_key": "..."}}'
    bureau_url: str = "http://127.0.0.1:8101"
    bureau_api_key: str = "bureau-dev-key"
    bank_systems: dict[str, dict[str, str]] = {}

    # Webhooks (CONTRACT.md §3)
    webhook_timeout_seconds: float = 10.0
    webhook_retry_hours: int = 72
    webhook_interval_seconds: int = 15

    # Flow runs the flow runner (`up`'s flows part, flows/serve.py) or a worker
    # (`credithub worker`) runs at once.
    flow_runs_at_once: int = Field(default=4, ge=1)
    # Prefect's own database (postgresql+asyncpg://...); empty: beside the hub's
    # when that is PostgreSQL (`<name>_prefect`), else SQLite (credithub/prefect_roles.py).
    prefect_database_url: str = ""
    # Every flow run's heartbeat (Prefect's minimum is 30 s); a run that misses
    # three is marked Crashed (its worker's machine died).
    flow_heartbeat_seconds: int = Field(default=30, ge=30)

    pool_size: int = Field(default=40, ge=1)  # PostgreSQL connections per process
    api_threads: int = Field(default=40, ge=1)  # the API's worker threads for database work

    # Operators (README, "Metrics and logs"): log lines as JSON objects or text; the
    # deadline of /metrics' and /v1/ready's reads of the database and of Prefect, and
    # how long one read of the figures serves later scrapes.
    log_format: Literal["json", "text"] = "json"
    log_level: str = "INFO"
    observe_timeout_seconds: float = Field(default=2.0, gt=0)
    figures_cache_seconds: float = Field(default=30.0, ge=0)

    def sqlalchemy_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.home / DEFAULT_SQLITE_FILE}"
