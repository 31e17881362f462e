"""Matching (CONTRACT.md §4): score, amount, term, industries, consent; offers' fit."""

from __future__ import annotations

from dataclasses import replace

import pytest

from hub.loans.matching import (
    Offer,
    Product,
    Request,
    banks_to_offer,
    consent_covers,
    matching_products,
    offer_problems,
    product_matches,
)

PRODUCT = Product(
    bank_code="XMBANK",
    code="easy-1",
    min_score=650,
    max_amount_fen=50_000_000,
    max_term_months=36,
    annual_rate_bps_min=350,
    annual_rate_bps_max=600,
)
ASK = Request(score=650, industry="wholesale", amount_fen=50_000_000, term_months=36)


def test_matches_at_every_edge() -> None:
    assert product_matches(PRODUCT, ASK)


@pytest.mark.parametrize(
    "change",
    [{"score": 649}, {"amount_fen": 50_000_001}, {"term_months": 37}],
)
def test_one_past_an_edge_does_not_match(change: dict[str, int]) -> None:
    assert not product_matches(PRODUCT, replace(ASK, **change))  # type: ignore[arg-type]


def test_industries_null_means_any_else_the_firm_s_must_be_listed() -> None:
    assert product_matches(replace(PRODUCT, industries=None), replace(ASK, industry="anything"))
    listed = replace(PRODUCT, industries=frozenset({"wholesale", "manufacturing"}))
    assert product_matches(listed, ASK)
    assert not product_matches(listed, replace(ASK, industry="catering"))
    assert not product_matches(replace(PRODUCT, industries=frozenset()), ASK)


def test_consent_covers_all_banks_or_the_named_ones() -> None:
    assert consent_covers(["*"], "XMBANK")
    assert consent_covers(["ABC", "XMBANK"], "XMBANK")
    assert not consent_covers(["ABC"], "XMBANK")
    assert not consent_covers([], "XMBANK")
    with pytest.raises(TypeError):
        consent_covers("XMBANK", "XMBANK")


def test_the_banks_offered_to_have_a_match_and_the_consent() -> None:
    products = [
        PRODUCT,
        replace(PRODUCT, code="easy-2", max_amount_fen=100_000_000),  # the same bank again
        replace(PRODUCT, bank_code="ABC", code="abc-1"),
        replace(PRODUCT, bank_code="CCB", code="ccb-1", min_score=700),  # no match
        replace(PRODUCT, bank_code="BOC", code="boc-1"),
    ]
    assert banks_to_offer(products, ASK, ["*"]) == ["ABC", "BOC", "XMBANK"]
    assert banks_to_offer(products, ASK, ["XMBANK", "CCB"]) == ["XMBANK"]
    assert banks_to_offer(products, ASK, ["CCB"]) == []
    assert [p.code for p in matching_products(products, ASK, ["XMBANK", "BOC"])] == [
        "easy-1",
        "easy-2",
        "boc-1",
    ]


def test_an_offer_within_the_product_and_the_ask_fits() -> None:
    assert offer_problems(PRODUCT, Offer(50_000_000, 350, 36), 50_000_000) == []
    assert offer_problems(PRODUCT, Offer(1, 600, 1), 50_000_000) == []


@pytest.mark.parametrize(
    ("offer", "asked", "fields"),
    [
        (Offer(50_000_001, 400, 12), 60_000_000, ["amount_fen"]),  # above the product
        (Offer(30_000_001, 400, 12), 30_000_000, ["amount_fen"]),  # above the ask
        (Offer(0, 400, 12), 30_000_000, ["amount_fen"]),
        (Offer(1_000, 349, 12), 30_000_000, ["annual_rate_bps"]),
        (Offer(1_000, 601, 12), 30_000_000, ["annual_rate_bps"]),
        (Offer(1_000, 400, 37), 30_000_000, ["term_months"]),
        (Offer(1_000, 400, 0), 30_000_000, ["term_months"]),
        (Offer(60_000_000, 100, 48), 60_000_000, ["amount_fen", "annual_rate_bps", "term_months"]),
    ],
)
def test_an_offer_outside_the_limits_is_named(offer: Offer, asked: int, fields: list[str]) -> None:
    assert [problem.field for problem in offer_problems(PRODUCT, offer, asked)] == fields
