"""Every flow's deployment with its schedule: what operators see and trigger in the
Prefect UI. `credithub up` serves them (`python -m flows.serve`); prefect.yaml
declares the same for `prefect deploy` (a test keeps the two in step)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from prefect import serve
from prefect.schedules import Cron, Interval

from flows.medical.collections import collect
from flows.medical.enrollment import enroll_pending
from flows.medical.hold_expiry import expire_holds
from flows.medical.reconciliation import reconcile
from flows.medical.settlement import settle
from flows.webhooks import deliver_events
from hub.settings import Settings, get_settings


def schedules(s: Settings) -> dict[str, Any]:
    """Deployment name → (flow, schedule or None, parameters, description)."""
    zone = s.business_timezone
    return {
        "enrollment": (
            enroll_pending,
            Interval(timedelta(seconds=s.enrollment_interval_seconds)),
            {},
            "Decide pending enrolments: credit database, rules, bank.",
        ),
        "webhooks": (
            deliver_events,
            Interval(timedelta(seconds=s.webhook_interval_seconds)),
            {},
            "Deliver due events to partners' webhooks, signed.",
        ),
        "settlement": (
            settle,
            Cron(s.settlement_cron, timezone=zone),
            {"close": True},
            "Close the day's window, pay each hospital's net, reconcile.",
        ),
        "reconciliation": (
            reconcile,
            None,
            {},
            "Match the books with hospitals' lists and banks' statements.",
        ),
        "collections": (
            collect,
            Cron(s.collections_cron, timezone=zone),
            {},
            "Reminders, suspensions, reinstatements, reports at 30 days.",
        ),
        "hold-expiry": (
            expire_holds,
            Cron(s.hold_expiry_cron, timezone=zone),
            {},
            "Release expired holds in bulk.",
        ),
    }


def deployments() -> list[Any]:
    made = []
    for name, (flow_, schedule, parameters, description) in schedules(get_settings()).items():
        made.append(
            flow_.to_deployment(
                name=name,
                schedule=schedule,
                parameters=parameters,
                description=description,
            )
        )
    return made


def main() -> None:
    serve(*deployments(), print_starting_message=True)


if __name__ == "__main__":
    main()
