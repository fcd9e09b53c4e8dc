"""The adviser's side of routing over HTTP, for the tests with the app in-process (the `app`,
`http` and `phone` fixtures of tests/conftest.py): Ann and Bob, and a caller queued for vog_rp.

The `staff` fixture adds the accounts; a test module uses it by importing it (and naming it in
its `__all__`, as pytest finds it by name)."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
from fastapi import FastAPI

from api.cli.phone import Phone
from tests.support.staff import SANNE, add_staff, adviser

ANN = adviser("ann", skills=["vog_rp", "vog_np"])
BOB = adviser("bob", skills=["gva"], device="+31201234567")


@pytest.fixture
def staff(app: FastAPI) -> None:
    add_staff(app.state.services.db_engine, SANNE, ANN, BOB)


async def set_status(
    http: httpx.AsyncClient, headers: dict[str, str], status: str
) -> httpx.Response:
    return await http.post("/api/advisers/me/status", json={"status": status}, headers=headers)


async def queued_vog_rp(phone: Callable[..., Phone]) -> Phone:
    caller = phone()
    await caller.dial()
    await caller.press("2")
    turn = await caller.press("#")
    assert turn.queue == "kcc-vog_rp"
    return caller
