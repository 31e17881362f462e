"""Racing requests on PostgreSQL over real HTTP: nothing overdraws, nothing happens twice."""

from __future__ import annotations

import uuid

import pytest

from hub.settings import Settings
from tests.conftest import ID_NUMBERS, World, make_world
from tests.live import live_server
from tests.racing import race_posts

pytestmark = pytest.mark.pg
RACERS = 64


def _open_visit(world: World) -> str:
    assert (
        world.post("h1", "/v1/eligibility-checks", {"id_number": ID_NUMBERS[0]}).status_code == 200
    )
    r = world.post(
        "h1",
        "/v1/visits",
        {"credit_line_id": world.ids["line"], "his_visit_id": "V", "kind": "inpatient"},
    )
    assert r.status_code == 201, r.text
    return str(r.json()["visit_id"])


def test_racing_holds_never_exceed_the_limit(pg_settings: Settings) -> None:
    world = make_world(pg_settings)  # line limit 100_000
    with world.client:
        visit = _open_visit(world)
        with live_server(pg_settings) as base:
            responses = race_posts(
                base,
                [
                    (
                        f"/v1/visits/{visit}/authorizations",
                        {"amount_fen": 3_000, "his_order_id": f"O{i}"},
                        world.headers("h1", uuid.uuid4().hex),
                    )
                    for i in range(RACERS)
                ],
            )
        statuses = sorted(r.status_code for r in responses)
        assert statuses.count(201) == 33 and statuses.count(402) == RACERS - 33, statuses
        assert all(
            r.json()["code"] == "insufficient_credit" for r in responses if r.status_code == 402
        )
        line = world.get("h1", f"/v1/credit-lines/{world.ids['line']}").json()
        assert (line["held_fen"], line["available_fen"]) == (99_000, 1_000)
        accounts = dict(
            (a["account"], a["balance_fen"])
            for a in world.get("op", "/v1/ledger/trial-balance").json()["accounts"]
        )
        assert accounts[f"line:{world.ids['line']}:held"] == 99_000
        assert sum(accounts.values()) == 0


def test_a_replay_storm_of_one_key_makes_one_effect(pg_settings: Settings) -> None:
    world = make_world(pg_settings)
    with world.client:
        visit = _open_visit(world)
        headers = world.headers("h1", "storm-key")
        with live_server(pg_settings) as base:
            responses = race_posts(
                base,
                [
                    (
                        f"/v1/visits/{visit}/authorizations",
                        {"amount_fen": 1_000, "his_order_id": "ONE"},
                        headers,
                    )
                    for _ in range(RACERS)
                ],
            )
        created = [r for r in responses if r.status_code == 201]
        in_progress = [r for r in responses if r.status_code == 409]
        assert len(created) + len(in_progress) == RACERS, [r.status_code for r in responses]
        assert all(r.json()["code"] == "request_in_progress" for r in in_progress)
        assert len({r.text for r in created}) == 1  # every 201 is the same response
        assert sum(r.headers.get("idempotent-replayed") != "true" for r in created) == 1
        holds = world.get("h1", f"/v1/visits/{visit}").json()["authorizations"]
        assert len(holds) == 1
        line = world.get("h1", f"/v1/credit-lines/{world.ids['line']}").json()
        assert line["held_fen"] == 1_000


def test_racing_references_make_one_object(pg_settings: Settings) -> None:
    """The same his_order_id under different keys: one hold, the rest replay it."""
    world = make_world(pg_settings)
    with world.client:
        visit = _open_visit(world)
        with live_server(pg_settings) as base:
            responses = race_posts(
                base,
                [
                    (
                        f"/v1/visits/{visit}/authorizations",
                        {"amount_fen": 1_000, "his_order_id": "SAME"},
                        world.headers("h1", uuid.uuid4().hex),
                    )
                    for _ in range(16)
                ],
            )
        assert {r.status_code for r in responses} == {201}
        assert len({r.json()["authorization_id"] for r in responses}) == 1
        line = world.get("h1", f"/v1/credit-lines/{world.ids['line']}").json()
        assert line["held_fen"] == 1_000
