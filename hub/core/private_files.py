"""Files only the hub's own user may read (CONTRACT.md §5, data protection): the
home folder (`.credithub/` by default), the key file in it, and the default
SQLite database, which holds the partners' data and the encrypted records.
Made so whatever the umask, and tightened when found looser."""

from __future__ import annotations

import os
from pathlib import Path

FOLDER_MODE = 0o700
FILE_MODE = 0o600


def private_folder(path: Path) -> Path:
    """The folder (and any missing parent) created owner-only, or made so."""
    path.mkdir(mode=FOLDER_MODE, parents=True, exist_ok=True)
    if path.stat().st_mode & 0o777 != FOLDER_MODE:
        path.chmod(FOLDER_MODE)
    return path


def private_file(path: Path) -> Path:
    """The file created empty and owner-only if missing, or made owner-only. SQLite
    gives its -wal and -shm files the database file's permissions."""
    private_folder(path.parent)
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE))
    except FileExistsError:
        if path.stat().st_mode & 0o777 != FILE_MODE:
            path.chmod(FILE_MODE)
    return path
