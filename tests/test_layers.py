"""Imports point one way: api -> ivr -> routing, each may use flows, nothing imports api; domain
code knows no web framework and no settings object (docs/architecture.md)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.support.paths import ROOT

PACKAGES = ("flows", "routing", "ivr", "api")
# What each package may import of the others.
ALLOWED = {
    "flows": set(),
    "routing": {"flows"},
    "ivr": {"routing", "flows"},
    "api": {"ivr", "routing", "flows"},
}
# Never in domain code.
WEB = ("fastapi", "starlette", "uvicorn", "sse_starlette", "typer", "api")


def imports_of(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def modules(package: str) -> list[Path]:
    found = sorted((ROOT / package).rglob("*.py"))
    assert found, package
    return found


@pytest.mark.parametrize("package", PACKAGES)
def test_imports_point_one_way(package: str) -> None:
    wrong = [
        f"{path.relative_to(ROOT)} imports {name}"
        for path in modules(package)
        for name in imports_of(path)
        if (top := name.split(".")[0]) in PACKAGES and top != package
        if top not in ALLOWED[package]
    ]
    assert wrong == []


@pytest.mark.parametrize("package", ["flows", "routing", "ivr"])
def test_domain_code_knows_no_web_framework_and_no_settings(package: str) -> None:
    wrong = [
        f"{path.relative_to(ROOT)} imports {name}"
        for path in modules(package)
        for name in imports_of(path)
        if name.split(".")[0] in WEB
    ]
    assert wrong == []


def test_the_checker_sees_a_wrong_import(tmp_path: Path) -> None:
    module = tmp_path / "bad.py"
    module.write_text("from api.settings import Settings\nimport routing.keys\n")
    assert imports_of(module) == {"api.settings", "routing.keys"}
