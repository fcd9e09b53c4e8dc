"""Refusals carry a machine-readable code, and the staff pages translate every code they can meet
(never the English message)."""

from __future__ import annotations

import importlib
import pkgutil
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

import api
import flows
import ivr
import routing
from api.web.errors import _HTTP_CODES, STATUS
from flows.errors import ErrorKind, KccError
from routing.board import REFUSALS

STATIC = Path(api.__file__).resolve().parent / "web" / "static"
# Codes that never reach a staff page: the command line or the webhooks show them, or they are
# carried inside another answer (a flow's problems, a publish that was not announced).
NOT_ON_A_PAGE = {
    "user_exists",  # kcc users add
    "user_invalid",  # kcc users add
    "call_not_found",  # a webhook: the caller hears the apology
    "bad_signature",  # the demo's call events: only the terminal phone asks for them
    "stale_flow",  # a webhook: retried with the live version
    "flow_error",  # the base of the flows package's errors; its subclasses have codes
    "flow_invalid",  # shown as its problems, one by one
    "yaml_syntax",  # shown as a problem of the draft
    "user_error",  # the base of the account errors
    "schema_behind",  # the service does not start
    "schema_unknown",  # the service does not start
    "schema_error",  # the base of the schema errors
    "invalid_staffing_input",  # kcc staffing
    "simulation_needs_empty_redis",  # kcc staffing --simulate
}


def _modules() -> Iterator[str]:
    for package in (flows, routing, ivr, api):
        for module in pkgutil.walk_packages(package.__path__, f"{package.__name__}."):
            if ".migrations" not in module.name:  # Alembic runs those, inside a migration
                yield module.name


def _subclasses(cls: type[KccError]) -> Iterator[type[KccError]]:
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)


def _raised_codes() -> set[str]:
    """Codes of the domain errors, and the codes the web edge names where it raises."""
    for name in _modules():
        importlib.import_module(name)
    codes = {
        sub.code
        for sub in _subclasses(KccError)
        if sub.kind is not ErrorKind.INTERNAL and sub.code != KccError.code
    }
    web = "\n".join(p.read_text() for p in (Path(api.__file__).parent / "web").rglob("*.py"))
    codes |= set(
        re.findall(r'(?:WebError|NotSignedIn|Forbidden|NotFound|RequestInvalid)\(\s*"(\w+)"', web)
    )
    return codes | set(REFUSALS) | set(_HTTP_CODES.values())


def _translated() -> set[str]:
    pages = "\n".join(p.read_text() for p in STATIC.glob("*.js"))
    return set(re.findall(r"^\s+(\w+): \(", pages, flags=re.MULTILINE))


def test_every_code_a_page_can_meet_has_its_dutch_text() -> None:
    raised = _raised_codes()
    assert {"call_in_progress", "already_live", "bad_login", "role_required"} <= raised
    missing = sorted(raised - _translated() - NOT_ON_A_PAGE)
    assert missing == []


def test_the_pages_match_no_english_messages() -> None:
    for page in STATIC.glob("*.js"):
        text = page.read_text()
        assert "REASONS" not in text and "dutchReason" not in text, page.name
        assert "you have a call" not in text and "requires role" not in text, page.name


def test_every_kind_has_a_status() -> None:
    assert set(STATUS) == set(ErrorKind)


@pytest.mark.parametrize(
    ("method", "path", "status", "code"),
    [
        ("GET", "/api/nothing-here", 404, "not_found"),
        ("GET", "/api/queue", 401, "not_signed_in"),
        ("GET", "/api/hours?at=2026-12-01T10:00:00", 422, "timezone_required"),
        ("GET", "/api/hours?at=not-a-time", 422, "request_invalid"),
        ("DELETE", "/api/hours", 405, "method_not_allowed"),
    ],
)
async def test_refusals_of_the_api_carry_a_code(
    http: httpx.AsyncClient, method: str, path: str, status: int, code: str
) -> None:
    response = await http.request(method, path)
    assert response.status_code == status
    assert response.json()["code"] == code


async def test_the_schema_documents_the_refusals(app: FastAPI) -> None:
    schema = app.openapi()
    operation = schema["paths"]["/api/advisers/me/status"]["post"]
    for status in ("401", "403", "409", "422"):
        body = operation["responses"][status]["content"]["application/json"]["schema"]
        assert body["$ref"].endswith("/ErrorOut")
