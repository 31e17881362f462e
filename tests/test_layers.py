"""The layers hold: the hub owns every transaction, and the hub knows no framework.

Modules under flows/, integrations/endpoints/ and credithub/ call hub use cases;
none of them opens a unit of work, touches SQLAlchemy or runs a statement. The
hub itself never imports Prefect, FastAPI, Starlette or httpx. Read from the
source with `ast`, so a violation is named by module and line.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
THIN = ("flows", "integrations/endpoints", "credithub")
NO_TRANSACTIONS = frozenset({"unit_of_work", "new_session", "get_engine"})
NO_STATEMENTS = frozenset(
    {
        "commit",
        "rollback",
        "execute",
        "scalars",
        "scalar",
        "query",
        "begin",
        "begin_nested",
        "flush",
    }
)
HUB_MUST_NOT_IMPORT = frozenset({"prefect", "fastapi", "starlette", "httpx"})


def _imported(node: ast.AST) -> Iterator[tuple[str, str | None]]:
    """(module, name) for each name an import statement brings in (name None: the module)."""
    if isinstance(node, ast.Import):
        for alias in node.names:
            yield alias.name, None
    elif isinstance(node, ast.ImportFrom) and node.module is not None and node.level == 0:
        for alias in node.names:
            yield node.module, alias.name


def _root(module: str) -> str:
    return module.split(".", 1)[0]


def thin_layer_violations(source: str, where: str) -> list[str]:
    """What a module of a thin layer does that only the hub may do, in line order."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source, where)):
        line = getattr(node, "lineno", 0)
        for module, name in _imported(node):
            if _root(module) == "sqlalchemy":
                found.append((line, f"imports {module}"))
            elif name in NO_TRANSACTIONS:
                found.append((line, f"imports {name} from {module}"))
        if isinstance(node, ast.Call):
            func = node.func
            called = (
                func.id
                if isinstance(func, ast.Name)
                else func.attr
                if isinstance(func, ast.Attribute)
                else None
            )
            if called in NO_TRANSACTIONS:
                found.append((line, f"calls {called}()"))
            elif isinstance(func, ast.Attribute) and called in NO_STATEMENTS:
                found.append((line, f"calls .{called}()"))
    return [f"{where}:{line}: {what}" for line, what in sorted(found)]


def hub_violations(source: str, where: str) -> list[str]:
    """Frameworks and HTTP clients the hub imports."""
    return [
        f"{where}:{getattr(node, 'lineno', 0)}: imports {module}"
        for node in ast.walk(ast.parse(source, where))
        for module, _ in _imported(node)
        if _root(module) in HUB_MUST_NOT_IMPORT
    ]


def _modules(*folders: str) -> list[Path]:
    paths = sorted(p for folder in folders for p in (ROOT / folder).rglob("*.py"))
    assert paths, f"no modules found under {folders}"
    return paths


def _check(paths: list[Path], rule: object) -> list[str]:
    assert callable(rule)
    return [
        problem
        for path in paths
        for problem in rule(path.read_text(encoding="utf-8"), str(path.relative_to(ROOT)))
    ]


def test_flows_endpoints_and_the_cli_leave_transactions_to_the_hub() -> None:
    problems = _check(_modules(*THIN), thin_layer_violations)
    assert not problems, "only hub use cases open units of work:\n" + "\n".join(problems)


def test_the_hub_imports_no_framework_and_no_http_client() -> None:
    problems = _check(_modules("hub"), hub_violations)
    assert not problems, "the hub stays free of frameworks:\n" + "\n".join(problems)


@pytest.mark.parametrize(
    ("snippet", "expected"),
    [
        ("import sqlalchemy", "imports sqlalchemy"),
        ("from sqlalchemy.orm import Session", "imports sqlalchemy.orm"),
        ("from hub.core.db import unit_of_work", "imports unit_of_work from hub.core.db"),
        ("from hub.core import db\nwith db.unit_of_work() as s:\n    pass", "calls unit_of_work()"),
        ("engine = get_engine(settings)", "calls get_engine()"),
        ("session.execute(statement)", "calls .execute()"),
        ("ctx.session.scalars(q)", "calls .scalars()"),
        ("x = s.scalar(q)", "calls .scalar()"),
        ("s.commit()", "calls .commit()"),
    ],
)
def test_the_rule_catches_each_kind_of_violation(snippet: str, expected: str) -> None:
    problems = thin_layer_violations(snippet, "flows/example.py")
    assert problems and all(p.startswith("flows/example.py:") for p in problems)
    assert any(p.endswith(expected) for p in problems), problems


def test_the_rule_lets_use_case_calls_through() -> None:
    snippet = (
        "from hub.context import hub_context\n"
        "from hub.medical import settlement_run\n"
        "settlement_run.roll_up(hub_context(), 'win_1')\n"
    )
    assert thin_layer_violations(snippet, "flows/example.py") == []


@pytest.mark.parametrize("module", sorted(HUB_MUST_NOT_IMPORT))
def test_the_hub_rule_catches_each_framework(module: str) -> None:
    assert hub_violations(f"from {module} import x", "hub/example.py") == [
        f"hub/example.py:1: imports {module}"
    ]


PROGRAMMES = ("medical", "loans")


def programme_violations(source: str, where: str) -> list[str]:
    """A programme's module importing another programme: each stands on the core alone
    (`hub/books.py` and `hub/context.py`, above both, may join them)."""
    mine = Path(where).parts[1]
    return [
        f"{where}:{getattr(node, 'lineno', 0)}: imports {module}"
        for node in ast.walk(ast.parse(source, where))
        for module, _ in _imported(node)
        if any(module.startswith(f"hub.{other}") for other in PROGRAMMES if other != mine)
    ]


def test_each_programme_stands_on_the_core_alone() -> None:
    problems = _check(_modules(*(f"hub/{p}" for p in PROGRAMMES)), programme_violations)
    assert not problems, "programmes meet only above hub/core:\n" + "\n".join(problems)


def test_the_programme_rule_catches_a_crossing() -> None:
    assert programme_violations("from hub.loans import books", "hub/medical/x.py")
    assert programme_violations("import hub.medical.books", "hub/loans/x.py")
    assert not programme_violations("from hub.core import ledger", "hub/loans/x.py")
