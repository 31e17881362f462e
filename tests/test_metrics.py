"""Operators' metrics and logs (README, "Metrics and logs"): demo-like traffic
through the real app, the real enrolment and settlement flows against the real
stand-ins and a real Prefect server, then one scrape of /metrics and every log
line the test process wrote, in both formats.

Every family is there with the values the traffic implies, and no identity
number, name or phone — raw, masked, or the digits a mask hides — reaches a
metric label or a log line.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from flows.medical.enrollment import enroll_pending
from flows.medical.settlement import settle
from hub.core import logs
from hub.core.personal_data import mask_id
from hub.medical import eligibility
from tests.conftest import ID_NUMBERS, World
from tests.loans.factory import disbursed_loan
from tests.test_enrollment import ADULT, ADULT2, ADULT3, CHILD, Stage, stage  # noqa: F401

# The residents of this test: identity number, name, phone. The world's own line
# (tests/conftest.py) belongs to the first of ID_NUMBERS, 张三, 13800001234.
RESIDENTS = [
    (ADULT, "陈晓明", "13912345678"),
    (ADULT2, "林美玲", "13712345679"),
    (ADULT3, "黄志强", "15012345670"),
    (CHILD, "吴小宝", "18612345671"),
]
SECRETS = [*(s for r in RESIDENTS for s in r), ID_NUMBERS[0], "张三", "13800001234"]


def forms(secret: str) -> list[str]:
    """A secret and what would betray it: an identity number's ten digits that the
    hub's mask hides (`3502**********1234`), a phone's last eight digits."""
    if len(secret) == 18:
        return [secret, secret[4:14]]
    if secret.isdigit():
        return [secret, secret[3:]]
    return [secret]


def leaks(line: str) -> list[str]:
    """What a log line gives away. The masked form itself (first and last four) is
    how the hub shows an identity number; it may appear only where the hub's partner
    client masks the request lines urllib3 and httpx log (`integrations/partner_client.py`),
    never in a line of the hub's own."""
    found = [form for secret in SECRETS for form in forms(secret) if form in line]
    if not re.search(r'"logger":"(httpx|urllib3\.connectionpool)"| (httpx|urllib3\.\w+) ', line):
        found += [mask_id(s) for s in SECRETS if len(s) == 18 and mask_id(s) in line]
    return found


class Lines(logging.Handler):
    """Every record, formatted as the API writes it: a JSON line and a text line."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.json: list[str] = []
        self.text: list[str] = []
        self._as_json, self._as_text = logs.JsonFormatter(), logs.TextFormatter()

    def emit(self, record: logging.LogRecord) -> None:
        self.json.append(self._as_json.format(record))
        self.text.append(self._as_text.format(record))

    def access(self) -> list[dict[str, Any]]:
        lines = [json.loads(line) for line in self.json]
        return [line for line in lines if line["logger"] == "credithub.access"]


@pytest.fixture
def logged() -> Iterator[Lines]:
    lines = Lines()
    loggers = [logging.getLogger(), logging.getLogger("prefect")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.addHandler(lines)
        logger.setLevel(logging.DEBUG)
    yield lines
    for logger, level in zip(loggers, levels, strict=True):
        logger.removeHandler(lines)
        logger.setLevel(level)


@pytest.fixture
def prefect_api(prefect_harness: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """The API reads flow runs from the test's Prefect server (as `up`'s API does)."""
    from prefect.settings import PREFECT_API_URL

    monkeypatch.setenv("PREFECT_API_URL", str(PREFECT_API_URL.value()))


def scrape(world: World) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """/metrics as {sample name: {sorted labels: value}}."""
    r = world.client.get("/metrics")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain")
    samples: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(r.text):
        for sample in family.samples:
            labels = tuple(sorted(sample.labels.items()))
            samples.setdefault(sample.name, {})[labels] = sample.value
    return samples


def value(samples: dict[str, Any], name: str, **labels: str) -> float:
    return float(samples[name][tuple(sorted(labels.items()))])


def demo_traffic(on: Stage) -> None:
    """Enrolments decided by the flow, a hold placed, one refused, one replayed, a
    visit closed with its bill, the window closed and settled, a loan paid out."""
    world = on.world
    on.pin(ADULT, "陈晓明", score=700)
    on.pin(ADULT2, "林美玲", score=620)
    on.pin(ADULT3, "黄志强", dishonest=True)
    on.pin(CHILD, "吴小宝")
    for number, name, phone in RESIDENTS:
        on.enrol(number, name, phone=phone)
    wrong_check = ADULT[:17] + ("0" if ADULT[17] != "0" else "1")
    bad = {"id_number": wrong_check, "name": "陈晓明", "phone": "13912345678"}
    assert world.post("h1", "/v1/enrollments", bad).status_code == 422
    assert enroll_pending() == {"approved": 2, "dishonest_debtor": 1, "under_age": 1}

    assert (
        world.post("h1", "/v1/eligibility-checks", {"id_number": ID_NUMBERS[0]}).status_code == 200
    )
    visit = world.post(
        "h1",
        "/v1/visits",
        {"credit_line_id": world.ids["line"], "his_visit_id": "V1", "kind": "outpatient"},
    ).json()["visit_id"]
    hold = {"amount_fen": 30_000, "his_order_id": "O1", "description": "CT"}
    assert world.post("h1", f"/v1/visits/{visit}/authorizations", hold, key="k1").status_code == 201
    replayed = world.post("h1", f"/v1/visits/{visit}/authorizations", hold, key="k1")
    assert replayed.headers.get("Idempotent-Replayed") == "true"
    too_much = {"amount_fen": 500_000, "his_order_id": "O2"}
    assert world.post("h1", f"/v1/visits/{visit}/authorizations", too_much).status_code == 402
    bill = {
        "his_bill_id": "B1",
        "total_fen": 20_000,
        "insurance_fen": 0,
        "self_pay_fen": 20_000,
        "items": [{"code": "CT", "name": "CT", "amount_fen": 20_000}],
    }
    assert world.post("h1", f"/v1/visits/{visit}/close", bill).status_code == 200
    assert world.post("op", "/v1/settlement-windows/close", {}).status_code == 202
    settle()
    disbursed_loan(world)


def test_demo_traffic_shows_every_family_and_no_personal_data(
    prefect_api: None,
    logged: Lines,
    stage: Stage,  # noqa: F811
) -> None:
    demo_traffic(stage)
    world = stage.world
    samples = scrape(world)

    holds = "/v1/visits/{visit_id}/authorizations"
    for status, count in (("201", 1), ("402", 1)):  # the replay is a request too
        assert value(
            samples,
            "credithub_http_requests_total",
            route=holds,
            method="POST",
            partner_kind="hospital",
            status=status,
        ) == count + (status == "201")
    assert (
        value(
            samples,
            "credithub_http_request_duration_seconds_count",
            route=holds,
            method="POST",
            partner_kind="hospital",
            status="402",
        )
        == 1
    )
    assert value(samples, "credithub_holds_placed_total", operation="hold") == 1
    assert (
        value(
            samples, "credithub_holds_refused_total", operation="hold", reason="insufficient_credit"
        )
        == 1
    )
    assert value(samples, "credithub_holds", state="captured") == 1
    assert value(samples, "credithub_holds", state="held") == 0
    assert value(samples, "credithub_holds", state="expired") == 0
    assert value(samples, "credithub_enrollments", status="approved", decline_reason="") == 2
    assert value(samples, "credithub_enrollments", status="pending", decline_reason="") == 0
    for reason in ("dishonest_debtor", "under_age"):
        assert (
            value(samples, "credithub_enrollments", status="declined", decline_reason=reason) == 1
        )
    assert value(samples, "credithub_loan_applications", status="accepted", decline_reason="") == 1
    assert value(samples, "credithub_loans", status="active") == 1
    assert value(samples, "credithub_settlement_lines", status="settled") == 1
    assert value(samples, "credithub_settlement_lines", status="failed") == 0
    assert value(samples, "credithub_settlement_paid_yuan_total") == 200.0
    assert value(samples, "credithub_settlement_net_yuan", status="settled") == 200.0
    assert value(samples, "credithub_figures_up") == 1
    assert value(samples, "credithub_prefect_up") == 1
    assert value(samples, "credithub_flow_runs", flow="enrollment", state="completed") >= 1
    assert value(samples, "credithub_flow_runs", flow="settlement", state="completed") >= 1
    for name in ("size", "open", "checked_out", "overflow"):
        assert f"credithub_db_pool_{name}" in samples
    assert value(samples, "credithub_db_pool_size") >= 1

    routes = {getattr(r, "path", None) for r in world.client.app.routes} | {"unmatched"}  # type: ignore[attr-defined]
    labels = [
        (name, key, label)
        for name, series in samples.items()
        for labelset in series
        for key, label in labelset
        if key != "le"
    ]
    assert {label for _n, key, label in labels if key == "route"} <= routes
    for name, key, label in labels:
        assert not re.search(r"[0-9]{4,}", label), (name, key, label)  # no part of a number
        assert not any(form in label for s in SECRETS for form in [*forms(s), mask_id(s)])

    assert logged.json and len(logged.json) == len(logged.text)
    for line in logged.json + logged.text:
        assert not leaks(line), line
    refused = [a for a in logged.access() if a["route"] == holds and a["status"] == 402]
    assert len(refused) == 1
    assert refused[0]["partner_kind"] == "hospital" and refused[0]["partner"] == "H1"
    assert refused[0]["method"] == "POST" and refused[0]["duration_ms"] > 0
    assert re.fullmatch(r"req_[0-9a-f]{32}", refused[0]["request_id"])


def test_an_unexpected_error_is_logged_with_its_request_id_but_not_its_message(
    world: World, logged: Lines, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failure whose message quotes personal data: the 500 is logged by its class,
    frames and request id; the message stays out, in JSON and in text."""

    def failing(*_args: Any, **_kwargs: Any) -> Any:
        raise RuntimeError(f"no line for {ID_NUMBERS[0]} (张三, 13800001234)")

    monkeypatch.setattr(eligibility, "check_eligibility", failing)
    r = world.post("h1", "/v1/eligibility-checks", {"id_number": ID_NUMBERS[0]})
    assert r.status_code == 500
    request_id = r.headers["X-Request-Id"]
    errors = [json.loads(line) for line in logged.json if '"level":"ERROR"' in line]
    assert errors and all(e["request_id"] == request_id for e in errors)
    assert errors[0]["error"] == "builtins.RuntimeError"
    assert any("check_eligibility" in frame for frame in errors[0]["frames"])
    assert any("RuntimeError" in line and request_id in line for line in logged.text)
    for line in logged.json + logged.text:
        assert not leaks(line), line
    access = [a for a in logged.access() if a["request_id"] == request_id]
    assert [a["status"] for a in access] == [500]


def test_the_last_net_masks_identity_numbers_and_phones_in_a_message() -> None:
    text = f"for {ID_NUMBERS[1]} at +86 13800001234, 12345678901234 fen, {ID_NUMBERS[1][:17]}0"
    scrubbed = logs.scrub(text)
    assert ID_NUMBERS[1] not in scrubbed and "13800001234" not in scrubbed
    assert "[id number]" in scrubbed and "[phone]" in scrubbed
    assert "12345678901234 fen" in scrubbed  # not a phone: too long
    assert f"{ID_NUMBERS[1][:17]}0" in scrubbed  # not an identity number: its check fails
