"""The loan as partners read it (CONTRACT.md §4 Loans, `GET /v1/loans/{id}`): exactly
the contract's fields, the firm's full identity, days past due as of now, and
only for the loan's channel and bank."""

from __future__ import annotations

from datetime import UTC, datetime

from hub.core import clock, partners
from hub.core.db import get_engine, unit_of_work
from hub.core.personal_data import get_vault
from tests.books import books_agree
from tests.conftest import World
from tests.loans.factory import approved_loan, disbursed_loan, new_uscc

T0 = datetime(2026, 1, 31, 4, 0, tzinfo=UTC)  # 12:00 on 31 January in Shanghai
KEYS = {
    "loan_id",
    "application_id",
    "bank_code",
    "firm",
    "status",
    "principal_fen",
    "annual_rate_bps",
    "term_months",
    "schedule",
    "outstanding_principal_fen",
    "days_past_due",
}


def test_an_approved_loan_shows_the_firm_and_no_schedule_yet(world: World) -> None:
    clock.set_now(T0)
    uscc = new_uscc()
    loan_id = approved_loan(
        world, uscc=uscc, firm_name="厦门鹭岛机械有限公司", amount_fen=800_000, term_months=6
    )
    view = world.get("ch", f"/v1/loans/{loan_id}").json()
    assert set(view) == KEYS
    assert view["loan_id"] == loan_id and view["application_id"].startswith("lap_")
    assert view["firm"] == {"uscc": uscc, "name": "厦门鹭岛机械有限公司"}  # in full: accepted
    assert (view["bank_code"], view["status"], view["principal_fen"]) == ("B1", "approved", 800_000)
    assert (view["annual_rate_bps"], view["term_months"]) == (600, 6)
    assert view["schedule"] == [] and view["outstanding_principal_fen"] == 0
    assert view["days_past_due"] == 0
    assert world.get("b1", f"/v1/loans/{loan_id}").json() == view


def test_the_schedule_and_days_past_due_as_of_now(world: World) -> None:
    clock.set_now(T0)
    loan_id = disbursed_loan(world, amount_fen=1_200_000, term_months=12)
    view = world.get("b1", f"/v1/loans/{loan_id}").json()
    assert len(view["schedule"]) == 12
    assert set(view["schedule"][0]) == {
        "n",
        "due_date",
        "principal_fen",
        "interest_fen",
        "paid_fen",
    }
    assert [s["n"] for s in view["schedule"]] == list(range(1, 13))
    clock.set_now(datetime(2026, 2, 28, 15, 59, tzinfo=UTC))  # 23:59 on the due date
    assert world.get("b1", f"/v1/loans/{loan_id}").json()["days_past_due"] == 0
    clock.set_now(datetime(2026, 3, 10, 4, 0, tzinfo=UTC))
    later = world.get("ch", f"/v1/loans/{loan_id}").json()
    assert later["days_past_due"] == 10  # computed now, before any delinquency run
    assert later["status"] == "active"  # the status moves with the daily flow
    assert books_agree(world.settings)


def test_only_the_loans_channel_and_bank_see_it(world: World) -> None:
    clock.set_now(T0)
    loan_id = disbursed_loan(world)
    with unit_of_work(get_engine(world.settings)) as session:
        other = partners.add_partner(
            session,
            get_vault(world.settings),
            kind="channel",
            name="another app",
            code="CH2",
            webhook_url=None,
            now=clock.now(),
        )
    for key in (world.keys["b2"], other.api_key):  # another bank, another channel
        r = world.client.get(f"/v1/loans/{loan_id}", headers={"Authorization": f"Bearer {key}"})
        assert r.status_code == 404 and r.json()["code"] == "not_found"
    missing = world.get("b1", "/v1/loans/loan_01unknown")
    assert missing.status_code == 404
    assert missing.json()["detail"] == world.get("b2", f"/v1/loans/{loan_id}").json()[
        "detail"
    ].replace(loan_id, "loan_01unknown")
    for who in ("h1", "op"):
        assert world.get(who, f"/v1/loans/{loan_id}").status_code == 403
    assert world.client.get(f"/v1/loans/{loan_id}").status_code == 401
