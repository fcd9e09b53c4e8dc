"""Reading a flow draft is bounded: an alias bomb, deep nesting and control characters are
refused with a line and a code (422 on publish), never a 500, a hang or a traceback."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from api.settings import DEFAULT_FLOW
from flows.loader import check_flow_text
from flows.yaml_source import MAX_DEPTH, MAX_NODES
from tests.support.database import sqlite_url
from tests.support.servers import invoke_kcc
from tests.support.staff import SANNE, add_staff, signed_in


def alias_bomb() -> str:
    """Under 300 bytes; each line repeats the one before ten times: 10^6 values at the end."""
    lines = ["a: &a [x, x, x, x, x, x, x, x, x, x]"]
    for previous, name in zip("abcde", "bcdef", strict=True):
        lines.append(f"{name}: &{name} [" + ", ".join([f"*{previous}"] * 10) + "]")
    return "\n".join(lines) + "\n"


BOMB = alias_bomb()
DEEP = "name: kcc\nnodes: " + "[" * 5000 + "]" * 5000 + "\n"
DEEP_MAPPING = "".join(" " * depth + f"k{depth}:\n" for depth in range(200))
CONTROL = "name: kcc\nlanguages: [nl]\nwelcome: \x01\n"

REFUSED = [
    # (what, draft, code, line)
    ("an alias bomb", BOMB, "yaml_too_large", 5),  # 'e' is the first to pass the limit
    ("deep nesting in brackets", DEEP, "yaml_too_large", 2),
    ("deep nesting by indentation", DEEP_MAPPING, "yaml_too_large", MAX_DEPTH),
    ("a control character", CONTROL, "yaml_syntax", 3),
]


def test_the_bomb_is_small_and_would_expand_past_every_limit() -> None:
    assert len(BOMB) < 300
    assert MAX_NODES < 10**6


@pytest.mark.parametrize(("what", "draft", "code", "line"), REFUSED, ids=[r[0] for r in REFUSED])
def test_a_draft_past_the_bounds_is_one_problem_at_its_line(
    what: str, draft: str, code: str, line: int
) -> None:
    flow, problems = check_flow_text(draft)
    assert flow is None
    assert [(p.line, p.code) for p in problems] == [(line, code)], (what, problems)


@pytest.mark.parametrize(("what", "draft", "code", "line"), REFUSED, ids=[r[0] for r in REFUSED])
async def test_the_api_refuses_the_draft_with_its_line(
    app: FastAPI, http: httpx.AsyncClient, what: str, draft: str, code: str, line: int
) -> None:
    add_staff(app.state.services.db_engine, SANNE)
    headers = await signed_in(http, SANNE)
    checked = await http.post("/api/flows/validate", json={"text": draft}, headers=headers)
    assert checked.status_code == 200, checked.text
    assert checked.json()["ok"] is False
    assert [(p["line"], p["code"]) for p in checked.json()["problems"]] == [(line, code)]

    published = await http.post(
        "/api/flows/publish", json={"text": draft, "comment": what}, headers=headers
    )
    assert published.status_code == 422, published.text
    refusal = published.json()
    assert refusal["code"] == "flow_invalid"
    assert [(p["line"], p["code"]) for p in refusal["problems"]] == [(line, code)]


@pytest.mark.parametrize(("what", "draft", "code", "line"), REFUSED, ids=[r[0] for r in REFUSED])
def test_kcc_flows_check_names_the_line_without_a_traceback(
    tmp_path: Path, what: str, draft: str, code: str, line: int
) -> None:
    path = tmp_path / "draft.yaml"
    path.write_text(draft, encoding="utf-8")
    result = invoke_kcc("flows", "check", str(path), env={"KCC_DATABASE_URL": sqlite_url(tmp_path)})
    assert result.exit_code == 1, result.output
    assert f"{path}:{line}:" in result.stdout, result.stdout
    assert "Traceback" not in result.output


def test_the_shipped_flow_is_well_inside_the_bounds() -> None:
    flow, problems = check_flow_text(DEFAULT_FLOW.read_text(encoding="utf-8"))
    assert flow is not None and problems == []
