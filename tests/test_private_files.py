"""The home folder, the key file and the default SQLite database are the hub's
user's alone (CONTRACT.md §5), whatever the umask, and made so when found looser."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from hub.core.db import dispose_engines, get_engine
from hub.core.personal_data import load_master_key
from hub.settings import Settings


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def permissive_umask() -> Iterator[None]:
    old = os.umask(0o002)  # what many desktops set: group-writable, world-readable
    yield
    os.umask(old)


def test_a_new_home_its_database_and_key_are_owner_only(
    tmp_path: Path, permissive_umask: None
) -> None:
    home = tmp_path / "fresh" / ".credithub"
    settings = Settings(home=home)
    engine = get_engine(settings)
    try:
        with engine.begin() as conn:  # a write, so SQLite makes its -wal and -shm files
            conn.execute(text("CREATE TABLE t (x INTEGER)"))
            conn.execute(text("INSERT INTO t VALUES (1)"))
        load_master_key(settings)
        assert mode(home) == 0o700
        files = [home / "credithub.db", home / "credithub.db-wal", home / "secret.key"]
        assert {f.name: mode(f) for f in files} == {f.name: 0o600 for f in files}
    finally:
        dispose_engines()


def test_a_home_and_database_found_looser_are_tightened(tmp_path: Path) -> None:
    home = tmp_path / ".credithub"
    home.mkdir(mode=0o755)
    (home / "credithub.db").touch(mode=0o644)
    home.chmod(0o755)
    (home / "credithub.db").chmod(0o644)
    try:
        get_engine(Settings(home=home))
        assert (mode(home), mode(home / "credithub.db")) == (0o700, 0o600)
    finally:
        dispose_engines()
