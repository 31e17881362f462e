"""What care costs: charges to hold and final bills whose lines add up exactly."""

from __future__ import annotations

import math
import random
from typing import Any

DEPARTMENTS = ("内科", "外科", "儿科", "眼科", "耳鼻喉科", "口腔科", "皮肤科", "妇产科", "骨科")
OUTPATIENT_ITEMS = (
    ("REG", "挂号费"),
    ("CONS", "诊查费"),
    ("LAB", "检验费"),
    ("IMG", "检查费"),
    ("WMED", "西药费"),
    ("CMED", "中成药费"),
    ("TREAT", "治疗费"),
)
INPATIENT_ITEMS = (
    *OUTPATIENT_ITEMS,
    ("BED", "床位费"),
    ("NURS", "护理费"),
    ("SURG", "手术费"),
    ("MAT", "卫生材料费"),
)
HOLD_RANGE = {"outpatient": (5_000, 200_000), "inpatient": (50_000, 1_000_000)}
HOLDS_PER_VISIT = {"outpatient": (1, 3), "inpatient": (1, 5)}


def log_uniform_fen(rng: random.Random, low: int, high: int) -> int:
    """Charges are skewed: many small ones, a few large; rounded to the jiao (10 fen)."""
    value = math.exp(rng.uniform(math.log(low), math.log(high)))
    return max(low, int(value) // 10 * 10)


def hold_amount(rng: random.Random, kind: str, available_fen: int | None) -> int:
    """A charge to hold; the desk usually keeps within the credit it last saw available."""
    amount = log_uniform_fen(rng, *HOLD_RANGE[kind])
    if available_fen is not None and available_fen > 0 and rng.random() < 0.8:
        amount = min(amount, available_fen)
    return amount


def split_items(rng: random.Random, kind: str, total_fen: int) -> list[dict[str, Any]]:
    """Bill lines that sum exactly to the total; the last absorbs the remainder."""
    catalog = OUTPATIENT_ITEMS if kind == "outpatient" else INPATIENT_ITEMS
    chosen = rng.sample(catalog, k=min(len(catalog), rng.randint(1, 5), max(1, total_fen // 100)))
    weights = [rng.randint(1, 100) for _ in chosen]
    amounts = [total_fen * w // sum(weights) for w in weights[:-1]]
    amounts.append(total_fen - sum(amounts))
    return [
        {"code": c, "name": n, "amount_fen": a} for (c, n), a in zip(chosen, amounts, strict=True)
    ]


def make_bill(
    rng: random.Random, his_bill_id: str, kind: str, held_fen: int, may_exceed: bool = True
) -> dict[str, Any]:
    """The final bill: insurance pays 0-70%, the patient's share is near what was held.

    Now and then the share is over the holds (the line must cover the rest),
    unless `may_exceed` is off because the line already could not.
    """
    if held_fen <= 0 or rng.random() < 0.05:
        self_pay = 0
    elif may_exceed and rng.random() < 0.1:
        self_pay = int(held_fen * rng.uniform(1.0, 1.1))  # over the holds: needs more credit
    else:
        self_pay = int(held_fen * rng.uniform(0.6, 1.0))
    share = rng.uniform(0.0, 0.7)
    insurance = round(max(self_pay, 1_000) * share / (1 - share))
    total = insurance + self_pay
    return {
        "his_bill_id": his_bill_id,
        "total_fen": total,
        "insurance_fen": insurance,
        "self_pay_fen": self_pay,
        "items": split_items(rng, kind, total),
    }
