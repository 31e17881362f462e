"""The demo world `up` starts: the city's partners and their systems' addresses.

Partners are created once; their keys live in `.credithub/up.json` (mode 600),
so a second `up` finds the same partners and keys.
"""

from __future__ import annotations

import json
import os
from datetime import timedelta
from pathlib import Path
from typing import Any

from hub.core import clock, partners
from hub.core.db import get_engine, unit_of_work
from hub.core.personal_data import get_vault
from hub.settings import Settings
from models.core.tables import Partner

HOSPITALS = [
    ("XMH1", "Xiamen First Hospital"),
    ("XMH2", "Zhongshan Hospital Xiamen"),
    ("XMH3", "Xiamen Cardiovascular Hospital"),
    ("XMH4", "Xiamen Maternal and Child Health Hospital"),
    ("XMH5", "Xiamen Hospital of Traditional Chinese Medicine"),
]
BANKS = [("XMBANK", "Bank of Xiamen"), ("XMRCB", "Xiamen Rural Commercial Bank")]
OTHERS = [("channel", "IXM", "i Xiamen public service app"), ("operator", "OPS", "Hub operations")]


def demo_partners() -> list[tuple[str, str, str]]:
    """(kind, code, name) of every demo partner."""
    return (
        [("hospital", code, name) for code, name in HOSPITALS]
        + [("bank", code, name) for code, name in BANKS]
        + OTHERS
    )


def ensure_partners(
    settings: Settings, known: dict[str, str], webhook_url: str | None
) -> dict[str, str]:
    """API keys by partner code: the known ones, plus new partners or new keys as needed."""
    vault, keys = get_vault(settings), dict(known)
    with unit_of_work(get_engine(settings)) as session:
        for kind, code, name in demo_partners():
            exists = session.query(Partner).filter(Partner.code == code).one_or_none()
            if exists is None:
                new = partners.add_partner(
                    session,
                    vault,
                    kind=kind,
                    name=name,
                    code=code,
                    webhook_url=webhook_url if kind != "operator" else None,
                    now=clock.now(),
                )
                keys[code] = new.api_key
            elif code not in keys:  # the key was lost with up.json: issue a new one
                keys[code] = partners.rotate_key(session, code, grace=timedelta(0), now=clock.now())
    return keys


def read_up_file(path: Path) -> dict[str, Any]:
    try:
        return dict(json.loads(path.read_text()))
    except (OSError, ValueError):
        return {}


def write_up_file(path: Path, content: dict[str, Any]) -> None:
    """Written readable by its owner only: it holds API keys."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(content, handle, indent=2)
    os.chmod(path, 0o600)
