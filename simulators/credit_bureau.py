"""The city's public credit database, simulated (CONTRACT §6).

It knows every person with a valid resident identity number (GB 11643) and
every firm with a valid unified social credit code (GB 32100): a record is
derived from a hash of the number and the seed, so the same number always
gets the same record. A test pins a record exactly with `PUT`, reads it back
with `GET`, and makes a subject unknown with `DELETE` (then `GET` answers 404
until the next `PUT`). The hub also reports debts 30 days overdue here.

State lives in memory and dies with the process.

    python -m simulators.credit_bureau --port 8101 --seed 1 --api-key bureau-key
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from typing import Annotated, Any, Literal

from fastapi import FastAPI, Header
from pydantic import BaseModel, ConfigDict, Field, StrictInt

from simulators.knobs import (
    Knobs,
    SimState,
    error,
    run_from_command_line,
    simulator_app,
    stable_rng,
)

_ID_SHAPE = re.compile(r"[0-9]{17}[0-9X]")
_ID_WEIGHTS = [pow(2, 17 - i, 11) for i in range(17)]
_ID_CHECK = "10X98765432"
_USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"  # GB 32100: no I, O, S, V, Z
_USCC_WEIGHTS = [pow(3, i, 31) for i in range(17)]
_USCC_SHAPE = re.compile(f"[{_USCC_ALPHABET}]{{18}}")

_SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾"
_GIVEN = "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超兰霞平刚桂华建国志红玉文斌浩宇晨欣怡子轩梓涵"
_CITY = ("福州", "厦门", "泉州", "漳州", "莆田", "宁德", "三明", "南平", "龙岩")
_TRADE_NAMES = ("恒信", "闽辉", "海峡", "瑞丰", "鑫源", "华通", "永安", "嘉禾", "东南", "启航")
_INDUSTRIES = (
    ("retail", "商贸"),
    ("manufacturing", "制造"),
    ("construction", "建设工程"),
    ("software", "信息技术"),
    ("logistics", "物流"),
    ("catering", "餐饮管理"),
    ("healthcare", "医疗器械"),
    ("agriculture", "农业发展"),
)
_RATINGS: tuple[Literal["A", "B", "M", "C", "D"], ...] = ("A", "B", "M", "C", "D")
_RATING_WEIGHTS = (30, 40, 15, 10, 5)


def valid_id_number(value: str) -> bool:
    """GB 11643: 17 digits with a real birth date, then the mod 11-2 check character."""
    if not _ID_SHAPE.fullmatch(value):
        return False
    try:
        dt.date(int(value[6:10]), int(value[10:12]), int(value[12:14]))
    except ValueError:
        return False
    total = sum(int(d) * w for d, w in zip(value[:17], _ID_WEIGHTS, strict=True))
    return _ID_CHECK[total % 11] == value[17]


def valid_uscc(value: str) -> bool:
    """GB 32100: 17 characters of the code alphabet, then the mod 31 check character."""
    if not _USCC_SHAPE.fullmatch(value):
        return False
    return uscc_check_character(value[:17]) == value[17]


def uscc_check_character(first17: str) -> str:
    """GB 32100's mod 31 check character of the code's first 17 characters."""
    total = sum(_USCC_ALPHABET.index(c) * w for c, w in zip(first17, _USCC_WEIGHTS, strict=True))
    return _USCC_ALPHABET[(31 - total % 31) % 31]


class PersonBody(BaseModel):
    """What the database says about a person; `id_number` may be left out of a `PUT`."""

    model_config = ConfigDict(extra="forbid")

    id_number: str | None = None
    name: Annotated[str, Field(min_length=1, max_length=64)]
    score: Annotated[StrictInt, Field(ge=0, le=1000)]
    dishonest_debtor: bool
    insured: bool


class FirmBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    uscc: str | None = None
    name: Annotated[str, Field(min_length=1, max_length=128)]
    registered_on: dt.date
    industry: Annotated[str, Field(min_length=1, max_length=64)]
    tax_credit_rating: Literal["A", "B", "M", "C", "D"]
    employees_insured: Annotated[StrictInt, Field(ge=0)]
    utilities_on_time_months: Annotated[StrictInt, Field(ge=0)]
    court_judgments_3y: Annotated[StrictInt, Field(ge=0)]
    penalties_3y: Annotated[StrictInt, Field(ge=0)]
    dishonest_entity: bool


class OverdueReport(BaseModel):
    """A debt the hub reports as 30 or more days past due: a person's (`id_number`)
    or a firm's (`uscc`, a loan instalment), exactly one of them."""

    model_config = ConfigDict(extra="forbid")

    report_id: Annotated[str, Field(min_length=1, max_length=128)]
    id_number: str | None = None
    uscc: str | None = None
    amount_fen: Annotated[StrictInt, Field(gt=0)]
    days_past_due: Annotated[StrictInt, Field(ge=0)]
    reported_on: dt.date


def derived_person(seed: int, id_number: str) -> dict[str, Any]:
    rng = stable_rng(seed, "person", id_number)
    given = "".join(rng.choice(_GIVEN) for _ in range(rng.choice((1, 2, 2))))
    return {
        "id_number": id_number,
        "name": rng.choice(_SURNAMES) + given,
        # Mean 675, sd 115: about 95% of people between 450 and 900.
        "score": min(1000, max(0, round(rng.gauss(675, 115)))),
        "dishonest_debtor": rng.random() < 0.03,
        "insured": rng.random() < 0.90,
    }


def derived_firm(seed: int, uscc: str) -> dict[str, Any]:
    rng = stable_rng(seed, "firm", uscc)
    industry, trade = rng.choice(_INDUSTRIES)
    registered = dt.date(1995, 1, 1) + dt.timedelta(days=rng.randrange(365 * 29))
    return {
        "uscc": uscc,
        "name": f"{rng.choice(_CITY)}{rng.choice(_TRADE_NAMES)}{trade}有限公司",
        "registered_on": registered.isoformat(),
        "industry": industry,
        "tax_credit_rating": rng.choices(_RATINGS, weights=_RATING_WEIGHTS)[0],
        "employees_insured": int(rng.paretovariate(1.2) * 3),
        "utilities_on_time_months": rng.randint(0, 36),
        "court_judgments_3y": rng.choices((0, 1, 2, 3), weights=(85, 10, 3, 2))[0],
        "penalties_3y": rng.choices((0, 1, 2), weights=(80, 15, 5))[0],
        "dishonest_entity": rng.random() < 0.02,
    }


class Bureau:
    """The database's memory: pinned records (None = unknown) and overdue reports."""

    def __init__(self) -> None:
        self.persons: dict[str, dict[str, Any] | None] = {}
        self.firms: dict[str, dict[str, Any] | None] = {}
        self.reports: dict[str, dict[str, Any]] = {}
        self.report_keys: dict[str, str] = {}  # Idempotency-Key -> report_id


def create_app(api_key: str, knobs: Knobs | None = None) -> FastAPI:
    state = SimState(knobs or Knobs(), api_key)
    bureau = Bureau()
    app = simulator_app("Credit bureau simulator", state)

    @app.get("/persons/{id_number}", response_model=None)
    async def get_person(id_number: str) -> Any:
        if not valid_id_number(id_number):
            return error(422, "invalid_id_number")
        if id_number in bureau.persons:
            return bureau.persons[id_number] or error(404, "not_found")
        return derived_person(state.knobs.seed, id_number)

    @app.put("/persons/{id_number}", response_model=None)
    async def pin_person(id_number: str, body: PersonBody) -> Any:
        if not valid_id_number(id_number) or body.id_number not in (None, id_number):
            return error(422, "invalid_id_number")
        bureau.persons[id_number] = {**body.model_dump(mode="json"), "id_number": id_number}
        return bureau.persons[id_number]

    @app.delete("/persons/{id_number}", status_code=204, response_model=None)
    async def forget_person(id_number: str) -> Any:
        if not valid_id_number(id_number):
            return error(422, "invalid_id_number")
        bureau.persons[id_number] = None
        return None

    @app.get("/firms/{uscc}", response_model=None)
    async def get_firm(uscc: str) -> Any:
        if not valid_uscc(uscc):
            return error(422, "invalid_uscc")
        if uscc in bureau.firms:
            return bureau.firms[uscc] or error(404, "not_found")
        return derived_firm(state.knobs.seed, uscc)

    @app.put("/firms/{uscc}", response_model=None)
    async def pin_firm(uscc: str, body: FirmBody) -> Any:
        if not valid_uscc(uscc) or body.uscc not in (None, uscc):
            return error(422, "invalid_uscc")
        bureau.firms[uscc] = {**body.model_dump(mode="json"), "uscc": uscc}
        return bureau.firms[uscc]

    @app.delete("/firms/{uscc}", status_code=204, response_model=None)
    async def forget_firm(uscc: str) -> Any:
        if not valid_uscc(uscc):
            return error(422, "invalid_uscc")
        bureau.firms[uscc] = None
        return None

    @app.post("/reports/overdue", response_model=None)
    async def report_overdue(
        body: OverdueReport, idempotency_key: str | None = Header(default=None)
    ) -> Any:
        if body.uscc is not None:
            if body.id_number is not None or not valid_uscc(body.uscc):
                return error(422, "invalid_uscc")
        elif body.id_number is None or not valid_id_number(body.id_number):
            return error(422, "invalid_id_number")
        if idempotency_key is not None:
            earlier = bureau.report_keys.setdefault(idempotency_key, body.report_id)
            if earlier != body.report_id:
                return error(409, "idempotency_key_reused")
        # A repeat of a report (by key or by report_id) is recorded once; the first wins.
        bureau.reports.setdefault(body.report_id, body.model_dump(mode="json", exclude_none=True))
        return {"report_id": body.report_id, "status": "recorded"}

    @app.get("/reports/overdue")
    async def list_overdue() -> dict[str, Any]:
        return {"items": list(bureau.reports.values())}

    return app


def main(argv: Sequence[str] | None = None) -> None:
    run_from_command_line(argv, "The public credit database, simulated.", Knobs, create_app)


if __name__ == "__main__":
    main()
