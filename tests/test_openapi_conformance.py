"""The API does what /openapi.json says, for a partner of every kind (Schemathesis).

Partners generate their clients from /openapi.json, so every answer must be one
it declares: its status, its media type, its body's schema (problem+json with
the declared `code`s for errors) and its headers. Schemathesis runs every check
through all its phases — the schema's examples, coverage (each boundary and
each way to be invalid), fuzzing, and stateful sequences along the declared
links (create a visit, then hold on it, read it, close it, ...) — with the API
key of a hospital, a bank, a channel and an operator, on a real SQLite database
with the partners and the credit line of `make_world`.

The budget is bounded (few fuzzed examples, short sequences, a fixed seed) so
the module runs in a couple of minutes on a busy machine; the last test shows
that a description that does not match the code makes it fail.
"""

from __future__ import annotations

import atexit
import copy
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import hypothesis
import pytest
import schemathesis
from schemathesis.config import SchemathesisConfig
from schemathesis.core.failures import FailureGroup
from starlette.testclient import TestClient

from hub.core import clock, migrate
from hub.core.db import empty_all_tables, get_engine, unit_of_work
from hub.medical import settlement
from hub.settings import Settings
from integrations.endpoints.app import create_app
from tests.conftest import ID_NUMBERS, World, make_world
from tests.loans.factory import defaulted_loan, disbursed_loan

pytestmark = pytest.mark.slow

KIND_OF = {"hospital": "h1", "bank": "b1", "channel": "ch", "operator": "op"}
FUZZED_EXAMPLES = 8
STATEFUL_RUNS, STATEFUL_STEPS = 30, 10

# Rules a JSON Schema cannot state (a check character, the balance of a line, a
# bill that adds up, a product's limits, an object's state) refuse input the schema
# allows: 402, 409 and 422 are the contract's answers to valid-looking data.
VALID_DATA_ANSWERS = ["2xx", "401", "402", "403", "404", "409", "422", "429"]


# Values the world knows, sent half the time in their fields, so sequences get past
# the check characters and the partner codes to the objects behind them.
KNOWN = {
    "id_numbers": ID_NUMBERS,
    "banks": ["B1", "B2"],
    "firms": ["91350200MA3123456J"],
}
KNOWN_IN = {
    "body.id_number": "id_numbers",
    "body.bank_code": "banks",
    "body.uscc": "firms",
}


def _config(line_id: str | None = None) -> SchemathesisConfig:
    """The budget and the checks; with `line_id`, the world's credit line is known too."""
    known, known_in = dict(KNOWN), dict(KNOWN_IN)
    if line_id is not None:
        known["lines"] = [line_id]
        known_in["body.credit_line_id"] = known_in["path.credit_line_id"] = "lines"
    return SchemathesisConfig.from_dict(
        {
            "seed": 20261203,
            "dictionaries": {name: {"values": values} for name, values in known.items()},
            "parameters": {
                field: {"dictionary": name, "probability": 0.5} for field, name in known_in.items()
            },
            "generation": {
                "mode": "all",
                "max-examples": FUZZED_EXAMPLES,
                "database": "none",
                "deterministic": True,
            },
            "phases": {
                "examples": {"enabled": True},
                "coverage": {"enabled": True},
                "fuzzing": {"enabled": True},
                # Sequences go deep on valid requests; the phases above send the invalid.
                "stateful": {
                    "enabled": True,
                    "max-steps": STATEFUL_STEPS,
                    "generation": {"mode": "positive"},
                },
            },
            "checks": {
                "enabled": True,
                "positive_data_acceptance": {"expected-statuses": VALID_DATA_ANSWERS},
            },
        }
    )


_caller: dict[str, str] = {}  # the API key of the kind of partner under test


class PartnerKey:
    """The key of the partner under test, given the way Schemathesis gives credentials
    (so that it knows a case without them is meant to get a 401)."""

    def get(self, case: Any, context: Any) -> str:
        return _caller.get("key", "")  # also asked while pytest collects

    def set(self, case: Any, data: str, context: Any) -> None:
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}


def _schema(world: World, who: str, raw: dict[str, Any] | None = None) -> Any:
    """The app's schema (or `raw`, a changed copy of it) as Schemathesis tests it,
    calling the app in-process with `who`'s API key."""
    _caller["key"] = world.keys[who]
    app, config = world.client.app, _config(world.ids["line"])
    if raw is None:
        loaded = schemathesis.openapi.from_asgi("/openapi.json", app, config=config)
    else:
        loaded = schemathesis.openapi.from_dict(raw, config=config)
        loaded.app = app
    loaded.auth(refresh_interval=None)(PartnerKey)
    return loaded


# `@schema.parametrize()` needs the schema when pytest collects the module, before
# any fixture: so one app for the whole module, on a database of its own that the
# fixture below migrates and fills (the app opens no connection until called).
_HOME = Path(tempfile.mkdtemp(prefix="credithub-openapi-"))
atexit.register(shutil.rmtree, _HOME, ignore_errors=True)
_SETTINGS = Settings(
    home=_HOME,
    database_url=f"sqlite:///{_HOME / 'test.db'}",
    secret_key="test-secret-key",
    auth_cache_seconds=0,
    rate_limit_per_second=0,
    unknown_key_lookups_per_second=0,  # off, as in every test (tests/conftest.py)
    partner_concurrency=0,
)
_APP = create_app(_SETTINGS)
schema = schemathesis.openapi.from_asgi("/openapi.json", _APP, config=_config())
schema.auth(refresh_interval=None)(PartnerKey)


@pytest.fixture(scope="module")
def conformance_world() -> Iterator[World]:
    """The partners and the line of `make_world`, on the module's database."""
    migrate.upgrade(_SETTINGS)
    empty_all_tables(get_engine(_SETTINGS))
    world = make_world(_SETTINGS)
    world.client = TestClient(_APP, raise_server_exceptions=False)
    with world.client:
        yield world


@pytest.fixture(params=sorted(KIND_OF))
def partner(request: pytest.FixtureRequest, conformance_world: World) -> Iterator[str]:
    _caller["key"] = conformance_world.keys[KIND_OF[request.param]]
    yield request.param
    _caller.clear()


@schema.parametrize()
@hypothesis.settings(deadline=None, suppress_health_check=list(hypothesis.HealthCheck))
def test_every_operation_answers_as_described(case: Any, partner: str) -> None:
    case.call_and_validate()


# An operation each kind may call and that succeeds on an empty hub.
SERVED = {
    "hospital": "/v1/visits",
    "bank": "/v1/loan-products",
    "channel": "/v1/loan-products",
    "operator": "/v1/ledger/trial-balance",
}


def test_each_kind_is_served(partner: str) -> None:
    """The runs above carry the partner's key: what they generate gets 2xx, not 401."""
    failures, statuses = _run(schema, SERVED[partner], "GET")
    assert failures == [] and any(200 <= status < 300 for status in statuses), statuses


@pytest.mark.parametrize("kind", sorted(KIND_OF))
def test_sequences_along_the_links_answer_as_described(conformance_world: World, kind: str) -> None:
    machine = _schema(conformance_world, KIND_OF[kind]).as_state_machine()
    machine.run(
        settings=hypothesis.settings(
            max_examples=STATEFUL_RUNS,
            stateful_step_count=STATEFUL_STEPS,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(hypothesis.HealthCheck),
        )
    )


def _run(schema: Any, path: str, method: str) -> tuple[list[str], set[int]]:
    """One operation's generated cases: the names of the checks that fail, and the
    statuses answered."""
    operation = schema[path][method]
    failures: list[str] = []
    statuses: set[int] = set()

    @hypothesis.settings(
        max_examples=FUZZED_EXAMPLES, deadline=None, database=None, derandomize=True
    )
    @hypothesis.given(case=operation.as_strategy())
    def run(case: Any) -> None:
        try:
            statuses.add(case.call_and_validate().status_code)
        except FailureGroup as group:
            failures.extend(type(failure).__name__ for failure in group.exceptions)
        except AssertionError as failure:
            failures.append(type(failure).__name__)

    run()
    return failures, statuses


def _failures(schema: Any, path: str, method: str) -> list[str]:
    return _run(schema, path, method)[0]


def test_a_description_that_does_not_match_the_code_fails(conformance_world: World) -> None:
    """The trial balance's `total_fen` declared a string, and its 200 left out: the
    same run that passes on the real description reports the mismatch."""
    real = conformance_world.client.get("/openapi.json").json()
    path, method = "/v1/ledger/trial-balance", "GET"
    assert _failures(_schema(conformance_world, "op", real), path, method) == []

    wrong_type = copy.deepcopy(real)
    wrong_type["components"]["schemas"]["TrialBalance"]["properties"]["total_fen"] = {
        "type": "string"
    }
    found = _failures(_schema(conformance_world, "op", wrong_type), path, method)
    assert "JsonSchemaError" in found

    no_success = copy.deepcopy(real)
    del no_success["paths"][path]["get"]["responses"]["200"]
    assert "UndefinedStatusCode" in _failures(
        _schema(conformance_world, "op", no_success), path, method
    )


def test_real_objects_answer_as_described(conformance_world: World) -> None:
    """Objects the random runs rarely reach (a closed visit with holds and refunds,
    repayments, loans paid out, repaid and claimed, the fund) are read and checked
    against their declared answers too."""
    w = conformance_world
    answers: list[tuple[str, str, Any]] = []

    def post(who: str, path: str, template: str, body: Any) -> Any:
        response = w.post(who, path, body)
        answers.append((template, "POST", response))
        return response.json()

    def get(who: str, path: str, template: str) -> None:
        answers.append((template, "GET", w.get(who, path)))

    line = post(
        "h1", "/v1/eligibility-checks", "/v1/eligibility-checks", {"id_number": ID_NUMBERS[0]}
    )
    visit = post(
        "h1",
        "/v1/visits",
        "/v1/visits",
        {"credit_line_id": line["credit_line_id"], "his_visit_id": "real-1", "kind": "inpatient"},
    )["visit_id"]
    holds = "/v1/visits/{visit_id}/authorizations"
    hold = post(
        "h1",
        f"/v1/visits/{visit}/authorizations",
        holds,
        {"amount_fen": 5000, "his_order_id": "o1"},
    )
    spare = post(
        "h1", f"/v1/visits/{visit}/authorizations", holds, {"amount_fen": 700, "his_order_id": "o2"}
    )
    auth = "/v1/authorizations/{authorization_id}"
    post(
        "h1",
        f"/v1/authorizations/{hold['authorization_id']}/increments",
        auth + "/increments",
        {"amount_fen": 100},
    )
    post("h1", f"/v1/authorizations/{spare['authorization_id']}/void", auth + "/void", {})
    get("h1", f"/v1/authorizations/{hold['authorization_id']}", auth)
    bill = {
        "his_bill_id": "real-1",
        "total_fen": 4000,
        "insurance_fen": 1000,
        "self_pay_fen": 3000,
        "items": [{"code": "A", "name": "a", "amount_fen": 4000}],
    }
    post("h1", f"/v1/visits/{visit}/close", "/v1/visits/{visit_id}/close", bill)
    refund = post(
        "h1",
        f"/v1/visits/{visit}/refunds",
        "/v1/visits/{visit_id}/refunds",
        {"amount_fen": 500, "his_refund_id": "r1", "reason": "returned"},
    )
    get("h1", f"/v1/refunds/{refund['refund_id']}", "/v1/refunds/{refund_id}")
    get("h1", f"/v1/visits/{visit}", "/v1/visits/{visit_id}")
    get("h1", "/v1/visits?his_visit_id=real-1", "/v1/visits")
    repayment = post(
        "b1",
        "/v1/repayments",
        "/v1/repayments",
        {
            "credit_line_id": line["credit_line_id"],
            "amount_fen": 1000,
            "bank_txn_id": "t1",
            "paid_at": "2026-01-01T00:00:00Z",
        },
    )
    get("b1", f"/v1/repayments/{repayment['repayment_id']}", "/v1/repayments/{repayment_id}")
    get("b1", f"/v1/credit-lines/{line['credit_line_id']}", "/v1/credit-lines/{credit_line_id}")
    get("op", "/v1/ledger/trial-balance", "/v1/ledger/trial-balance")
    closing = "/v1/settlement-windows/close"
    window = post("op", closing, closing, {})["window_id"]
    with unit_of_work(get_engine(w.settings)) as session:  # as the settlement flow does
        settlement.compute(session, window, w.settings.business_timezone, clock.now())
    for who in ("op", "b1", "h1"):
        get(who, "/v1/settlements", "/v1/settlements")
    batch = w.get("b1", "/v1/settlements").json()["data"][0]["settlement_id"]
    get("h1", f"/v1/settlements/{batch}", "/v1/settlements/{settlement_id}")
    get("op", "/v1/reconciliation/mismatches", "/v1/reconciliation/mismatches")

    loan = disbursed_loan(w)
    get("b1", f"/v1/loans/{loan}", "/v1/loans/{loan_id}")
    get("ch", f"/v1/loans/{loan}", "/v1/loans/{loan_id}")
    post(
        "b1",
        f"/v1/loans/{loan}/repayments",
        "/v1/loans/{loan_id}/repayments",
        {"amount_fen": 50_000, "bank_txn_id": "lt1", "paid_at": clock.now().isoformat()},
    )
    deposit = {"amount_fen": 10_000_000, "reference": "d1"}
    post(
        "op", "/v1/risk-compensation/fund/deposits", "/v1/risk-compensation/fund/deposits", deposit
    )
    claims = "/v1/risk-compensation/claims"
    post("b1", claims, claims, {"loan_id": defaulted_loan(w)})
    get("b1", claims, claims)
    get("op", "/v1/risk-compensation/fund", "/v1/risk-compensation/fund")

    for template, method, response in answers:
        assert response.status_code < 300, (method, template, response.text)
        schema[template][method].validate_response(response)
