"""The report of a day of calls driven through the webhooks, against figures worked out by hand.

Six calls on Tuesday 1 December 2026, each played by the software phone against the app, the
Twilio stub playing Twilio and Ann (an adviser) answering over the API:

    A  VOG RP, answered after 10 s, 100 s talk, wrap-up 10 s after the conversation
    B  VOG RP, answered after 70 s, 200 s talk ended by Ann, survey mark 8, wrap-up 20 s
    C  VOG RP, hung up after 95 s in line (abandoned)
    D  VOG RP, answered at once, 60 s talk, then a cold transfer to the Wwm department (what
       the department talks on is not in the adviser's talk time)
    E  hung up in the menu
    F  after closing time: verified, heard the status of their VOG NP application
       (self-service: it counts for the application's product)

By product, with a service level threshold of 30 s:

    vog_rp  calls 4, offered 4, answered 3 (A, B, D), in time 2 (A, D), abandoned 1,
            service level 2/4 = 0.5, ASA (10 + 70 + 0) / 3 = 26.7 s,
            AHT ((100 + 10) + (200 + 20) + (60 + 0)) / 3 = 130.0 s, abandon rate 0.25,
            transfers 1, survey 1 response, average 8.0
    vog_np  calls 1, self-service 1 (F)
    (none)  calls 1, ended in the menu 1 (E)
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from api.cli.phone import Phone
from routing.clock import FixedClock
from tests.conftest import SECRET_KEY
from tests.support.applications import app_with_demo_applications
from tests.support.clock import AMSTERDAM
from tests.support.conference_calls import ANN, ConferenceCall, participant, queued
from tests.support.routing_calls import set_status
from tests.support.staff import SANNE, add_staff, signed_in
from tests.support.twilio_stub import TwilioStub

WWM_PHONE = "+31700000102"  # the department wwm in the flow (open on the tests' Tuesday)


@pytest.fixture
async def app(make_app: Callable[..., FastAPI]) -> FastAPI:
    """The demo applications (for the self-service call), Sanne the supervisor, Ann."""
    app = app_with_demo_applications(make_app, SECRET_KEY)
    add_staff(app.state.services.db_engine, ANN)
    return app


async def answered_after(
    http: httpx.AsyncClient,
    phone: Callable[..., Phone],
    stub: TwilioStub,
    clock: FixedClock,
    ann: dict[str, str],
    wait: int,
) -> ConferenceCall:
    """A caller joins the VOG RP line; `wait` seconds later Ann becomes available and answers."""
    call = await queued(phone, stub)
    clock.set(clock.now() + timedelta(seconds=wait))
    stub.script_device("client:ann", "answers")
    assert (await set_status(http, ann, "available")).json()["status"] == "offered"
    await call.connect()
    return call


async def wrap_up(http: httpx.AsyncClient, ann: dict[str, str], code: str) -> None:
    body = {"category": code, "note": ""}
    saved = await http.post("/api/advisers/me/wrap-up", json=body, headers=ann)
    assert saved.status_code == 204, saved.text


async def a_day_of_calls(
    http: httpx.AsyncClient, phone: Callable[..., Phone], stub: TwilioStub, clock: FixedClock
) -> None:
    ann = await signed_in(http, ANN)
    later = lambda seconds: clock.set(clock.now() + timedelta(seconds=seconds))  # noqa: E731

    # A: answered after 10 s, 100 s talk, the caller hangs up; wrap-up 10 s later
    a = await answered_after(http, phone, stub, clock, ann, 10)
    later(100)
    await a.hang_up()
    later(10)
    await wrap_up(http, ann, "status")

    # B: answered after 70 s, 200 s talk, Ann ends it; the caller gives an 8; wrap-up 20 s later
    later(60)
    b = await answered_after(http, phone, stub, clock, ann, 70)
    later(200)
    stub.hang_up_caller(participant(b.conference(), "adviser").call_sid)
    await b.deliver()
    assert b.after_conference is not None and "/twilio/survey" in b.after_conference.twiml
    b.phone.last = b.after_conference  # the caller's phone runs what Twilio runs
    thanks = await b.phone.press("8#")
    assert thanks.hung_up
    await b.phone.hang_up()
    later(20)
    await wrap_up(http, ann, "procedure")
    assert (await set_status(http, ann, "break")).is_success  # nobody answers C

    # C: 95 s in line, then the caller hangs up
    later(60)
    c = await queued(phone, stub)
    later(95)
    await c.phone.hang_up()

    # D: Ann is free, the call is put through at once; after 60 s a cold transfer to Wwm
    later(60)
    d = await answered_after(http, phone, stub, clock, ann, 0)
    later(60)
    body = {"to": "department:wwm", "mode": "cold", "note": ""}
    moved = await http.post("/api/advisers/me/call/transfer", json=body, headers=ann)
    assert moved.status_code == 200, moved.text
    await d.deliver()
    stub.answer(participant(d.conference(), "transfer").call_sid)
    await d.deliver()
    later(120)  # the department talks on; Ann is not in it
    await d.hang_up()

    # E: hung up in the menu
    later(60)
    menu = phone()
    await menu.dial()
    await menu.hang_up()

    # F: after closing time a verified caller hears the application's status and hangs up
    clock.set(datetime(2026, 12, 1, 19, 30, tzinfo=AMSTERDAM))
    caller = phone()
    turn = await caller.dial()
    assert "status van uw aanvraag" in turn.text
    await caller.press("1")
    await caller.press("2345678#")
    turn = await caller.press("14021990")
    assert "Uw aanvraag voor een VOG is op 20 november ontvangen." in turn.text
    await caller.hang_up()


def row(report: dict[str, Any], key: str | None) -> dict[str, Any]:
    [found] = [r for r in report["rows"] if r["key"] == key]
    return found


async def test_a_day_of_calls_through_the_webhooks_gives_the_hand_worked_report(
    http: httpx.AsyncClient,
    phone: Callable[..., Phone],
    twilio_stub: TwilioStub,
    clock: FixedClock,
    app: FastAPI,
) -> None:
    await a_day_of_calls(http, phone, twilio_stub, clock)
    assert await app.state.services.records.flush()  # every record and change written
    sanne = await signed_in(http, SANNE)

    answer = await http.get(
        "/api/reports",
        params={"from": "2026-12-01", "to": "2026-12-01", "by": "product", "sl_seconds": 30},
        headers=sanne,
    )

    assert answer.status_code == 200, answer.text
    report = answer.json()
    vog_rp = row(report, "vog_rp")
    assert {name: vog_rp[name] for name in vog_rp if name != "key"} == {
        "calls": 4,
        "offered": 4,
        "answered": 3,
        "answered_in_sl": 2,
        "abandoned": 1,
        "service_level": 0.5,
        "asa_seconds": 26.7,
        "aht_seconds": 130.0,
        "abandon_rate": 0.25,
        "self_service": 0,
        "ended_in_menu": 0,
        "callbacks": 0,
        "transfers": 1,
        "survey_responses": 1,
        "survey_average": 8.0,
    }
    vog_np = row(report, "vog_np")
    assert (vog_np["calls"], vog_np["offered"], vog_np["self_service"]) == (1, 0, 1)
    menu = row(report, None)
    assert (menu["calls"], menu["offered"], menu["ended_in_menu"]) == (1, 0, 1)
    total = report["total"]
    assert (total["calls"], total["offered"], total["answered"], total["abandoned"]) == (6, 4, 3, 1)
    assert (total["self_service"], total["ended_in_menu"], total["service_level"]) == (1, 1, 0.5)

    # The same day by the hour it started (Amsterdam): A-E in the morning, F at 19:00.
    by_hour = await http.get(
        "/api/reports",
        params={"from": "2026-12-01", "to": "2026-12-01", "by": "hour"},
        headers=sanne,
    )
    hours = {r["key"]: r["calls"] for r in by_hour.json()["rows"]}
    assert hours == {10: 5, 19: 1}
