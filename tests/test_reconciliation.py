"""Reconciliation (CONTRACT.md §2): each injected discrepancy is found, and nothing else."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from flows.medical.reconciliation import reconcile
from flows.medical.settlement import settle
from hub import context
from hub.core import clock
from hub.core.clock import business_date
from hub.settings import Settings
from simulators import bank, hospital
from tests.books import books_agree
from tests.conftest import ID_NUMBERS, World, latest_artifact, make_world
from tests.live import serve

KEY = "test-key"


def _bill(ref: str, amount: int) -> dict[str, Any]:
    return {
        "his_bill_id": ref,
        "total_fen": amount,
        "insurance_fen": 0,
        "self_pay_fen": amount,
        "items": [{"code": "X", "name": "care", "amount_fen": amount}],
    }


@pytest.fixture
def wired(settings: Settings) -> Iterator[tuple[World, httpx.Client, httpx.Client]]:
    with (
        serve(bank.create_app(KEY)) as bank_url,
        serve(hospital.create_app(KEY, hospitals=["H1"])) as his_url,
    ):
        s = settings.model_copy(
            update={
                "bank_systems": {"B1": {"url": bank_url, "api_key": KEY}},
                "hospital_systems": {"H1": {"url": his_url, "api_key": KEY}},
            }
        )
        context.use(s)
        world = make_world(s)
        auth = {"Authorization": f"Bearer {KEY}"}
        with (
            world.client,
            httpx.Client(base_url=bank_url, headers=auth) as b,
            httpx.Client(base_url=his_url, headers=auth) as h,
        ):
            yield world, b, h


def _mismatches(world: World) -> set[tuple[str, str, str]]:
    r = world.get("op", "/v1/reconciliation/mismatches?limit=100")
    assert r.status_code == 200, r.text
    return {(m["source"], m["kind"], m["ref"]) for m in r.json()["data"]}


def test_each_discrepancy_kind_is_found_and_nothing_else(
    wired: tuple[World, httpx.Client, httpx.Client], prefect_harness: None
) -> None:
    world, the_bank, his = wired
    world.post("h1", "/v1/eligibility-checks", {"id_number": ID_NUMBERS[0]})
    visits = {}
    for ref, amount in [("B1", 1_000), ("B2", 2_000), ("B3", 3_000), ("B4", 4_000)]:
        v = world.post(
            "h1",
            "/v1/visits",
            {"credit_line_id": world.ids["line"], "his_visit_id": ref, "kind": "outpatient"},
        ).json()
        assert (
            world.post("h1", f"/v1/visits/{v['visit_id']}/close", _bill(ref, amount)).status_code
            == 200
        )
        visits[ref] = v["visit_id"]
    r = world.post(
        "h1", f"/v1/visits/{visits['B4']}/refunds", {"amount_fen": 500, "his_refund_id": "R1"}
    )
    assert r.status_code == 201
    today = business_date(clock.now(), world.settings.business_timezone).isoformat()

    def listed(ref: str, kind: str, amount: int) -> None:
        item = {
            "ref": ref,
            "kind": kind,
            "amount_fen": amount,
            "visit_id": "v",
            "hub_id": "h",
            "at": clock.now().isoformat(),
            "business_date": today,
        }
        assert his.post("/hospitals/H1/transactions", json=item).status_code == 201

    listed("B1", "capture", 1_000)  # agrees
    listed("B2", "capture", 2_001)  # amount differs
    listed("B4", "capture", 4_000)  # agrees
    listed("R1", "refund", 500)
    listed("R1", "refund", 500)  # listed twice
    listed("B9", "capture", 900)  # the hub never captured it
    # B3 is not listed at all: missing at the hospital.
    world.post("op", "/v1/settlement-windows/close", {})
    settle()  # pays the bank's one line and reconciles the window
    assert books_agree(world.settings)  # mismatches with partners, none within the hub
    assert _mismatches(world) == {
        ("hospital:H1", "amount_differs", "capture:B2"),
        ("hospital:H1", "duplicate", "refund:R1"),
        ("hospital:H1", "missing_in_hub", "capture:B9"),
        ("hospital:H1", "missing_at_partner", "capture:B3"),
    }
    amounts = {
        m["ref"]: (m["hub"], m["partner"]) for m in latest_artifact("reconciliation-mismatches")
    }
    assert amounts == {  # in yuan, "—" for the side that has no such item
        "capture:B2": ("20.00", "20.01"),
        "refund:R1": ("5.00", "5.00"),
        "capture:B9": ("—", "9.00"),
        "capture:B3": ("30.00", "—"),
    }
    # A rerun records nothing twice; a statement fault at the bank is found too.
    the_bank.put("/_sim/knobs", json={"statement_amount_change_rate": 1.0})
    reconcile()
    assert books_agree(world.settings)
    found = _mismatches(world)
    assert len(found) == 5
    assert [k for s, k, _ in found if s == "bank:B1"] == ["amount_differs"]
    # An operator resolves one; it leaves the open list.
    one = world.get("op", "/v1/reconciliation/mismatches").json()["data"][0]
    assert world.get("h1", "/v1/reconciliation/mismatches").status_code == 403
    env = {
        **os.environ,
        "CREDITHUB_DATABASE_URL": world.settings.sqlalchemy_url(),
        "CREDITHUB_HOME": str(world.settings.home),
        "CREDITHUB_SECRET_KEY": "test-secret-key",
    }
    command = [
        sys.executable,
        "-m",
        "credithub.cli",
        "recon",
        "resolve",
        one["mismatch_id"],
        "--note",
        "checked with the hospital",
    ]
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert len(_mismatches(world)) == 4
    resolved = world.get("op", "/v1/reconciliation/mismatches?status=resolved").json()["data"]
    assert [m["mismatch_id"] for m in resolved] == [one["mismatch_id"]]
    # The list fits 80 columns with every id whole (what `recon resolve` takes), in yuan.
    command[-4:] = ["list"]
    shown = subprocess.run(
        command, env={**env, "COLUMNS": "80"}, capture_output=True, text=True, check=False
    )
    assert shown.returncode == 0, shown.stderr
    assert max(len(line) for line in shown.stdout.splitlines()) <= 80, shown.stdout
    still_open = world.get("op", "/v1/reconciliation/mismatches").json()["data"]
    assert len(still_open) == 4
    shown_words = shown.stdout.split()
    for m in still_open:
        assert m["mismatch_id"] in shown_words, shown.stdout
    assert one["mismatch_id"] not in shown.stdout
    assert "None" not in shown.stdout and "—" in shown.stdout and "30.00" in shown.stdout
