"""The operator's command line (CONTRACT.md §7), run for real.

Every command runs as its own process (the installed `credithub` console
script, or `python -m credithub.cli`), with CREDITHUB_HOME pointing at a
temporary folder and the working directory set to an unrelated folder, so the
tests also prove that every command works from any directory. The API side is
checked with the real app on the same database.

Identity numbers are made here with an independent GB 11643 check-character
helper (the standard weights written out, not taken from the hub).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import settings as hyp_settings
from hypothesis import strategies as st
from sqlalchemy import Engine, select
from starlette.testclient import TestClient

from hub.core import clock
from hub.core.db import get_engine, unit_of_work
from hub.core.personal_data import get_vault, normalize_id_number
from hub.settings import Settings
from models.core.tables import Base, Partner
from models.medical.tables import CreditLine, Resident

# --------------------------------------------------------------------------
# GB 11643 helper (independent of hub.personal_data)

GB_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
GB_CHECK = "10X98765432"  # indexed by (sum of digit * weight) mod 11


def check_char(first17: str) -> str:
    assert len(first17) == 17 and first17.isascii() and first17.isdigit()
    return GB_CHECK[sum(int(d) * w for d, w in zip(first17, GB_WEIGHTS, strict=True)) % 11]


def make_id(area: str, born: date | str, seq: int) -> str:
    """An identity number with a correct check character (born may be a raw YYYYMMDD)."""
    ymd = born if isinstance(born, str) else born.strftime("%Y%m%d")
    first17 = f"{area}{ymd}{seq:03d}"
    return first17 + check_char(first17)


def id_with_check(area: str, born: date, want: str) -> str:
    """A valid number whose check character is `want` (e.g. 'X')."""
    for seq in range(1000):
        number = make_id(area, born, seq)
        if number[-1] == want:
            return number
    raise AssertionError("no sequence gives that check character")


def wrong_check(number: str) -> str:
    """The same number with a different (wrong) check character."""
    other = next(c for c in "0123456789X" if c != number[-1])
    return number[:-1] + other


def test_helper_matches_the_published_example() -> None:
    # The example number printed in GB 11643 itself.
    assert make_id("110105", date(1949, 12, 31), 2) == "11010519491231002X"


# --------------------------------------------------------------------------
# Identity numbers, property-based

_TODAY = date.today()


@st.composite
def valid_ids(draw: st.DrawFn) -> str:
    area = draw(st.integers(0, 999_999).map(lambda n: f"{n:06d}"))
    born = draw(st.dates(min_value=date(1900, 1, 1), max_value=_TODAY))
    seq = draw(st.integers(0, 999))
    return make_id(area, born, seq)


@hyp_settings(max_examples=300, deadline=None)
@given(valid_ids())
def test_every_valid_identity_number_is_accepted(number: str) -> None:
    assert normalize_id_number(number) == number
    if number.endswith("X"):
        assert normalize_id_number(number.lower()) == number  # lowercase x: stored uppercase
    assert normalize_id_number(f"  {number} ") == number


@hyp_settings(max_examples=300, deadline=None)
@given(valid_ids(), st.integers(0, 17), st.integers(1, 10))
def test_changing_any_single_character_is_rejected(number: str, pos: int, shift: int) -> None:
    if pos < 17:  # any of the 17 digits, to any other digit
        changed = number[:pos] + str((int(number[pos]) + min(shift, 9)) % 10) + number[pos + 1 :]
    else:  # the check character, to any other check character
        others = [c for c in GB_CHECK if c != number[17]]
        changed = number[:17] + others[shift - 1]
    assert changed != number
    assert normalize_id_number(changed) is None, changed


def test_area_codes_are_never_checked_against_a_table() -> None:
    # Xiamen Siming (350203), people born before 1983, and made-up areas.
    for born in (date(1950, 6, 1), date(1980, 1, 1), date(1982, 12, 31)):
        for seq in (0, 123, 999):
            number = make_id("350203", born, seq)
            assert normalize_id_number(number) == number
    for area in ("000000", "999999", "350299", "710000", "810000"):
        number = make_id(area, date(1975, 5, 5), 7)
        assert normalize_id_number(number) == number


@pytest.mark.parametrize(
    "raw",
    [
        "19800230",  # 30 February
        "19810229",  # 29 February in a common year
        "19801301",  # month 13
        "19800100",  # day 0
        "18991231",  # before 1900
    ],
)
def test_impossible_birth_dates_are_rejected(raw: str) -> None:
    assert normalize_id_number(make_id("350203", raw, 1)) is None


def test_birth_date_in_the_future_is_rejected() -> None:
    future = _TODAY + timedelta(days=400)
    assert normalize_id_number(make_id("350203", future, 1)) is None


@pytest.mark.parametrize("digit", ["²", "١", "５", "𝟓"])
def test_non_ascii_digits_are_rejected_not_crashing(digit: str) -> None:
    """str.isdigit() is true for these, but they are not GB 11643 digits.

    The canonical form must be 18 ASCII characters, and the check must never
    raise (a raise is a 500 at the API and aborts a whole line import).
    """
    good = make_id("350203", date(1980, 1, 1), 123)
    for pos in (0, 8, 16):
        changed = good[:pos] + digit + good[pos + 1 :]
        result = normalize_id_number(changed)  # must not raise
        assert result is None or (result.isascii() and len(result) == 18), repr(result)


def test_full_width_digits_are_not_a_canonical_identity_number() -> None:
    """Full-width digits with a correct checksum (and an ASCII X): refused, or
    folded to ASCII -- never kept as another spelling of the same person."""
    with_x = id_with_check("350203", date(1980, 1, 1), "X")
    full_width = "".join(chr(ord(c) + 0xFEE0) if c.isdigit() else c for c in with_x)
    result = normalize_id_number(full_width)
    assert result is None or result == with_x, repr(result)


# --------------------------------------------------------------------------
# Running the real command


def _command() -> list[str]:
    script = Path(sys.executable).with_name("credithub")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "credithub.cli"]


@dataclass
class Hub:
    """One hub: a home folder, a database, the CLI and the in-process app on it."""

    home: Path
    cwd: Path
    database_url: str  # "" for the SQLite file under home
    settings: Settings
    client: TestClient

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CREDITHUB_")}
        env.pop("PYTHONPATH", None)  # the command must find its code itself
        env["CREDITHUB_HOME"] = str(self.home)
        if self.database_url:
            env["CREDITHUB_DATABASE_URL"] = self.database_url
        env["COLUMNS"] = "200"
        return subprocess.run(
            [*_command(), *args], cwd=self.cwd, env=env, capture_output=True, text=True,
            timeout=120,
        )  # fmt: skip

    @property
    def engine(self) -> Engine:
        return get_engine(self.settings)

    def add_partner(self, kind: str, code: str, *extra: str) -> dict[str, Any]:
        r = self.run(
            "partners", "add", "--kind", kind, "--name", f"{code} name", "--code", code, *extra
        )
        assert r.returncode == 0, r.stderr
        return json.loads(r.stdout)

    def eligibility(self, key: str, id_number: str) -> Any:
        return self.client.post(
            "/v1/eligibility-checks", json={"id_number": id_number},
            headers={"Authorization": f"Bearer {key}", "Idempotency-Key": uuid.uuid4().hex},
        )  # fmt: skip

    def get(self, key: str, path: str) -> Any:
        return self.client.get(path, headers={"Authorization": f"Bearer {key}"})

    def stored_text(self) -> bytes:
        """Everything the database holds, as bytes to search for plaintext.

        SQLite: the raw bytes of the database file and its WAL; every backend:
        every value of every row of every table.
        """
        blobs: list[bytes] = []
        if not self.database_url:
            # Opening and closing the file in this process would drop the POSIX
            # locks of this process's open SQLite connections (a known SQLite
            # hazard), leaving them on a stale snapshot: close them first.
            self.engine.dispose()
            for name in ("credithub.db", "credithub.db-wal"):
                path = self.home / name
                if path.exists():
                    blobs.append(path.read_bytes())
        with unit_of_work(self.engine, write=False) as session:
            for table in Base.metadata.sorted_tables:
                for row in session.execute(select(table)):
                    for value in row:
                        blobs.append(value if isinstance(value, bytes) else str(value).encode())
        return b"\n".join(blobs)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.pg)])
def hub(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Hub]:
    from integrations.endpoints.app import create_app

    home, cwd = tmp_path / "home", tmp_path / "elsewhere"
    cwd.mkdir()
    # PostgreSQL: conftest's migrated database, emptied for this test.
    pg = request.param != "sqlite"
    url = request.getfixturevalue("pg_settings").database_url if pg else ""
    settings = Settings(
        home=home,
        database_url=url,
        auth_cache_seconds=0,
        rate_limit_per_second=0,
        unknown_key_lookups_per_second=0,
    )
    hub = Hub(home, cwd, url, settings, client=None)  # type: ignore[arg-type]
    # The first command creates the home folder, the database and the key file.
    r = hub.run("db", "upgrade")
    assert r.returncode == 0, r.stderr
    if not url:
        assert (home / "credithub.db").exists()
    clock.set_now(None)
    hub.client = TestClient(create_app(settings), raise_server_exceptions=False)
    try:
        with hub.client:
            yield hub
    finally:
        clock.set_now(None)
        if not url:
            from hub.core import db

            engine = db._engines.pop(settings.sqlalchemy_url(), None)
            if engine is not None:
                engine.dispose()
    # Nothing was written to the working directory (no stray .credithub/ there).
    assert sorted(p.name for p in cwd.iterdir() if not p.name.endswith(".csv")) == []


def _assert_unauthenticated(response: Any) -> None:
    assert response.status_code == 401, response.text
    assert response.headers.get("www-authenticate", "").lower().startswith("bearer")
    assert response.json()["code"] == "unauthenticated"


# --------------------------------------------------------------------------
# partners add / rotate-key / disable

ANY_ID = make_id("350203", date(1980, 1, 1), 11)


def test_partners_add_rotate_and_disable(hub: Hub) -> None:
    # add: exactly one JSON object on stdout
    r = hub.run("partners", "add", "--kind", "hospital", "--name", "Xiamen First Hospital",
                "--code", "XMH1", "--webhook-url", "https://his.example/hooks")  # fmt: skip
    assert r.returncode == 0, r.stderr
    lines = [ln for ln in r.stdout.splitlines() if ln.strip()]
    assert len(lines) == 1, r.stdout
    hospital = json.loads(lines[0])
    assert isinstance(hospital, dict)
    assert set(hospital) == {"partner_id", "kind", "code", "api_key", "webhook_secret"}
    assert hospital["kind"] == "hospital" and hospital["code"] == "XMH1"
    assert hospital["partner_id"] and hospital["api_key"] and hospital["webhook_secret"]
    bank = hub.add_partner("bank", "BANK1")
    assert bank["kind"] == "bank" and bank["api_key"] != hospital["api_key"]
    assert (hub.home / "secret.key").exists()  # the key file lives in CREDITHUB_HOME
    old_key = hospital["api_key"]

    # a duplicate code: a clear message, non-zero exit, no key printed, nothing added
    r = hub.run("partners", "add", "--kind", "bank", "--name", "Another", "--code", "XMH1")
    assert r.returncode != 0
    assert "XMH1" in r.stderr + r.stdout and "exist" in (r.stderr + r.stdout).lower()
    assert "api_key" not in r.stdout and "Traceback" not in r.stderr
    # a bad kind
    r = hub.run("partners", "add", "--kind", "pharmacy", "--name", "P", "--code", "PH1")
    assert r.returncode != 0
    assert "kind" in (r.stderr + r.stdout).lower() and "api_key" not in r.stdout
    assert "Traceback" not in r.stderr
    with unit_of_work(hub.engine, write=False) as session:
        partners = {p.code: p for p in session.scalars(select(Partner))}
    assert set(partners) == {"XMH1", "BANK1"}
    assert partners["XMH1"].kind == "hospital" and partners["XMH1"].name == "Xiamen First Hospital"
    assert partners["XMH1"].webhook_url == "https://his.example/hooks"
    assert partners["BANK1"].webhook_url is None

    # the key works against the API; a wrong one does not
    r = hub.eligibility(old_key, ANY_ID)
    assert r.status_code == 200, r.text
    assert r.json() == {"eligible": False, "reason": "not_enrolled"}
    assert hub.get(bank["api_key"], "/v1/credit-lines/cl_nope").status_code == 404
    _assert_unauthenticated(hub.eligibility(old_key + "x", ANY_ID))

    # no plaintext key or webhook secret in the database
    stored = hub.stored_text()
    for secret in (old_key, bank["api_key"], hospital["webhook_secret"], bank["webhook_secret"]):
        assert secret.encode() not in stored

    # rotate-key: a new key; the old one keeps working within the grace period
    r = hub.run("partners", "rotate-key", "XMH1")
    assert r.returncode == 0, r.stderr
    new_key = json.loads(r.stdout)["api_key"]
    rotated_at = datetime.now(UTC)
    assert new_key and new_key != old_key
    assert hub.eligibility(new_key, ANY_ID).status_code == 200
    assert hub.eligibility(old_key, ANY_ID).status_code == 200
    assert new_key.encode() not in hub.stored_text()
    clock.set_now(rotated_at + timedelta(hours=23))
    assert hub.eligibility(old_key, ANY_ID).status_code == 200
    assert hub.eligibility(new_key, ANY_ID).status_code == 200
    # past the 24-hour grace the old key is refused, the new one still works
    clock.set_now(rotated_at + timedelta(hours=24, minutes=1))
    _assert_unauthenticated(hub.eligibility(old_key, ANY_ID))
    assert hub.eligibility(new_key, ANY_ID).status_code == 200

    r = hub.run("partners", "rotate-key", "NOSUCH")
    assert r.returncode != 0 and "NOSUCH" in r.stderr + r.stdout
    assert "Traceback" not in r.stderr

    # disable: every key of the partner is refused, even one still in its grace period
    clock.set_now(rotated_at + timedelta(hours=23))
    assert hub.eligibility(old_key, ANY_ID).status_code == 200
    r = hub.run("partners", "disable", "XMH1")
    assert r.returncode == 0, r.stderr
    _assert_unauthenticated(hub.eligibility(old_key, ANY_ID))
    _assert_unauthenticated(hub.eligibility(new_key, ANY_ID))
    clock.set_now(None)
    _assert_unauthenticated(hub.eligibility(new_key, ANY_ID))
    # other partners are untouched
    assert hub.get(bank["api_key"], "/v1/credit-lines/cl_nope").status_code == 404


# --------------------------------------------------------------------------
# lines import

HEADER = "id_number,name,phone,bank_code,limit_fen"
SIMING = "350203"


def _csv(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _bad_lines(stdout: str) -> dict[int, str]:
    """{line number: reason} from the `line N: reason` lines."""
    found: dict[int, str] = {}
    for ln in stdout.splitlines():
        m = re.match(r"^line (\d+): (.+)$", ln.strip())
        if m:
            assert int(m.group(1)) not in found, f"line {m.group(1)} reported twice"
            found[int(m.group(1))] = m.group(2)
    return found


def _summary(out: str) -> dict[str, int]:
    counts = {}
    for word in ("imported", "skipped", "bad"):
        m = re.search(rf"(\d+)\s+{word}\b", out)
        assert m, f"no '{word}' count in the summary: {out!r}"
        counts[word] = int(m.group(1))
    return counts


def test_lines_import(hub: Hub) -> None:
    bank = hub.add_partner("bank", "BANK1")
    hospital = hub.add_partner("hospital", "HOSP1")

    a = make_id(SIMING, date(1980, 1, 1), 123)  # Xiamen Siming, born before 1983
    b = id_with_check(SIMING, date(1965, 7, 15), "X")  # written with a lowercase x
    c = make_id("110101", date(1990, 3, 7), 1)  # twice in the file
    d = make_id("440305", date(1995, 12, 31), 222)  # the largest limit
    not_imported = {  # valid numbers on rows that are bad for another reason
        "bank": make_id("310101", date(1970, 1, 1), 10),
        "float": make_id("310101", date(1970, 1, 1), 11),
        "zero": make_id("310101", date(1970, 1, 1), 12),
        "over": make_id("310101", date(1970, 1, 1), 13),
        "word": make_id("310101", date(1970, 1, 1), 14),
        "negative": make_id("310101", date(1970, 1, 1), 15),
        "exp": make_id("310101", date(1970, 1, 1), 16),
        "noname": make_id("310101", date(1970, 1, 1), 17),
        "cols4": make_id("310101", date(1970, 1, 1), 18),
        "cols6": make_id("310101", date(1970, 1, 1), 19),
    }
    bad_checksum = wrong_check(make_id(SIMING, date(1981, 2, 3), 44))
    bad_birth = make_id(SIMING, "19810230", 45)  # 30 February, checksum right
    names = {a: "陈阿明", b: "林美玲", c: "黄志强", d: "Zheng Wei"}
    phones = {a: "13800001111", b: "13900002222", c: "13700003333", d: "+86 137-0000-4444"}
    # each row's line number in the file on the right; the header is line 1
    content = [
        HEADER,                                                              # 1
        f"{a},{names[a]},{phones[a]},BANK1,100000",                          # 2 good
        f"{b.lower()},{names[b]},{phones[b]},BANK1,200000",                  # 3 good, lowercase x
        f"{bad_checksum},吴坏码,13600005555,BANK1,100000",                    # 4 checksum
        f"{bad_birth},郑无日,13600006666,BANK1,100000",                       # 5 birth date
        f"{not_imported['bank']},周无行,13600007777,NOBANK,100000",            # 6 unknown bank
        f"{not_imported['float']},孙小数,13600008888,BANK1,100000.5",          # 7 float
        f"{not_imported['zero']},钱零元,13600009999,BANK1,0",                   # 8 zero
        f"{not_imported['over']},赵太多,13500001111,BANK1,1000000000001",       # 9 over 10^12
        f"{not_imported['word']},冯文字,13500002222,BANK1,lots",                # 10 not a number
        "",                                                                   # 11 blank: skipped
        f"{c},{names[c]},{phones[c]},BANK1,300000",                          # 12 good
        f"{not_imported['noname']},,13500003333,BANK1,100000",                 # 13 empty name
        f"{not_imported['cols4']},何四列,13500004444,BANK1",                    # 14 4 columns
        f"{not_imported['cols6']},许六列,13500005555,BANK1,100000,extra",       # 15 6 columns
        f"{c},{names[c]},{phones[c]},BANK1,999999",                          # 16 dup in file
        f"{d},{names[d]},{phones[d]},BANK1,1000000000000",                    # 17 good, 10^12
        f"{not_imported['negative']},吕负数,13500006666,BANK1,-5",              # 18 negative
        f"{not_imported['exp']},施指数,13500007777,BANK1,1e5",                  # 19 exponent
        f"{not_imported['bank']},周无行,13600007777,HOSP1,100000",             # 20 not a bank
    ]  # fmt: skip
    expected_bad = {
        4: "id_number", 5: "id_number", 6: "bank_code", 7: "limit_fen", 8: "limit_fen",
        9: "limit_fen", 10: "limit_fen", 13: "name", 14: "column", 15: "column",
        18: "limit_fen", 19: "limit_fen", 20: "bank_code",
    }  # fmt: skip
    data = _csv(hub.cwd / "lines.csv", content)
    personal = [x for x in (a, b, b.lower(), c, d, bad_checksum, bad_birth, *not_imported.values())]
    personal += list(names.values()) + list(phones.values())
    personal += [
        row.split(",")[1] for row in content[1:] if row.count(",") >= 2 and row.split(",")[1]
    ]
    personal += [row.split(",")[2] for row in content[1:] if row.count(",") >= 2]

    def check_no_personal_data(r: subprocess.CompletedProcess[str]) -> None:
        out = r.stdout + r.stderr
        for value in personal:
            assert value not in out, f"personal data in the output: {value!r}"

    r = hub.run("lines", "import", "lines.csv")  # a path relative to the working directory
    assert "Traceback" not in r.stderr, r.stderr
    assert r.returncode == 1, (r.stdout, r.stderr)
    bad = _bad_lines(r.stdout)
    assert set(bad) == set(expected_bad), (bad, r.stderr)
    for line_no, keyword in expected_bad.items():
        assert keyword in bad[line_no].lower(), (line_no, bad[line_no])
    check_no_personal_data(r)
    # a summary counting every data row
    assert _summary(r.stdout + r.stderr) == {"imported": 4, "skipped": 1, "bad": len(expected_bad)}

    # personal data is stored encrypted only (checked before any API call is made)
    stored = hub.stored_text()
    for value in (a, b, c, d, *names.values(), *phones.values()):
        assert value.encode() not in stored, f"plaintext in the database: {value!r}"

    # the lines exist, with the imported limits, at the bank chosen
    expected_limits = {a: 100_000, b: 200_000, c: 300_000, d: 10**12}
    line_ids = {}
    for number, limit in expected_limits.items():
        r = hub.eligibility(hospital["api_key"], number)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["eligible"] is True and body["available_fen"] == limit, (number, body)
        line_ids[number] = body["credit_line_id"]
    assert hub.eligibility(hospital["api_key"], b.lower()).json()["credit_line_id"] == line_ids[b]
    r = hub.get(bank["api_key"], f"/v1/credit-lines/{line_ids[a]}")
    assert r.status_code == 200, r.text
    assert r.json()["bank_code"] == "BANK1" and r.json()["limit_fen"] == 100_000
    assert r.json()["status"] == "active" and r.json()["outstanding_fen"] == 0
    for number in not_imported.values():
        assert hub.eligibility(hospital["api_key"], number).json() == {
            "eligible": False, "reason": "not_enrolled",
        }  # fmt: skip
    # stored: one resident each, identity numbers in canonical (uppercase X) form
    vault = get_vault(hub.settings)
    with unit_of_work(hub.engine, write=False) as session:
        stored_ids = sorted(
            vault.decrypt(r.id_number_enc) for r in session.scalars(select(Resident))
        )
        line_count = len(session.scalars(select(CreditLine)).all())
    assert stored_ids == sorted(expected_limits), stored_ids
    assert b in stored_ids and b.endswith("X")
    assert line_count == 4

    # re-running the same file imports nothing new; holders are skipped and counted
    r = hub.run("lines", "import", str(data))
    assert "Traceback" not in r.stderr, r.stderr
    assert r.returncode == 1
    assert set(_bad_lines(r.stdout)) == set(expected_bad)
    assert _summary(r.stdout + r.stderr) == {"imported": 0, "skipped": 5, "bad": len(expected_bad)}
    check_no_personal_data(r)
    with unit_of_work(hub.engine, write=False) as session:
        assert len(session.scalars(select(CreditLine)).all()) == 4
        assert len(session.scalars(select(Resident)).all()) == 4

    # a file without bad rows exits 0 (here one new resident, one already holding a line)
    e = make_id(SIMING, date(1982, 12, 31), 999)
    good = _csv(hub.cwd / "good.csv", [
        HEADER, f"{e},蔡新人,13300001234,BANK1,50000", f"{a},{names[a]},{phones[a]},BANK1,70000",
    ])  # fmt: skip
    r = hub.run("lines", "import", good.name)
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert _bad_lines(r.stdout) == {}
    assert _summary(r.stdout + r.stderr) == {"imported": 1, "skipped": 1, "bad": 0}
    assert e not in r.stdout + r.stderr and "蔡新人" not in r.stdout + r.stderr
    assert hub.eligibility(hospital["api_key"], e).json()["available_fen"] == 50_000
    assert hub.eligibility(hospital["api_key"], a).json()["available_fen"] == 100_000  # unchanged

    # a wrong header fails clearly, importing nothing
    f = make_id(SIMING, date(1979, 9, 9), 5)
    wrong = _csv(
        hub.cwd / "wrong.csv", ["id,name,phone,bank,limit", f"{f},韩表头,13300005678,BANK1,1000"]
    )
    r = hub.run("lines", "import", wrong.name)
    assert r.returncode != 0
    assert "Traceback" not in r.stderr, r.stderr
    message = (r.stdout + r.stderr).lower()
    assert "header" in message and "id_number" in message
    assert f not in r.stdout + r.stderr
    assert hub.eligibility(hospital["api_key"], f).json()["reason"] == "not_enrolled"


def test_lines_import_odd_digits_are_bad_rows_not_a_crash(hub: Hub) -> None:
    """Characters for which str.isdigit() is true but int() fails ("²").

    They must be reported as bad rows like any other; the good rows around
    them are still imported.
    """
    hub.add_partner("bank", "BANK1")
    hospital = hub.add_partner("hospital", "HOSP1")
    good1 = make_id(SIMING, date(1980, 5, 5), 1)
    good2 = make_id(SIMING, date(1980, 5, 5), 2)
    odd_id = "²" + make_id(SIMING, date(1980, 5, 5), 3)[1:]
    full_width = id_with_check(SIMING, date(1980, 5, 6), "X")
    full_width = "".join(chr(ord(ch) + 0xFEE0) if ch.isdigit() else ch for ch in full_width)
    _csv(hub.cwd / "odd.csv", [
        HEADER,
        f"{good1},甲,13800000001,BANK1,100000",                  # 2 good
        f"{make_id(SIMING, date(1980, 5, 5), 5)},乙,13800000002,BANK1,²",  # 3 bad limit
        f"{odd_id},丙,13800000003,BANK1,100000",                  # 4 bad id
        f"{good2},丁,13800000004,BANK1,１００００",                # 5 full-width limit
        f"{full_width},戊,13800000005,BANK1,100000",              # 6 full-width id
    ])  # fmt: skip
    r = hub.run("lines", "import", "odd.csv")
    assert "Traceback" not in r.stderr, r.stderr[-3000:]
    assert r.returncode == 1, (r.stdout, r.stderr[-3000:])
    bad = _bad_lines(r.stdout)
    assert {3, 4} <= set(bad), bad
    assert hub.eligibility(hospital["api_key"], good1).json()["available_fen"] == 100_000
    # A full-width number is either refused or stored in canonical ASCII form.
    vault = get_vault(hub.settings)
    with unit_of_work(hub.engine, write=False) as session:
        for resident in session.scalars(select(Resident)):
            number = vault.decrypt(resident.id_number_enc)
            assert number.isascii() and len(number) == 18, repr(number)
        limits = [line.limit_fen for line in session.scalars(select(CreditLine))]
    assert all(isinstance(x, int) and x >= 1 for x in limits)


def test_lines_import_reads_what_excel_writes_and_refuses_binary_files(hub: Hub) -> None:
    """UTF-8 with or without a BOM and GBK/GB18030 (Excel in Chinese locales) are
    read; binary files and other text get one clear line and exit status 1."""
    hub.add_partner("bank", "BANK1")
    hospital = hub.add_partner("hospital", "HOSP1")
    people = {
        "gbk": (make_id(SIMING, date(1971, 1, 1), 1), "陈阿明"),
        "gb18030": (make_id(SIMING, date(1971, 1, 1), 2), "林䶮"),  # outside GBK
        "bom": (make_id(SIMING, date(1971, 1, 1), 3), "黄志强"),
        "plain": (make_id(SIMING, date(1971, 1, 1), 4), "Zheng Wei"),
    }
    encodings = {"gbk": "gbk", "gb18030": "gb18030", "bom": "utf-8-sig", "plain": "utf-8"}
    for label, (number, name) in people.items():
        text = f"{HEADER}\r\n{number},{name},13800000001,BANK1,100000\r\n"
        (hub.cwd / f"{label}.csv").write_bytes(text.encode(encodings[label]))
        r = hub.run("lines", "import", f"{label}.csv")
        assert "Traceback" not in r.stderr, r.stderr
        assert r.returncode == 0, (label, r.stdout, r.stderr)
        assert _summary(r.stdout + r.stderr) == {"imported": 1, "skipped": 0, "bad": 0}
        assert hub.eligibility(hospital["api_key"], number).json()["eligible"] is True
    vault = get_vault(hub.settings)
    with unit_of_work(hub.engine, write=False) as session:
        names = {vault.decrypt(r.name_enc) for r in session.scalars(select(Resident))}
    assert names == {name for _, name in people.values()}  # decoded, not mangled

    png = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x01\x00" + bytes(range(256))
    elsewhere = hub.home.parent / "scan.png"
    elsewhere.write_bytes(png)
    (hub.cwd / "renamed.csv").write_bytes(png)  # a picture saved under a CSV name
    (hub.cwd / "noise.csv").write_bytes(bytes(range(256)) * 40)
    (hub.cwd / "utf16.csv").write_bytes(f"{HEADER}\n".encode("utf-16"))
    (hub.cwd / "latin.csv").write_bytes(f"{HEADER}\n".encode() + b"\xff\xfe\xff,\x80\n")
    for path, word in [
        (str(elsewhere), "binary"),
        ("renamed.csv", "binary"),
        ("noise.csv", "binary"),
        ("utf16.csv", "UTF-16"),
        ("latin.csv", "GB18030"),
    ]:
        r = hub.run("lines", "import", path)
        assert r.returncode == 1, (path, r.stdout, r.stderr)
        assert "Traceback" not in r.stderr, r.stderr
        assert r.stdout == "" and len(r.stderr.strip().splitlines()) == 1, (path, r.stderr)
        assert word in r.stderr and Path(path).name in r.stderr, r.stderr
    with unit_of_work(hub.engine, write=False) as session:
        assert len(session.scalars(select(CreditLine)).all()) == 4  # nothing else imported


@pytest.mark.parametrize("hub", ["sqlite"], indirect=True)  # not backend-specific
def test_run_refuses_bad_dates_and_says_when_the_hub_is_not_up(hub: Hub) -> None:
    """`credithub run`: one clear line and exit status 1 for a date that is not one,
    for a date after today without --allow-future, and when `up` is not running."""
    tomorrow = (date.today() + timedelta(days=2)).isoformat()
    cases = [
        (["collections", "--as-of", "notadate"], "YYYY-MM-DD"),
        (["collections", "--as-of", "2026-02-30"], "YYYY-MM-DD"),
        (["collections", "--as-of", "20260201"], "YYYY-MM-DD"),
        (["collections", "--as-of", tomorrow], "--allow-future"),
        (["collections"], "credithub up"),  # nothing is up in this home
        (["collections", "--as-of", tomorrow, "--allow-future"], "credithub up"),
        (["collections", "--as-of", "2026-01-31"], "credithub up"),
        (["nosuchflow"], "unknown flow"),
    ]
    for args, word in cases:
        r = hub.run("run", *args)
        assert r.returncode == 1, (args, r.stdout, r.stderr)
        assert "Traceback" not in r.stderr, r.stderr
        assert r.stdout == "" and len(r.stderr.strip().splitlines()) == 1, (args, r.stderr)
        assert word in r.stderr, (args, r.stderr)
    # an up.json whose Prefect server is gone: the same clear line
    (hub.home / "up.json").write_text(json.dumps({"addresses": {"prefect": "http://127.0.0.1:9"}}))
    r = hub.run("run", "settlement")
    assert r.returncode == 1 and "does not answer" in r.stderr and "Traceback" not in r.stderr


def test_commands_on_a_fresh_home_answer_without_a_traceback(tmp_path: Path) -> None:
    """A newcomer's first commands, before any `db upgrade` or `up`."""
    home, cwd = tmp_path / "home", tmp_path / "elsewhere"
    cwd.mkdir()
    fresh = Hub(home, cwd, "", Settings(home=home), client=None)  # type: ignore[arg-type]
    for args, code, word in [
        (("recon", "list"), 0, "0 open mismatches"),
        (("recon", "resolve", "mm_nope", "--note", "x"), 1, "mm_nope"),
        (("audit", "person", make_id(SIMING, date(1980, 1, 1), 1)), 0, "0 recorded uses"),
        (("partners", "disable", "NOPE"), 1, "NOPE"),
        (("partners", "rotate-key", "NOPE"), 1, "NOPE"),
        (("run", "collections"), 1, "credithub up"),
    ]:
        r = fresh.run(*args)
        assert "Traceback" not in r.stderr, (args, r.stderr[-2000:])
        assert r.returncode == code and word in r.stderr, (args, r.stdout, r.stderr[-2000:])


@pytest.mark.parametrize("hub", ["sqlite"], indirect=True)  # not backend-specific
def test_recon_list_refuses_an_unknown_status(hub: Hub) -> None:
    r = hub.run("recon", "list", "--status", "closed")
    assert r.returncode == 1 and "open or resolved" in r.stderr and "Traceback" not in r.stderr
    r = hub.run("recon", "list")
    assert r.returncode == 0 and "0 open mismatches" in r.stderr, r.stderr


@pytest.mark.parametrize("hub", ["sqlite"], indirect=True)  # not backend-specific
def test_api_requests_leave_no_plaintext_identity_number_in_the_database(hub: Hub) -> None:
    """CONTRACT §5: identity numbers are encrypted at rest -- also inside the
    idempotency records that keep a POST's request for 24 hours."""
    hospital = hub.add_partner("hospital", "HOSP1")
    number = make_id(SIMING, date(1980, 1, 1), 77)
    r = hub.eligibility(hospital["api_key"], number)
    assert r.status_code == 200, r.text
    assert number.encode() not in hub.stored_text()


@pytest.mark.parametrize("hub", ["sqlite"], indirect=True)  # not backend-specific
def test_eligibility_check_with_an_odd_digit_is_422_not_500(hub: Hub) -> None:
    hospital = hub.add_partner("hospital", "HOSP1")
    odd = "²" + make_id(SIMING, date(1980, 1, 1), 78)[1:]
    r = hub.eligibility(hospital["api_key"], odd)
    assert r.status_code == 422, (r.status_code, r.text)
    assert r.json()["code"] == "invalid_id_number"
