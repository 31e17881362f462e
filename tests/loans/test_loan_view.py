"""The loan as partners read it (CONTRACT.md §4 Loans, `GET /v1/loans/{id}`): exactly
the contract's fields, the firm's full identity, days past due as of now, and
only for the loan's channel and bank; and a loan's whole life on the real path
(applied, offered, accepted, paid out, repaid to the end)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hub.core import clock, partners
from hub.core.db import get_engine, unit_of_work
from hub.core.personal_data import get_vault
from tests.books import books_agree
from tests.conftest import World
from tests.loans.application_stage import FIRM, Stage, later, stage
from tests.loans.factory import approved_loan, disbursed_loan, new_uscc

__all__ = ["stage"]

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


def test_applied_accepted_paid_out_repaid_and_closed(stage: Stage) -> None:
    w = stage.world
    application_id = stage.open_application()
    offer = stage.offer("b1", application_id, amount_fen=1_200_000, annual_rate_bps=600)
    accepted = w.post("ch", f"/v1/offers/{offer.json()['offer_id']}/accept", {})
    assert accepted.status_code == 201, accepted.text
    loan_id = accepted.json()["loan_id"]
    approved = w.get("b1", f"/v1/loans/{loan_id}").json()
    assert approved["application_id"] == application_id and approved["status"] == "approved"
    assert approved["firm"]["uscc"] == FIRM  # in full: the firm took this bank's offer
    assert w.get("b2", f"/v1/loans/{loan_id}").status_code == 404  # it offered too, in vain

    later(timedelta(days=1))
    body = {"amount_fen": 1_200_000, "bank_txn_id": "PAY", "disbursed_at": clock.now().isoformat()}
    paid_out = w.post("b1", f"/v1/loans/{loan_id}/disbursements", body)
    assert paid_out.status_code == 201, paid_out.text
    assert paid_out.json() == w.get("ch", f"/v1/loans/{loan_id}").json()
    schedule = paid_out.json()["schedule"]
    assert schedule[0]["due_date"] == "2026-04-03"  # paid out on Tuesday 3 March
    assert books_agree(w.settings)

    for n, instalment in enumerate(schedule, start=1):
        due = instalment["principal_fen"] + instalment["interest_fen"]
        paid_at = f"{instalment['due_date']}T10:00:00+08:00"
        clock.set_now(datetime.fromisoformat(paid_at))
        body = {"amount_fen": due, "bank_txn_id": f"R{n}", "paid_at": paid_at}
        r = w.post("b1", f"/v1/loans/{loan_id}/repayments", body)
        assert r.status_code == 201, r.text
        assert (r.json()["current_interest_fen"], r.json()["early_principal_fen"]) == (
            instalment["interest_fen"],
            0,
        )
    closed = w.get("ch", f"/v1/loans/{loan_id}").json()
    assert closed["status"] == "closed" and closed["outstanding_principal_fen"] == 0
    assert sum(s["paid_fen"] for s in closed["schedule"]) == sum(
        s["principal_fen"] + s["interest_fen"] for s in schedule
    )
    assert books_agree(w.settings)
