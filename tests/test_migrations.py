"""Migrations on databases with rows in them, down and up again, on SQLite and
PostgreSQL: 0005 (a debt of its own, with collection steps), 0011 (a subsidy's figures),
0012 (a partner's previous webhook secret)."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import create_engine, func, select, text

from hub import context
from hub.core import clock, migrate, partner_admin
from hub.core.db import get_engine, unit_of_work
from hub.loans import subsidies
from hub.medical import collections
from hub.settings import Settings
from models.core.tables import Partner
from models.loans.tables import Subsidy
from models.medical.tables import CollectionStep, Debt, DebtSource, Visit
from tests.conftest import ID_NUMBERS, PG_SKIP, PG_URL_ENV, _settings, make_world
from tests.loans.fund_world import make_loan, repaid

T0 = datetime(2026, 3, 2, 2, 0, tzinfo=UTC)  # 10:00 on 2 March in Shanghai; due 17 March


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.pg)])
def scratch(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Settings]:
    """Settings on a database of its own (migrated up and down here), not the shared one."""
    if request.param == "sqlite":
        yield _settings(tmp_path, f"sqlite:///{tmp_path / 'migrations.db'}")
        return
    admin_url = os.environ.get(PG_URL_ENV)
    if not admin_url:
        pytest.skip(PG_SKIP)
    name = f"credithub_migrations_{uuid.uuid4().hex[:10]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    settings = _settings(tmp_path, admin.url.set(database=name).render_as_string(False))
    try:
        yield settings
    finally:
        get_engine(settings).dispose()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _downgrade(settings: Settings, revision: str) -> None:
    config = migrate.alembic_config()
    with get_engine(settings).begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, revision)


def test_debts_get_ids_and_sources_and_keep_their_steps(scratch: Settings) -> None:
    migrate.upgrade(scratch)
    clock.set_now(T0)
    try:
        world = make_world(scratch)
        with world.client:
            world.post("h1", "/v1/eligibility-checks", {"id_number": ID_NUMBERS[0]})
            visits = [world.closed_visit("V1", 10_000), world.closed_visit("V2", 5_000)]
        now = datetime(2026, 3, 16, 4, 0, tzinfo=UTC)  # the day before the due date
        with unit_of_work(get_engine(scratch)) as session:
            counts = collections.run_day(session, collections.Policy(), date(2026, 3, 16), now)
        assert counts["reminder_before"] == 2

        _downgrade(scratch, "0004_ledger_rules")  # debts keyed by their visits again
        with get_engine(scratch).connect() as conn:
            keyed = set(conn.scalars(text("SELECT visit_id FROM debts")))
            steps = set(conn.execute(text("SELECT visit_id, step FROM collection_steps")))
        assert keyed == set(visits)
        assert steps == {(v, "reminder_before") for v in visits}

        migrate.upgrade(scratch)  # 0005 on a database with debts and steps
        with unit_of_work(get_engine(scratch)) as session:
            debts = {d.source_id: d for d in session.scalars(select(Debt))}
            assert set(debts) == set(visits)
            assert all(d.id.startswith("dbt_") for d in debts.values())
            assert {d.source_kind for d in debts.values()} == {DebtSource.VISIT}
            assert (debts[visits[0]].amount_fen, debts[visits[1]].unpaid_fen) == (10_000, 5_000)
            steps_now = set(session.execute(select(CollectionStep.debt_id, CollectionStep.step)))
            assert steps_now == {(d.id, "reminder_before") for d in debts.values()}
            closed = session.scalar(select(func.count()).select_from(Visit))
            assert closed == 2
            # the steps are still taken once per debt: nothing to do the same day again
            again = collections.run_day(session, collections.Policy(), date(2026, 3, 16), now)
            assert again["reminder_before"] == 0
    finally:
        clock.set_now(None)


def test_subsidies_keep_their_figures_down_to_json_and_back(scratch: Settings) -> None:
    """0011: a subsidy's reasons move from a JSON object into columns and back intact."""
    migrate.upgrade(scratch)
    world = make_world(scratch)
    with world.client:
        loan_id = make_loan(world, grade="B", annual_rate_bps=600)
    repaid(world, loan_id, date(2026, 3, 10), interest_fen=12_001)
    march = subsidies.Month(date(2026, 3, 1), date(2026, 4, 1))
    assert subsidies.grant(context.HubContext.of(scratch), march) == 1
    with unit_of_work(get_engine(scratch), write=False) as session:
        (granted,) = session.scalars(select(Subsidy))
        want = subsidies.why(granted)

    _downgrade(scratch, "0010_loan_instalment_debts")
    with get_engine(scratch).connect() as conn:
        stored = conn.scalar(text("SELECT rule FROM subsidies"))
    assert (json.loads(stored) if isinstance(stored, str) else stored) == want

    migrate.upgrade(scratch)
    with unit_of_work(get_engine(scratch), write=False) as session:
        (again,) = session.scalars(select(Subsidy))
        assert subsidies.why(again) == want
        assert (again.rule, again.grade, again.annual_rate_bps, again.points_bps) == (
            "interest_points", "B", 600, 100,
        )  # fmt: skip


def test_a_rotated_webhook_secret_survives_down_and_up_without_its_predecessor(
    scratch: Settings,
) -> None:
    """0012: downgrading forgets the previous secret; the current one signs on."""
    migrate.upgrade(scratch)
    ctx = context.HubContext.of(scratch)
    partner_admin.add(ctx, kind="bank", name="Bank", code="B1", webhook_url="https://b1.example")
    rotated = partner_admin.rotate_webhook_secret(ctx, "B1", overlap=timedelta(hours=24))

    _downgrade(scratch, "0011_subsidy_figures")
    with get_engine(scratch).connect() as conn:
        assert conn.scalar(text("SELECT count(*) FROM partners")) == 1

    migrate.upgrade(scratch)
    with unit_of_work(get_engine(scratch), write=False) as session:
        (partner,) = session.scalars(select(Partner))
        assert ctx.vault.decrypt(partner.webhook_secret_enc) == rotated.webhook_secret
        assert partner.webhook_secret_previous_enc is None
        assert partner.webhook_secret_previous_until is None
