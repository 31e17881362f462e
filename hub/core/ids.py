"""Opaque, time-ordered ids with a readable prefix (`vis_01J…`).

48 bits of milliseconds then 80 random bits, Crockford base32: ids sort by
creation time, so "newest first" lists page by id alone.
"""

from __future__ import annotations

import os
import time

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"


def new_id(prefix: str) -> str:
    value = (time.time_ns() // 1_000_000) << 80 | int.from_bytes(os.urandom(10), "big")
    chars = []
    for _ in range(26):
        value, digit = divmod(value, 32)
        chars.append(_ALPHABET[digit])
    return f"{prefix}_{''.join(reversed(chars))}"
