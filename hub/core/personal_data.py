"""Personal data: identity numbers, names and phones.

Encrypted at rest with a key kept outside the database (AES-256-GCM), found by
a keyed hash, shown masked, and never written to a log line.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
from datetime import date, timedelta
from functools import lru_cache
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from hub.core.private_files import private_folder
from hub.settings import Settings, get_settings

_ID_WEIGHTS = [pow(2, 17 - i, 11) for i in range(17)]
_ID_CHECK = "10X98765432"
_ID_SHAPE = re.compile(r"[0-9]{17}[0-9X]")


def normalize_id_number(value: str) -> str | None:
    """The identity number in canonical form, or None when it is not valid.

    GB 11643: 6-digit area code, birth date YYYYMMDD, 3-digit sequence, and a
    check character (mod 11-2, `X` for 10). The area code is deliberately not
    checked against a table: areas are renamed and split, and a real number
    must never be refused for its area alone.
    """
    number = value.strip().upper()
    if not _ID_SHAPE.fullmatch(number):  # ASCII only: `isdigit` also takes "²" and "１"
        return None
    if birth_date(number) is None:
        return None
    total = sum(int(d) * w for d, w in zip(number[:17], _ID_WEIGHTS, strict=True))
    return number if _ID_CHECK[total % 11] == number[17] else None


def birth_date(id_number: str) -> date | None:
    """The birth date inside an identity number, if it is a real date."""
    try:
        born = date(int(id_number[6:10]), int(id_number[10:12]), int(id_number[12:14]))
    except ValueError:
        return None
    # A day's grace for the zones: "today" is not the same date everywhere.
    return born if date(1900, 1, 1) <= born <= date.today() + timedelta(days=1) else None


def mask_id(value: str) -> str:
    """`3502**********1234`: first and last four characters only."""
    return f"{value[:4]}{'*' * 10}{value[-4:]}"


class Vault:
    """Encrypts and hashes personal data with keys derived from one secret."""

    def __init__(self, master_key: bytes):
        self._aead = AESGCM(hmac.digest(master_key, b"credithub/encrypt/v1", "sha256"))
        self._hash_key = hmac.digest(master_key, b"credithub/lookup/v1", "sha256")

    def encrypt(self, plaintext: str) -> bytes:
        nonce = os.urandom(12)
        return nonce + self._aead.encrypt(nonce, plaintext.encode(), None)

    def decrypt(self, blob: bytes) -> str:
        return self._aead.decrypt(blob[:12], blob[12:], None).decode()

    def lookup_hash(self, value: str) -> str:
        """A keyed hash to find a record by its value without storing the value."""
        return hmac.new(self._hash_key, value.encode(), hashlib.sha256).hexdigest()


def load_master_key(settings: Settings) -> bytes:
    """CREDITHUB_SECRET_KEY, or a key file under the home folder made on first run."""
    if settings.secret_key:
        return hashlib.sha256(settings.secret_key.encode()).digest()
    path = Path(settings.home) / "secret.key"
    if not path.exists():
        # Written whole to a private temporary file, then linked into place, so a
        # racing process either wins or reads the winner's complete key.
        private_folder(path.parent)
        tmp = path.with_name(f".secret.key.{os.getpid()}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_hex(32))
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    return bytes.fromhex(path.read_text().strip())


@lru_cache(maxsize=4)
def _vault_for(home: str, secret_key: str) -> Vault:
    return Vault(load_master_key(Settings(home=Path(home), secret_key=secret_key)))


def get_vault(settings: Settings | None = None) -> Vault:
    settings = settings or get_settings()
    return _vault_for(str(settings.home), settings.secret_key)
