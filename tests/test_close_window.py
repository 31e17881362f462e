"""`POST /v1/settlement-windows/close` (CONTRACT.md §2 Settlement): the settlement run
is asked of Prefect before the request's transaction opens — no transaction is held
across that call — under a key derived from the partner and the request's
Idempotency-Key, so a retry gets the same run and the same answer.

Prefect stands in as a recorder that keeps its own promise (the same key, the same
run); the database, the app and the idempotency records are real.
"""

from __future__ import annotations

import sqlite3
from typing import Any

import pytest
from sqlalchemy import text

from hub.core.db import get_engine
from hub.settings import Settings
from integrations.endpoints.medical import settlement as settlement_endpoints
from tests.conftest import World


def _transactions_open(settings: Settings) -> bool:
    """Does any other connection hold a transaction open on the hub's database now?"""
    engine = get_engine(settings)
    if engine.dialect.name == "sqlite":
        # Write transactions begin IMMEDIATE: one held elsewhere locks us out at once.
        probe = sqlite3.connect(str(engine.url.database), timeout=0, isolation_level=None)
        try:
            probe.execute("BEGIN IMMEDIATE")
            probe.execute("ROLLBACK")
            return False
        except sqlite3.OperationalError as exc:
            assert "locked" in str(exc)
            return True
        finally:
            probe.close()
    with engine.connect() as connection:
        others = connection.execute(
            text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND pid <> pg_backend_pid() AND xact_start IS NOT NULL"
            )
        ).scalar_one()
    return bool(others)


@pytest.fixture
def prefect_asked(world: World, monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Each call to Prefect, and whether a transaction was open while it was made."""
    asked: list[dict[str, Any]] = []
    runs: dict[str, str] = {}

    def start_run(deployment: str, parameters: dict[str, Any], idempotency_key: str) -> str:
        asked.append(
            {
                "deployment": deployment,
                "parameters": parameters,
                "key": idempotency_key,
                "transaction_open": _transactions_open(world.settings),
            }
        )
        return runs.setdefault(idempotency_key, f"run-{len(runs) + 1}")

    monkeypatch.setattr(settlement_endpoints, "start_run", start_run)
    return asked


def test_the_run_is_asked_for_outside_any_transaction_under_the_requests_key(
    world: World, prefect_asked: list[dict[str, Any]]
) -> None:
    first = world.post("op", "/v1/settlement-windows/close", {}, key="close-1")
    assert first.status_code == 202, first.text
    window = first.json()["window_id"]
    assert first.json() == {"window_id": window, "flow_run_id": "run-1"}
    assert prefect_asked == [
        {
            "deployment": "settlement/settlement",
            "parameters": {"window_id": window, "close": False},
            "key": f"settlement-close:{world.ids['op']}:close-1",
            "transaction_open": False,
        }
    ]

    retry = world.post("op", "/v1/settlement-windows/close", {}, key="close-1")
    assert retry.status_code == 202 and retry.json() == first.json()
    assert retry.headers.get("Idempotent-Replayed") == "true"
    assert prefect_asked[-1]["key"] == prefect_asked[0]["key"]  # the same run, from Prefect

    other = world.post("op", "/v1/settlement-windows/close", {}, key="close-2")
    assert other.status_code == 202, other.text
    assert other.json()["window_id"] != window and other.json()["flow_run_id"] == "run-2"
    assert prefect_asked[-1]["parameters"] == {
        "window_id": other.json()["window_id"],
        "close": False,
    }
    assert not any(call["transaction_open"] for call in prefect_asked)


def test_without_prefect_the_window_still_closes(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PREFECT_API_URL", raising=False)  # the schedule settles it later
    r = world.post("op", "/v1/settlement-windows/close", {}, key="close-no-prefect")
    assert r.status_code == 202, r.text
    assert r.json()["flow_run_id"] is None and r.json()["window_id"].startswith("win")
