"""Firm codes: the unified social credit code (统一社会信用代码, GB 32100-2015).

Every firm, cooperative and organisation in China has one: 18 characters of a
31-character alphabet (digits and capitals without I, O, Z, S, V), the last a
check character over the first 17 (weights 3^i mod 31, check = 31 - sum mod
31, where 31 is written "0").

Only the alphabet and the check character are checked. The first character
(the registering authority) may be a letter — `N` for rural collectives and
farmers' cooperatives registered by agriculture departments, `Y` for other
organisations — and the region code inside is not looked up: a real code is
never refused for its authority or area alone (CONTRACT.md §1). python-stdnum's
`cn.uscc` wants eight leading digits, so it is not used here.
"""

from __future__ import annotations

import re

from hub.core.personal_data import mask_id

ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)
_VALUE = {char: value for value, char in enumerate(ALPHABET)}
_SHAPE = re.compile(f"[{ALPHABET}]{{18}}")


def check_character(body: str) -> str:
    """The check character for the first 17 characters of a code (of the alphabet)."""
    if len(body) != 17 or any(char not in _VALUE for char in body):
        raise ValueError("a code's body is 17 characters of the code alphabet")
    total = sum(_VALUE[char] * weight for char, weight in zip(body, WEIGHTS, strict=True))
    return ALPHABET[(31 - total % 31) % 31]


def normalize_uscc(text: str) -> str | None:
    """The code in canonical form (upper case), or None when it is not a valid code.

    Nothing is stripped: spaces or separators make it invalid. Only ASCII is
    upper-cased (a ligature such as "ﬀ" would otherwise become "FF").
    """
    if not text.isascii():
        return None
    code = text.upper()
    if not _SHAPE.fullmatch(code):
        return None
    return code if check_character(code[:17]) == code[17] else None


def mask_uscc(code: str) -> str:
    """`9135**********123X`: first and last four characters, as identity numbers are shown."""
    return mask_id(code)
