"""Money as people read it: integer fen shown as yuan with two decimals.

Amounts are integer fen everywhere in the hub; this is the one place that turns
them into text for operators (artifacts, the command line, demo reports). It
uses integer arithmetic only, so no amount is ever rounded on its way to a
person (a float has no exact 0.1, and loses whole fen above 2^53).
"""

from __future__ import annotations


def yuan(fen: int) -> str:
    """`123456` → "1,234.56"; `-5` → "-0.05"; thousands separated by commas."""
    if isinstance(fen, bool) or not isinstance(fen, int):
        raise TypeError(f"amounts are integer fen, not {type(fen).__name__}")
    sign = "-" if fen < 0 else ""
    whole, cents = divmod(abs(fen), 100)
    return f"{sign}{whole:,}.{cents:02d}"


def yuan_or_dash(fen: int | None) -> str:
    """As `yuan`, with "—" for an amount that is not there (one side of a mismatch)."""
    return "—" if fen is None else yuan(fen)
