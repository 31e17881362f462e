"""Migration 0005 (a debt of its own) on a database with debts and collection steps,
down to 0004 and up again, on SQLite and PostgreSQL."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import create_engine, func, select, text

from hub.core import clock, migrate
from hub.core.db import get_engine, unit_of_work
from hub.medical import collections
from hub.settings import Settings
from models.medical.tables import CollectionStep, Debt, DebtSource, Visit
from tests.conftest import ID_NUMBERS, PG_SKIP, PG_URL_ENV, _settings, make_world

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
