"""The Twilio edge (api/webhooks/): one dispatcher answers every webhook before the app's
middleware, each registered once; TwiML on any error or past the budget, size limits, clean-up."""

from __future__ import annotations

import asyncio
import logging
import time
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from urllib.parse import urlencode

import httpx
import pytest
import redis.asyncio as aioredis
from fastapi import FastAPI
from starlette.types import Message
from twilio.request_validator import RequestValidator

from api.cli.phone import Phone
from api.web.app import API_ROUTERS, OTHER_ROUTERS
from api.webhooks import dispatcher
from api.webhooks.handlers import HANDLERS
from ivr.fallback import LAST_RESORT
from routing import keys
from tests.conftest import AUTH_TOKEN, PUBLIC_URL


async def test_an_unexpected_error_in_a_webhook_still_answers_the_last_resort_twiml(
    app: FastAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object) -> bool:
        raise RuntimeError("something nobody expected")

    monkeypatch.setattr(dispatcher, "is_signed", broken)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url=PUBLIC_URL) as client:
        response = await client.post("/twilio/step?seq=1", data={"CallSid": "CA1"})
    assert response.status_code == 200
    root = ET.fromstring(response.text)
    assert [child.tag for child in root] == ["Say", "Hangup"]
    assert root[0].text == LAST_RESORT


async def test_other_methods_and_unknown_webhooks_are_refused_by_the_dispatcher(
    http: httpx.AsyncClient,
) -> None:
    wrong_method = await http.get("/twilio/voice")
    assert (wrong_method.status_code, wrong_method.headers["allow"]) == (405, "POST")
    assert (await http.post("/twilio/nothing-here", data={"CallSid": "CA1"})).status_code == 404
    assert (await http.post("/twilio/voice", data={"CallSid": "CA1"})).status_code == 403


def test_each_webhook_is_registered_once_and_no_route_exists_twice(app: FastAPI) -> None:
    """The dispatcher serves every webhook the docs name; FastAPI has no /twilio route that
    could never run, and no path and method is routed twice."""
    assert app.twilio_edge.paths == sorted(  # type: ignore[attr-defined]
        f"/twilio{path}" for path in HANDLERS
    )
    assert set(HANDLERS) == {
        "/voice",
        "/fallback",
        "/status",
        "/step",
        "/wait",
        "/queue-result",
        "/callback-choice",
        "/connect",
        "/offer-answered",
        "/dial-result",
        "/conference-events",
        "/adviser-status",
        "/outbound",
        "/department-whisper",
        "/monitor-status",
        "/transfer-status",
        "/survey",
    }
    routed = [
        (method, route.path)
        for router in (*API_ROUTERS, *OTHER_ROUTERS)
        for route in router.routes
        for method in sorted(getattr(route, "methods", None) or {"*"})
    ]
    assert len(routed) > 20
    assert len(routed) == len(set(routed))
    assert not [path for _, path in routed if path.startswith("/twilio")]


async def test_a_hanging_step_answers_the_apology_within_the_budget(
    app: FastAPI, http: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    services = app.state.services
    services.webhook_budget_seconds = 0.3
    caller = Phone(http, public_url=PUBLIC_URL, auth_token=AUTH_TOKEN)
    await caller.dial()

    async def hanging(*args: object, **kwargs: object) -> str:
        await asyncio.sleep(3600)
        return ""

    monkeypatch.setattr(services.calls, "step", hanging)
    started = time.monotonic()
    async with asyncio.timeout(5):  # the test's own limit
        turn = await caller.press("1")
    assert time.monotonic() - started < 2.0
    assert turn.heard[0].text.startswith("Excuses, er ging iets mis.")
    assert turn.queue == "kcc-general"


async def test_an_oversized_request_is_refused_before_it_is_buffered(
    http: httpx.AsyncClient,
) -> None:
    huge_form = {"CallSid": "CA1", "Digits": "1" * (70 * 1024)}
    assert (await http.post("/twilio/voice", data=huge_form)).status_code == 413
    # Everything else has the app's limit: a draft flow may be large, not unbounded.
    body = b'{"text": "' + b"x" * (3 * 1024 * 1024) + b'"}'
    headers = {"Content-Type": "application/json"}
    response = await http.post("/api/flows/validate", content=body, headers=headers)
    assert response.status_code == 413


async def test_an_oversized_body_of_undeclared_length_is_refused_while_it_is_read(
    http: httpx.AsyncClient,
) -> None:
    """Chunked, so no Content-Length to refuse it by: the count while reading must stop it (the
    app's own limit for other requests is far higher)."""

    async def pieces() -> AsyncIterator[bytes]:
        yield b"CallSid=CA1&Digits="
        for _ in range(70):
            yield b"1" * 1024

    headers = {"Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": "x"}
    response = await http.post("/twilio/voice", content=pieces(), headers=headers)
    assert response.status_code == 413


async def test_a_webhook_body_sent_in_pieces_is_read_whole(http: httpx.AsyncClient) -> None:
    params = {"CallSid": "CA" + "7" * 32, "From": "+31612345678", "To": "+31703700000"}
    body = urlencode(params).encode()
    signature = RequestValidator(AUTH_TOKEN).compute_signature(f"{PUBLIC_URL}/twilio/voice", params)

    async def pieces() -> AsyncIterator[bytes]:
        for start in range(0, len(body), 7):
            yield body[start : start + 7]

    response = await http.post(
        "/twilio/voice",
        content=pieces(),
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Twilio-Signature": signature,
        },
    )
    assert response.status_code == 200
    assert ET.fromstring(response.text).find("Gather") is not None  # the menu: signature matched


async def test_a_hang_up_whose_session_cannot_be_opened_still_leaves_the_queue(
    app: FastAPI, http: httpx.AsyncClient, redis_client: aioredis.Redis
) -> None:
    """A session sealed with another key (or tampered with): the call still leaves the line."""
    caller = Phone(http, public_url=PUBLIC_URL, auth_token=AUTH_TOKEN)
    await caller.dial()
    await caller.press("2")
    turn = await caller.press("#")
    assert turn.queue == "kcc-vog_rp"
    queue = app.state.services.queue
    assert [e.call_sid for e in await queue.waiting()] == [caller.call_sid]
    await redis_client.hset(keys.session(caller.call_sid), "data", "2.not-a-sealed-session")

    response = await caller.hang_up()

    assert response.status_code == 200
    assert await queue.waiting() == []


async def test_a_client_gone_before_its_request_was_read_is_not_an_error(
    app: FastAPI, caplog: pytest.LogCaptureFixture
) -> None:
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/twilio/voice",
        "query_string": b"",
        "headers": [(b"content-type", b"application/x-www-form-urlencoded")],
    }
    with caplog.at_level(logging.INFO):
        await app(scope, receive, send)
    assert sent == []  # nobody left to answer
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert any(r.getMessage() == "webhook client went away" for r in caplog.records)
