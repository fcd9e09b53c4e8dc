"""Twilio's REST API slow, failing or refusing while routing moves a caller (issue 14), end to end:
the app in-process, the real twilio SDK against the Twilio stub.

What the caller hears never waits for Twilio's REST API longer than `DELIVERY_WAIT_SECONDS`;
a request is tried 5 times (back-off 0.2, 0.5, 1, 2 s; each attempt cut off after the SDK's 3 s):
at most 18.7 s per operation. When the attempts run out the offer is withdrawn: the caller is
back at their place in line, hearing the queue, and the adviser is free for the next call.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from api.cli.phone import Phone
from routing.router import DELIVERY_WAIT_SECONDS
from routing.telephony import TwilioTelephony
from tests.conftest import AUTH_TOKEN, PUBLIC_URL
from tests.support.routing_calls import ANN, BOB, queued_vog_rp, set_status, staff
from tests.support.servers import free_port
from tests.support.staff import SANNE, add_staff, signed_in
from tests.support.twilio_stub import TwilioStub

__all__ = ["staff"]  # the fixture, used by name

ATTEMPTS = 5  # routing/telephony.py: len(backoff) + 1


async def status_of(http: httpx.AsyncClient, who: dict[str, str]) -> str:
    return str((await http.get("/api/advisers/me", headers=who)).json()["status"])


async def line(http: httpx.AsyncClient) -> list[str]:
    supervisor = await signed_in(http, SANNE)
    return [c["call_sid"] for c in (await http.get("/api/queue", headers=supervisor)).json()]


@pytest.mark.usefixtures("staff")
async def test_a_slow_twilio_does_not_keep_the_caller_from_the_queue_and_the_retry_connects(
    http: httpx.AsyncClient, phone: Callable[..., Phone], twilio_stub: TwilioStub
) -> None:
    ann = await signed_in(http, ANN)
    await set_status(http, ann, "available")
    twilio_stub.fail_next(1, delay=6.0)  # the redirect is answered after 6 s: past the timeout
    caller = phone()
    await caller.dial()
    await caller.press("2")

    started = time.monotonic()
    turn = await caller.press("#")  # the call is queued and offered to ann at once
    waited = time.monotonic() - started

    assert turn.queue == "kcc-vog_rp"  # the caller hears the queue, not silence
    assert waited < DELIVERY_WAIT_SECONDS + 0.5
    # In the background: the first attempt times out (3 s), the second (after 0.2 s) goes through.
    deadline = time.monotonic() + 10
    while [u.status for u in twilio_stub.updates_for(caller.call_sid)][1:] != [200]:
        assert time.monotonic() < deadline, twilio_stub.updates_for(caller.call_sid)
        await asyncio.sleep(0.05)
    updates = twilio_stub.updates_for(caller.call_sid)
    # Both attempts move the call to the same offer: if Twilio did act on the first one, the
    # caller fetches the same connect URL twice and joins the same conference; ann rings once.
    assert len(updates) == 2
    assert updates[0].form == updates[1].form
    assert "/twilio/connect?offer=1" in updates[1].form["Url"]
    assert await status_of(http, ann) == "offered"
    first = await caller.post(updates[0].form["Url"])
    again = await caller.post(updates[1].form["Url"])
    assert first.text == again.text and "<Conference" in first.text


@pytest.mark.parametrize(
    "fault",
    ["503", "429", "refused"],
    ids=["Twilio failing (503)", "rate limited (429)", "connection refused"],
)
async def test_when_the_attempts_run_out_the_caller_keeps_their_place_and_the_adviser_is_free(
    make_app: Callable[..., FastAPI], twilio_stub: TwilioStub, fault: str
) -> None:
    # refused: the app's Twilio API base is a port nobody listens on (the stub stopped)
    app = (
        make_app(twilio_api_base=f"http://127.0.0.1:{free_port()}")
        if fault == "refused"
        else make_app()
    )
    telephony = app.state.services.telephony
    assert isinstance(telephony, TwilioTelephony)
    sleeps: list[float] = []

    async def sleep(seconds: float) -> None:  # the back-off, recorded instead of waited
        sleeps.append(seconds)

    telephony._sleep = sleep
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url=PUBLIC_URL
    ) as http:
        await _attempts_run_out(app, http, twilio_stub, fault, sleeps)


async def _attempts_run_out(
    app: FastAPI, http: httpx.AsyncClient, stub: TwilioStub, fault: str, sleeps: list[float]
) -> None:
    add_staff(app.state.services.db_engine, SANNE, ANN, BOB)

    def phone(**kwargs: Any) -> Phone:
        return Phone(http, public_url=PUBLIC_URL, auth_token=AUTH_TOKEN, **kwargs)

    first, second = await queued_vog_rp(phone), await queued_vog_rp(phone)
    if fault != "refused":
        stub.fail_next(ATTEMPTS, status=int(fault))
    ann = await signed_in(http, ANN)

    started = time.monotonic()
    await set_status(http, ann, "available")  # offered the first call; Twilio never takes it
    took = time.monotonic() - started

    if fault != "refused":
        assert [u.status for u in stub.updates_for(first.call_sid)] == [int(fault)] * ATTEMPTS
    assert sleeps == [0.2, 0.5, 1.0, 2.0]  # the whole back-off, then no more
    assert took < 5  # the attempts themselves (the back-off was not waited here)
    assert await status_of(http, ann) == "available"  # not stuck in "offered"
    assert await line(http) == [first.call_sid, second.call_sid]  # the first still first
    hold = await first.hold()
    assert "U bent nummer 1 in de wachtrij." in hold.text
    assert stub.updates_for(second.call_sid) == []
