"""`PUT /v1/loan-products/{code}` and `GET /v1/loan-products` (CONTRACT.md §4
Products): a bank publishes and replaces its own products; channels see all."""

from __future__ import annotations

from typing import Any

from tests.conftest import World
from tests.loans.application_stage import PRODUCT


def put(world: World, who: str, code: str, **changes: Any) -> Any:
    return world.client.put(
        f"/v1/loan-products/{code}", json={**PRODUCT, **changes}, headers=world.headers(who)
    )


def test_a_bank_publishes_then_replaces_a_product(world: World) -> None:
    created = put(world, "b1", "SME-1", industries=["retail", "manufacturing"])
    assert created.status_code == 201, created.text
    assert created.json() == {
        **PRODUCT,
        "code": "SME-1",
        "bank_code": "B1",
        "industries": ["manufacturing", "retail"],
        "updated_at": created.json()["updated_at"],
    }
    replaced = put(world, "b1", "SME-1", max_term_months=24)
    assert replaced.status_code == 200, replaced.text
    assert replaced.json()["max_term_months"] == 24
    listed = world.get("b1", "/v1/loan-products").json()
    assert [p["max_term_months"] for p in listed["data"]] == [24]
    assert listed["has_more"] is False and listed["next_cursor"] is None


def test_banks_see_their_own_products_and_channels_see_all(world: World) -> None:
    assert put(world, "b1", "A").status_code == 201
    assert put(world, "b2", "A").status_code == 201  # codes are per bank
    assert put(world, "b2", "B").status_code == 201
    mine = world.get("b2", "/v1/loan-products").json()["data"]
    assert sorted((p["bank_code"], p["code"]) for p in mine) == [("B2", "A"), ("B2", "B")]
    every = world.get("ch", "/v1/loan-products").json()["data"]
    assert sorted((p["bank_code"], p["code"]) for p in every) == [
        ("B1", "A"),
        ("B2", "A"),
        ("B2", "B"),
    ]
    page = world.get("ch", "/v1/loan-products?limit=2").json()
    assert len(page["data"]) == 2 and page["has_more"] is True
    rest = world.get("ch", f"/v1/loan-products?limit=2&cursor={page['next_cursor']}").json()
    assert len(rest["data"]) == 1 and rest["has_more"] is False


def test_bad_products_are_422_with_the_field(world: World) -> None:
    cases: list[tuple[dict[str, Any], str]] = [
        ({"annual_rate_bps_min": 900, "annual_rate_bps_max": 800}, "annual_rate_bps_min"),
        ({"max_amount_fen": 0}, "max_amount_fen"),
        ({"max_term_months": 0}, "max_term_months"),
        ({"max_amount_fen": 1.5}, "max_amount_fen"),
        ({"min_score": 1001}, "min_score"),
        ({"colour": "red"}, "colour"),
    ]
    for changes, field in cases:
        r = put(world, "b1", "P", **changes)
        assert r.status_code == 422, (changes, r.text)
        assert field in [e["field"] for e in r.json()["errors"]], r.json()
    bad_code = put(world, "b1", "has space")
    assert bad_code.status_code == 422 and bad_code.json()["errors"][0]["field"] == "code"
    assert world.get("b1", "/v1/loan-products").json()["data"] == []


def test_only_banks_publish_and_hospitals_see_none(world: World) -> None:
    assert put(world, "ch", "P").status_code == 403
    assert put(world, "op", "P").status_code == 403
    assert world.get("h1", "/v1/loan-products").status_code == 403
    assert world.client.get("/v1/loan-products").status_code == 401
