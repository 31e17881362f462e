"""`credithub fund deposit` (CONTRACT.md §7 and §4): the operator funds the
risk-compensation fund from the command line, through the same use case and rules
as the API; amounts in yuan or fen, clear words for bad input."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from credithub.views import fen_of_yuan
from hub import context
from hub.core import clock, partners
from hub.core.db import get_engine, unit_of_work
from hub.core.errors import DuplicateReference, Invalid
from hub.core.personal_data import get_vault
from hub.loans import fund
from hub.settings import Settings
from tests.conftest import _settings
from tests.loans.fund_world import fund_books_agree

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("text", "fen"),
    [
        ("1000000.00", 100_000_000),
        ("0.01", 1),
        ("12", 1_200),
        ("1,000.5", 100_050),
        (" 7.10 ", 710),
    ],
)
def test_yuan_become_fen_exactly(text: str, fen: int) -> None:
    assert fen_of_yuan(text) == fen


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("0", "more than 0"),
        ("0.00", "more than 0"),
        ("-5", "more than 0"),
        ("1.001", "more than two decimals"),
        ("abc", "not an amount"),
        ("", "not an amount"),
        ("1e5", "not an amount"),
    ],
)
def test_bad_yuan_say_what_is_wrong(text: str, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        fen_of_yuan(text)


def _operator(settings: Settings, code: str) -> None:
    with unit_of_work(get_engine(settings)) as session:
        partners.add_partner(
            session,
            get_vault(settings),
            kind="operator",
            name=f"{code} name",
            code=code,
            webhook_url=None,
            now=clock.now(),
        )


def test_the_use_case_replays_refuses_and_names_the_operator(settings: Settings) -> None:
    ctx = context.HubContext.of(settings)
    with pytest.raises(Invalid, match="0 active operators"):
        fund.deposit_as_operator(ctx, operator_code=None, amount_fen=100, reference="R")
    _operator(settings, "OPS")
    first = fund.deposit_as_operator(ctx, operator_code=None, amount_fen=100, reference="R")
    assert (first.operator_code, first.balance_fen, first.replayed) == ("OPS", 100, False)
    again = fund.deposit_as_operator(ctx, operator_code="OPS", amount_fen=100, reference="R")
    assert (again.deposit_id, again.balance_fen, again.replayed) == (first.deposit_id, 100, True)
    with pytest.raises(DuplicateReference):
        fund.deposit_as_operator(ctx, operator_code=None, amount_fen=101, reference="R")
    for amount in (0, -1, 10**12 + 1):
        with pytest.raises(Invalid, match="amount_fen"):
            fund.deposit_as_operator(ctx, operator_code=None, amount_fen=amount, reference="S")
    with pytest.raises(Invalid, match="reference"):
        fund.deposit_as_operator(ctx, operator_code=None, amount_fen=1, reference=" ")
    _operator(settings, "OPS2")
    with pytest.raises(Invalid, match="name one"):
        fund.deposit_as_operator(ctx, operator_code=None, amount_fen=5, reference="T")
    with pytest.raises(Invalid, match="NOPE"):
        fund.deposit_as_operator(ctx, operator_code="NOPE", amount_fen=5, reference="T")
    other = fund.deposit_as_operator(ctx, operator_code="OPS2", amount_fen=5, reference="R")
    assert other.balance_fen == 105  # references are the operator's own
    assert fund_books_agree(settings)


def _cli(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CREDITHUB_")}
    env["PYTHONPATH"] = str(ROOT)  # this checkout's code
    env["CREDITHUB_HOME"] = str(home)
    env["COLUMNS"] = "200"
    return subprocess.run(
        [sys.executable, "-m", "credithub.cli", *args],
        cwd=home,  # any directory
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_command_deposits_in_yuan_and_explains_what_it_refuses(tmp_path: Path) -> None:
    added = _cli(
        tmp_path, "partners", "add", "--kind", "operator", "--name", "Ops", "--code", "OPS"
    )
    assert added.returncode == 0, added.stderr

    ok = _cli(tmp_path, "fund", "deposit", "--amount-yuan", "1000000.00", "--reference", "GOV-1")
    assert ok.returncode == 0, ok.stderr
    assert "of 1,000,000.00 yuan, reference GOV-1, by OPS" in ok.stdout
    assert "balance after it: 1,000,000.00 yuan" in ok.stdout
    fen = _cli(tmp_path, "fund", "deposit", "--amount-fen", "50", "--reference", "GOV-2")
    assert "balance after it: 1,000,000.50 yuan" in fen.stdout, fen.stderr
    again = _cli(tmp_path, "fund", "deposit", "--amount-yuan", "1000000", "--reference", "GOV-1")
    assert again.returncode == 0 and "already recorded" in again.stdout
    assert "balance after it: 1,000,000.00 yuan" in again.stdout  # as it answered first

    refused = {
        ("--amount-yuan", "500", "--reference", "GOV-1"): "'GOV-1' was used for another amount",
        ("--amount-yuan", "0", "--reference", "X"): "more than 0 yuan",
        ("--amount-yuan", "-5", "--reference", "X"): "more than 0 yuan",
        ("--amount-yuan", "1.001", "--reference", "X"): "more than two decimals",
        ("--amount-fen", "0", "--reference", "X"): "amount_fen must be from 1",
        ("--reference", "X"): "give the amount once",
        ("--amount-fen", "1", "--amount-yuan", "1", "--reference", "X"): "give the amount once",
        ("--amount-fen", "1", "--reference", "X", "--operator", "NOPE"): "no active operator",
    }
    for args, says in refused.items():
        r = _cli(tmp_path, "fund", "deposit", *args)
        assert r.returncode == 1, (args, r.stdout, r.stderr)
        assert says in r.stderr and "Traceback" not in r.stderr, (args, r.stderr)

    settings = _settings(tmp_path, "")
    with unit_of_work(get_engine(settings), write=False) as session:
        totals = fund.totals(session)
    assert (totals.deposited_fen, totals.balance_fen) == (100_000_050, 100_000_050)
