"""Money as people read it: integer fen shown as yuan with two decimals (and as a
number of yuan for metrics).

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


def yuan_number(fen: int) -> float:
    """Fen as a number of yuan, for metrics (Prometheus values are 64-bit floats):
    one correctly rounded division of the exact integer, never a sum of floats, so
    the shortest decimal that names the float — what a metric's text shows — is
    the exact amount to the fen for any amount under 2^46 yuan (70 trillion)."""
    if isinstance(fen, bool) or not isinstance(fen, int):
        raise TypeError(f"amounts are integer fen, not {type(fen).__name__}")
    return fen / 100
