"""Inbound idempotency (CONTRACT.md §1): replay, reuse, in-flight, what is stored."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, text

from hub.core.idempotency import _lock_key
from hub.settings import Settings
from tests.conftest import ID_NUMBERS, World, make_world

HOLD = {"amount_fen": 60_000, "his_order_id": "O1", "description": "ward"}


def _visit(world: World) -> str:
    world.post("h1", "/v1/eligibility-checks", {"id_number": ID_NUMBERS[0]})
    r = world.post(
        "h1",
        "/v1/visits",
        {"credit_line_id": world.ids["line"], "his_visit_id": "V1", "kind": "outpatient"},
    )
    return str(r.json()["visit_id"])


def test_same_key_same_request_replays_the_first_response(world: World) -> None:
    visit = _visit(world)
    first = world.post("h1", f"/v1/visits/{visit}/authorizations", HOLD, key="k1")
    again = world.post("h1", f"/v1/visits/{visit}/authorizations", HOLD, key="k1")
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    line = world.get("h1", f"/v1/credit-lines/{world.ids['line']}").json()
    assert line["held_fen"] == 60_000


def test_a_replay_returns_the_first_response_even_if_the_world_changed(world: World) -> None:
    visit = _visit(world)
    first = world.post("h1", f"/v1/visits/{visit}/authorizations", HOLD, key="k1")
    auth = first.json()["authorization_id"]
    assert world.post("h1", f"/v1/authorizations/{auth}/void", {}).status_code == 200
    again = world.post("h1", f"/v1/visits/{visit}/authorizations", HOLD, key="k1")
    assert again.json() == first.json() and again.json()["status"] == "held"


def test_same_key_different_body_names_the_fields(world: World) -> None:
    visit = _visit(world)
    world.post("h1", f"/v1/visits/{visit}/authorizations", HOLD, key="k1")
    other = dict(HOLD, amount_fen=1, description="other")
    r = world.post("h1", f"/v1/visits/{visit}/authorizations", other, key="k1")
    assert r.status_code == 422 and r.json()["code"] == "idempotency_key_reused"
    assert "amount_fen" in r.json()["detail"] and "description" in r.json()["detail"]
    assert "his_order_id" not in r.json()["detail"]


def test_same_key_different_path_names_the_path(world: World) -> None:
    visit = _visit(world)
    world.post("h1", f"/v1/visits/{visit}/authorizations", HOLD, key="k1")
    r = world.post("h1", "/v1/eligibility-checks", {"id_number": ID_NUMBERS[0]}, key="k1")
    assert r.status_code == 422 and r.json()["code"] == "idempotency_key_reused"
    assert "path" in r.json()["detail"]


def test_keys_are_scoped_to_the_partner(world: World) -> None:
    world.post("h2", "/v1/eligibility-checks", {"id_number": ID_NUMBERS[0]}, key="shared")
    visit = _visit(world)
    r = world.post("h1", f"/v1/visits/{visit}/authorizations", HOLD, key="shared")
    assert r.status_code == 201 and "idempotent-replayed" not in r.headers


def test_a_402_is_stored_and_replayed(world: World) -> None:
    visit = _visit(world)
    big = dict(HOLD, amount_fen=100_001)
    first = world.post("h1", f"/v1/visits/{visit}/authorizations", big, key="k402")
    assert first.status_code == 402 and first.json()["code"] == "insufficient_credit"
    again = world.post("h1", f"/v1/visits/{visit}/authorizations", big, key="k402")
    assert again.status_code == 402 and again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json()
    line = world.get("h1", f"/v1/credit-lines/{world.ids['line']}").json()
    assert line["held_fen"] == 0  # the failed attempt changed nothing


def test_a_409_is_stored_and_replayed(world: World) -> None:
    visit = _visit(world)
    auth = world.post("h1", f"/v1/visits/{visit}/authorizations", HOLD).json()["authorization_id"]
    world.post("h1", f"/v1/authorizations/{auth}/void", {})
    first = world.post("h1", f"/v1/authorizations/{auth}/void", {}, key="k409")
    again = world.post("h1", f"/v1/authorizations/{auth}/void", {}, key="k409")
    assert (first.status_code, again.status_code) == (409, 409)
    assert first.json()["code"] == "authorization_not_held"
    assert again.headers["idempotent-replayed"] == "true"


def test_validation_errors_leave_the_key_free(world: World) -> None:
    visit = _visit(world)
    bad = world.post(
        "h1", f"/v1/visits/{visit}/authorizations", dict(HOLD, amount_fen=1.5), key="k"
    )
    assert bad.status_code == 422
    good = world.post("h1", f"/v1/visits/{visit}/authorizations", HOLD, key="k")
    assert good.status_code == 201 and "idempotent-replayed" not in good.headers


def test_not_found_is_not_stored(world: World) -> None:
    r = world.post("h1", "/v1/visits/vis_missing/authorizations", HOLD, key="k404")
    assert r.status_code == 404
    visit = _visit(world)
    r = world.post("h1", f"/v1/visits/{visit}/authorizations", HOLD, key="k404")
    assert r.status_code == 201 and "idempotent-replayed" not in r.headers


@pytest.mark.pg
def test_a_key_in_flight_is_a_409(pg_settings: Settings) -> None:
    """While another transaction holds the key, the same key gets request_in_progress."""
    world = make_world(pg_settings)
    with world.client:
        visit = _visit(world)
        other = create_engine(pg_settings.database_url)
        try:
            with other.connect() as conn, conn.begin():
                conn.execute(
                    text("SELECT pg_advisory_xact_lock(:h)"),
                    {"h": _lock_key(world.ids["h1"], "busy")},
                )
                r = world.post("h1", f"/v1/visits/{visit}/authorizations", HOLD, key="busy")
                assert r.status_code == 409 and r.json()["code"] == "request_in_progress"
            r = world.post("h1", f"/v1/visits/{visit}/authorizations", HOLD, key="busy")
            assert r.status_code == 201  # once the first is gone, the key is free
        finally:
            other.dispose()
