"""The wallboard's figures as the room's screen and supervisors get them (GET /api/wallboard and
its server-sent events): today's calls by the app's clock, the lines, the advisers, callbacks;
the viewer role that may see the wallboard and nothing else, and never the advisers' names."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from datetime import timedelta
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from starlette.routing import BaseRoute

from api.accounts import Role
from api.cli.phone import Phone
from api.web.deps import current_user
from routing.clock import FixedClock
from tests.conftest import PUBLIC_URL
from tests.support.conference_calls import ANN, BOB, available, in_conversation, queued
from tests.support.staff import SANNE, Account, add_staff, signed_in
from tests.support.twilio_stub import TwilioStub

WAND = Account("wand", Role.VIEWER, "viewer-pass")  # the screen in the room
WALLBOARD_ROUTES = {
    ("GET", "/api/wallboard"),
    ("GET", "/api/wallboard/events"),
}


@pytest.fixture
def staff(app: FastAPI) -> None:
    add_staff(app.state.services.db_engine, ANN, BOB, SANNE, WAND)


async def board(http: httpx.AsyncClient, who: Account) -> dict[str, Any]:
    response = await http.get("/api/wallboard", headers=await signed_in(http, who))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


@pytest.mark.usefixtures("staff")
async def test_today_counts_offered_answered_abandoned_with_service_level_and_asa(
    http: httpx.AsyncClient,
    phone: Callable[..., Phone],
    twilio_stub: TwilioStub,
    clock: FixedClock,
) -> None:
    today = clock.now()
    # Yesterday: a caller gave up in the line. Not today's.
    clock.set(today - timedelta(days=1))
    await (await queued(phone, twilio_stub)).hang_up()
    clock.set(today)
    assert (await board(http, SANNE))["today"] == {
        "offered": 0,
        "answered": 0,
        "answered_in_sl": 0,
        "abandoned": 0,
        "service_level": None,
        "asa_seconds": None,
        "sl_seconds": 30,
    }

    # Ann answers a caller at once (in time); the next waits 50 s for Bob (too late).
    await in_conversation(http, phone, twilio_stub)
    late = await queued(phone, twilio_stub)
    clock.set(clock.now() + timedelta(seconds=50))
    twilio_stub.script_device(BOB.device or "", "answers")
    bob = await signed_in(http, BOB)
    offered = await http.post("/api/advisers/me/status", json={"status": "available"}, headers=bob)
    assert offered.json()["status"] == "offered"  # the waiting caller rings at once
    await late.connect()
    # One gives up in the line; one waits still, 20 s so far.
    await (await queued(phone, twilio_stub)).hang_up()
    await queued(phone, twilio_stub)
    clock.set(clock.now() + timedelta(seconds=20))

    seen = await board(http, SANNE)
    assert seen["today"] == {
        "offered": 4,
        "answered": 2,
        "answered_in_sl": 1,
        "abandoned": 1,
        "service_level": 0.25,
        "asa_seconds": 25.0,  # (0 + 50) / 2
        "sl_seconds": 30,
    }
    lines = {line["product"]: line for line in seen["products"]}
    assert lines["vog_rp"]["waiting"] == 1 and lines["vog_rp"]["oldest_wait_seconds"] == 20
    assert lines["vog_np"]["waiting"] == 0 and lines["vog_np"]["label"]
    assert seen["advisers"]["on_call"] == 2 and seen["advisers"]["offline"] == 0
    assert seen["calls_in_menu"] == 0 and seen["callbacks_waiting"] == 0

    # The next day starts at zero.
    clock.set(today + timedelta(days=1))
    assert (await board(http, SANNE))["today"]["offered"] == 0


@pytest.mark.usefixtures("staff")
async def test_the_service_level_threshold_is_a_setting(
    make_app: Callable[..., FastAPI], phone: Callable[..., Phone], twilio_stub: TwilioStub
) -> None:
    app = make_app(service_level_seconds=20)  # the staff fixture's database
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url=PUBLIC_URL
    ) as http:
        assert (await board(http, SANNE))["today"]["sl_seconds"] == 20


@pytest.mark.usefixtures("staff")
async def test_supervisors_see_the_advisers_names_and_the_room_screen_never_does(
    http: httpx.AsyncClient, phone: Callable[..., Phone], twilio_stub: TwilioStub
) -> None:
    await in_conversation(http, phone, twilio_stub)
    await available(http, await signed_in(http, BOB))

    supervisor = await board(http, SANNE)
    by_name = {a["name"]: a for a in supervisor["adviser_list"]}
    assert by_name["ann"]["state"] == "on_call" and by_name["ann"]["product"] == "vog_rp"
    assert by_name["bob"]["state"] == "available" and by_name["bob"]["product"] is None
    assert by_name["ann"]["since"]

    viewer = await board(http, WAND)
    assert set(viewer) == {
        "at",
        "calls_in_menu",
        "products",
        "advisers",
        "today",
        "callbacks_waiting",
    }
    assert "ann" not in json.dumps(viewer) and "bob" not in json.dumps(viewer)
    assert viewer["advisers"] == supervisor["advisers"]
    assert set(viewer["advisers"]) == {
        "offline", "available", "offered", "on_call", "wrap_up", "break", "missed", "away",
    }  # fmt: skip

    adviser = await http.get("/api/wallboard", headers=await signed_in(http, ANN))
    assert adviser.status_code == 403 and adviser.json()["code"] == "role_required"
    assert (await http.get("/api/wallboard")).status_code == 401


@pytest.mark.usefixtures("staff")
async def test_a_caller_who_asked_for_a_callback_counts_until_called_back(
    http: httpx.AsyncClient, phone: Callable[..., Phone], twilio_stub: TwilioStub, app: FastAPI
) -> None:
    caller = await queued(phone, twilio_stub)
    await app.state.services.queue.ask_callback(caller.call_sid)
    seen = await board(http, WAND)
    assert seen["callbacks_waiting"] == 1
    lines = {line["product"]: line["waiting"] for line in seen["products"]}
    assert lines["vog_rp"] == 0  # no longer on the line: waiting to be called
    ann = await signed_in(http, ANN)  # becomes available: the callback is offered to her
    offered = await http.post("/api/advisers/me/status", json={"status": "available"}, headers=ann)
    assert offered.json()["status"] == "offered"
    assert (await board(http, WAND))["callbacks_waiting"] == 0


def _api_routes(routes: Sequence[BaseRoute]) -> Iterator[APIRoute]:
    """Every route of the app; FastAPI keeps an included router as one entry in app.routes."""
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        included = getattr(route, "original_router", None)
        if included is not None:
            yield from _api_routes(included.routes)


def _uses_current_user(dependant: Dependant) -> bool:
    return any(
        dep.call is current_user or _uses_current_user(dep) for dep in dependant.dependencies
    )


@pytest.mark.usefixtures("staff")
async def test_a_viewer_gets_the_wallboard_and_no_other_staff_route(
    app: FastAPI, http: httpx.AsyncClient
) -> None:
    viewer = await signed_in(http, WAND)
    staff_routes = [
        (method, route)
        for route in _api_routes(app.routes)
        if _uses_current_user(route.dependant)
        for method in sorted(route.methods)
    ]
    assert len(staff_routes) > 30  # the walk found the staff API
    allowed: set[tuple[str, str]] = set()
    for method, route in staff_routes:
        # any value fills a path parameter: the role is refused before the path is checked
        path = route.path_format.replace("{", "").replace("}", "")
        if method == "GET" and route.path_format == "/api/wallboard/events":
            continue  # a stream: checked below
        response = await http.request(method, path, headers=viewer, json={})
        if response.status_code == 200:
            allowed.add((method, route.path_format))
            continue
        assert response.status_code in (401, 403), (method, path, response.status_code)
        if response.status_code == 403:
            assert response.json()["code"] == "role_required", (method, path)
    assert allowed == WALLBOARD_ROUTES - {("GET", "/api/wallboard/events")}
    assert ("GET", "/api/wallboard/events") in {(m, r.path_format) for m, r in staff_routes}
    # the page itself is public (it signs in), as the other staff pages
    assert (await http.get("/wallboard")).status_code == 200


# -- the event stream, from a real server ------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
async def served(app: FastAPI) -> AsyncIterator[str]:
    """The test's app behind a real uvicorn on this event loop: a stream is a real stream."""
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="off", log_level="warning")
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    await asyncio.wait_for(task, 10)


async def _snapshots(lines: AsyncIterator[str]) -> AsyncIterator[dict[str, Any]]:
    event = ""
    async for line in lines:
        if line.startswith("event:"):
            event = line.removeprefix("event:").strip()
        elif line.startswith("data:") and event == "wallboard":
            yield json.loads(line.removeprefix("data:").strip())


@pytest.mark.usefixtures("staff")
async def test_the_stream_sends_a_snapshot_at_once_and_a_new_one_within_2_s_of_a_call(
    served: str, http: httpx.AsyncClient, phone: Callable[..., Phone], twilio_stub: TwilioStub
) -> None:
    viewer = await signed_in(http, WAND)
    async with (
        httpx.AsyncClient(base_url=served, timeout=10) as client,
        client.stream("GET", "/api/wallboard/events", headers=viewer) as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        snapshots = _snapshots(response.aiter_lines())
        first = await asyncio.wait_for(anext(snapshots), 5)
        assert "adviser_list" not in first
        assert sum(line["waiting"] for line in first["products"]) == 0

        await queued(phone, twilio_stub)
        queued_at = time.monotonic()
        second = await asyncio.wait_for(anext(snapshots), 5)
        assert time.monotonic() - queued_at < 2
        waiting = {line["product"]: line["waiting"] for line in second["products"]}
        assert waiting["vog_rp"] == 1
        assert second["today"]["offered"] == 1


@pytest.mark.usefixtures("staff")
async def test_the_stream_refuses_an_adviser(served: str, http: httpx.AsyncClient) -> None:
    adviser = await signed_in(http, ANN)
    async with httpx.AsyncClient(base_url=served, timeout=10) as client:
        response = await client.get("/api/wallboard/events", headers=adviser)
    assert response.status_code == 403 and response.json()["code"] == "role_required"
