from tests.conftest import ID_NUMBERS, World


def test_treat_first_pay_later_end_to_end(world: World) -> None:
    r = world.post("h1", "/v1/eligibility-checks", {"id_number": ID_NUMBERS[0]})
    assert r.status_code == 200, r.text
    assert r.json() == {
        "eligible": True,
        "credit_line_id": world.ids["line"],
        "available_fen": 100_000,
    }
    line = world.ids["line"]
    r = world.post(
        "h1",
        "/v1/visits",
        {"credit_line_id": line, "his_visit_id": "V1", "kind": "outpatient", "department": "ENT"},
    )
    assert r.status_code == 201, r.text
    visit = r.json()["visit_id"]
    r = world.post(
        "h1",
        f"/v1/visits/{visit}/authorizations",
        {"amount_fen": 30_000, "his_order_id": "O1", "description": "x-ray"},
    )
    assert r.status_code == 201, r.text
    auth = r.json()
    assert auth["status"] == "held"
    r = world.post(
        "h1", f"/v1/authorizations/{auth['authorization_id']}/increments", {"amount_fen": 5_000}
    )
    assert r.status_code == 200, r.text
    assert r.json()["amount_fen"] == 35_000
    r = world.get("h1", f"/v1/credit-lines/{line}")
    assert r.json()["available_fen"] == 65_000
    r = world.post(
        "h1",
        f"/v1/visits/{visit}/close",
        {
            "his_bill_id": "B1",
            "total_fen": 50_000,
            "insurance_fen": 30_000,
            "self_pay_fen": 20_000,
            "items": [{"code": "X", "name": "x-ray", "amount_fen": 50_000}],
        },
    )
    assert r.status_code == 200, r.text
    closed = r.json()
    assert closed["status"] == "closed" and closed["captured_fen"] == 20_000
    assert closed["released_fen"] == 15_000 and closed["due_date"]
    r = world.post(
        "h1",
        f"/v1/visits/{visit}/refunds",
        {"amount_fen": 5_000, "his_refund_id": "R1", "reason": "dup"},
    )
    assert r.status_code == 201, r.text
    assert r.json()["debt_reduced_fen"] == 5_000
    r = world.post(
        "b1",
        "/v1/repayments",
        {
            "credit_line_id": line,
            "amount_fen": 15_000,
            "bank_txn_id": "T1",
            "paid_at": "2026-01-01T00:00:00+08:00",
        },
    )
    assert r.status_code == 201, r.text
    assert r.json()["outstanding_fen"] == 0
    r = world.get("b1", f"/v1/credit-lines/{line}")
    assert r.json()["available_fen"] == 100_000
    r = world.get("op", "/v1/ledger/trial-balance")
    assert r.status_code == 200 and r.json()["total_fen"] == 0
