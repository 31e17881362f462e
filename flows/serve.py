"""Serve every flow's deployment (what operators see and trigger in the Prefect UI).

Run by `credithub up` as its own process: `python -m flows.serve`.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from prefect import serve

from flows.enrollment import enroll_pending
from flows.webhooks import deliver_events
from hub.settings import get_settings


def deployments() -> list[Any]:
    s = get_settings()
    return [
        enroll_pending.to_deployment(
            name="enrollment",
            interval=timedelta(seconds=s.enrollment_interval_seconds),
            description="Decide pending enrolments: credit database, rules, bank.",
        ),
        deliver_events.to_deployment(
            name="webhooks",
            interval=timedelta(seconds=s.webhook_interval_seconds),
            description="Deliver due events to partners' webhooks, signed.",
        ),
    ]


def main() -> None:
    serve(*deployments(), print_starting_message=True)


if __name__ == "__main__":
    main()
