"""Treat first, pay later: holds, due dates, enrolment rules, collections,
settlement's schedule, the hospitals' systems.

A mixin of `hub.settings.Settings`: every field keeps its flat
``CREDITHUB_<NAME>`` environment variable.
"""

from __future__ import annotations

from pydantic import BaseModel, Field


class MedicalSettings(BaseModel):
    hold_ttl_outpatient_hours: int = 72
    hold_ttl_inpatient_days: int = 30
    repayment_window_days: int = 15  # due date = business date of the close + this
    max_paid_at_future_seconds: int = 300

    # Enrolment rules (CONTRACT.md §2): age on the day of the decision, credit score
    # 0-1000, and the limit asked of the bank by score tier (lowest score first).
    min_age: int = 18
    min_score: int = 500
    limit_tiers: list[tuple[int, int]] = [(500, 100_000), (600, 300_000), (650, 500_000)]
    enrollment_batch_size: int = 500
    enrollment_concurrency: int = 16  # partner calls in flight at once
    enrollment_retry_seconds: int = 60  # first wait after a partner failure; doubles
    enrollment_interval_seconds: int = 10  # how often the served flow looks for work
    # A large backlog is decided by this many flow runs at once (the scheduled one and
    # helpers on the work pool), each claiming batches of its own for a while.
    enrollment_lanes: int = Field(default=2, ge=1)
    enrollment_lanes_from: int = Field(default=4, ge=1)  # batches due: helpers worth it
    # A claimed batch is left to its run this long; by default as long as deciding it
    # can take (`hub.medical.enrollment_run.claim_for`): 22 minutes at these settings.
    enrollment_claim_seconds: int | None = Field(default=None, ge=1)

    hospital_systems: dict[str, dict[str, str]] = {}  # hospitals' own systems (HIS), by code
    demo_rate: float = 1.0  # actions a second the hospitals' stand-in sends under `up`

    # Collections (CONTRACT.md §2 Overdue)
    suspend_after_days_past_due: int = 3
    report_after_days_past_due: int = 30

    # Schedules of the served deployments (cron in the business zone)
    settlement_cron: str = "30 23 * * *"
    collections_cron: str = "0 9 * * *"
    hold_expiry_cron: str = "0 * * * *"
