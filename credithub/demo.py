"""The demo world `up` starts: the city's partners and their systems' addresses.

Partners are created once; their keys live in `.credithub/up.json` (mode 600),
so a second `up` finds the same partners and keys.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from hub.context import HubContext
from hub.core import partner_admin
from hub.settings import Settings

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
    """API keys by partner code: the known ones, plus new partners or new keys as needed
    (a key lost with up.json is replaced by a new one)."""
    wanted = [
        (kind, code, name, webhook_url if kind != "operator" else None)
        for kind, code, name in demo_partners()
    ]
    fresh = partner_admin.ensure(HubContext.of(settings), wanted, set(known))
    return {**known, **fresh}


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
