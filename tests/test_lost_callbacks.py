"""Routing without the callbacks it waits for (issue 14): an instance that died took them with it,
or Twilio answered late. In-process, the real twilio SDK against the Twilio stub, the timer
(`Router.tick`) run by hand on the test's clock.

- Every callback of a conversation lost: the timer asks Twilio about quiet conversations
  (`KCC_CALL_CHECK_SECONDS`, 60) and ends one whose caller has gone, as the status would.
- An offer whose adviser was never called (the instance died before the redirect, or before the
  caller's join called the adviser in): withdrawn at its deadline, not missed.
- A participant Twilio created but answered for too late: the retry's 16026 finds that leg.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import httpx
import pytest
from fastapi import FastAPI
from sqlmodel import Session, col, select

from api.cli.phone import Phone
from ivr.records import CallRecord
from routing.adviser_history import AdviserStateChange
from routing.board import OFFER_SECONDS, Command
from routing.clock import FixedClock
from routing.telephony import TwilioTelephony
from tests.support.conference_calls import (
    ANN,
    BOB,
    ConferenceCall,
    available,
    in_conversation,
    queued,
    status_of,
)
from tests.support.staff import SANNE, add_staff, signed_in
from tests.support.twilio_stub import TwilioStub

CHECK = timedelta(seconds=60)  # KCC_CALL_CHECK_SECONDS' default
PAST_DEADLINE = timedelta(seconds=OFFER_SECONDS + 15 + 1)  # routing/board.py: ring + 15 s


@pytest.fixture
def staff(app: FastAPI) -> None:
    add_staff(app.state.services.db_engine, SANNE, ANN, BOB)


async def tick(app: FastAPI) -> None:
    """One round of the timer, and the Twilio checks it started."""
    await app.state.services.router.tick()
    await app.state.services.router.checks_done()


def fetches(stub: TwilioStub, call_sid: str) -> list[int]:
    """The answers to GET Calls/{call_sid}.json: routing asking Twilio about the call."""
    return [r.status for r in stub.requests if r.call_sid == call_sid and r.method == "GET"]


def records(app: FastAPI) -> list[CallRecord]:
    with Session(app.state.services.db_engine) as db:
        return list(db.exec(select(CallRecord)).all())


async def states_of(app: FastAPI, adviser: str) -> list[str]:
    await app.state.services.state_log.flush()
    with Session(app.state.services.db_engine) as db:
        query = select(AdviserStateChange).where(AdviserStateChange.adviser == adviser)
        return [c.state for c in db.exec(query.order_by(col(AdviserStateChange.id)))]


@pytest.mark.usefixtures("staff")
async def test_a_conversation_whose_callbacks_were_all_lost_ends_when_twilio_says_it_has(
    http: httpx.AsyncClient,
    phone: Callable[..., Phone],
    twilio_stub: TwilioStub,
    app: FastAPI,
    clock: FixedClock,
) -> None:
    telephony = app.state.services.telephony
    assert isinstance(telephony, TwilioTelephony)
    sleeps: list[float] = []

    async def sleep(seconds: float) -> None:  # the back-off, recorded instead of waited
        sleeps.append(seconds)

    telephony._sleep = sleep
    call, ann = await in_conversation(http, phone, twilio_stub)
    sid = call.call_sid

    # Within the interval nobody asks Twilio; after it, once: the caller is there, ann talks on.
    clock.set(clock.now() + CHECK - timedelta(seconds=1))
    await tick(app)
    assert fetches(twilio_stub, sid) == []
    clock.set(clock.now() + timedelta(seconds=2))
    await tick(app)
    await tick(app)  # the same second again: checked once, not per tick
    assert fetches(twilio_stub, sid) == [200]
    assert await status_of(http, ann) == "on_call"

    # The caller hangs up; every callback (the Dial action, the adviser leg's end) goes to a dead
    # instance and is lost.
    twilio_stub.hang_up_caller(sid)
    lost = {c.url.split("/twilio/")[1].split("?")[0] for c in twilio_stub.take_callbacks()}
    assert lost == {"dial-result", "adviser-status"}
    # Twilio away at the next check: nothing is ended on a guess.
    twilio_stub.fail_next(5, status=503)
    clock.set(clock.now() + CHECK)
    await tick(app)
    assert fetches(twilio_stub, sid) == [200] + [503] * 5
    assert await status_of(http, ann) == "on_call"

    # Twilio back: the call has ended, so does the conversation, as the status would end it.
    clock.set(clock.now() + CHECK)
    await tick(app)
    assert fetches(twilio_stub, sid) == [200] + [503] * 5 + [200]
    assert await status_of(http, ann) == "wrap_up"
    await app.state.services.records.flush()
    [record] = records(app)
    assert (record.call_sid, record.adviser, record.outcome) == (sid, "ann", "answered")
    assert (record.abandoned, record.call_status) == (False, "completed")

    # The status callback arriving after all changes nothing: one record, nothing abandoned.
    (await call.phone.hang_up()).raise_for_status()
    await app.state.services.records.flush()
    assert len(records(app)) == 1
    metrics = (await http.get("/metrics")).text
    assert 'kcc_calls_abandoned_total{product="vog_rp"} 0.0' in metrics
    assert 'kcc_calls_answered_total{product="vog_rp"} 1.0' in metrics
    # An ended conversation is not asked about again.
    clock.set(clock.now() + CHECK)
    await tick(app)
    assert len(fetches(twilio_stub, sid)) == 7
    assert sleeps == [0.2, 0.5, 1.0, 2.0]
    # Wrap-up (30 s), then available: the timer ended the wrap-up too.
    assert (await states_of(app, "ann"))[-3:] == ["on_call", "wrap_up", "available"]


@pytest.mark.usefixtures("staff")
async def test_an_offer_whose_redirect_was_never_sent_is_withdrawn_not_missed(
    http: httpx.AsyncClient,
    phone: Callable[..., Phone],
    twilio_stub: TwilioStub,
    app: FastAPI,
    clock: FixedClock,
) -> None:
    router = app.state.services.router
    call = await queued(phone, twilio_stub)  # waits; nobody is available
    ann = await signed_in(http, ANN)
    assert await status_of(http, ann) == "offline"  # registered by the read
    # The instance that makes ann available and offers her the call dies before its redirect.
    now = router.now_ms()
    await router.board.command("ann", Command.AVAILABLE, now)
    [offer] = await router.board.match(["vog_rp"], now)
    assert await status_of(http, ann) == "offered"

    clock.set(clock.now() + PAST_DEADLINE)
    await tick(app)

    # Ann was never rung: not missed. The call, first in line again, is offered to her anew.
    assert "missed" not in await states_of(app, "ann")
    [redirect] = [u.form["Url"] for u in twilio_stub.updates_for(call.call_sid)]
    assert f"/twilio/connect?offer={int(offer.offer_id) + 1}" in redirect
    await call.connect()
    assert await status_of(http, ann) == "offered"
    creates = [r for r in twilio_stub.requests if r.path.endswith("/Participants.json")]
    assert len(creates) == 1  # her phone rings now, once


@pytest.mark.usefixtures("staff")
async def test_an_offer_whose_adviser_was_never_called_in_takes_the_caller_back_not_missed(
    http: httpx.AsyncClient,
    phone: Callable[..., Phone],
    twilio_stub: TwilioStub,
    app: FastAPI,
    clock: FixedClock,
) -> None:
    ann = await signed_in(http, ANN)
    twilio_stub.script_device("client:ann", "answers")
    await available(http, ann)
    call = await queued(phone, twilio_stub)
    [update] = twilio_stub.updates_for(call.call_sid)
    # Twilio follows the redirect: the caller is in the conference, with music. The join event
    # goes to an instance that dies: nobody calls ann in.
    joined = await call.phone.post(update.form["Url"])
    assert call.join_if_dialled(joined.text) is not None
    lost = [c.event for c in twilio_stub.take_callbacks()]
    assert lost == ["participant-join"]

    clock.set(clock.now() + PAST_DEADLINE)
    await tick(app)

    # Taken out of the conference through the withdrawn offer's connect URL (back in the
    # queue), then offered to ann again; she is not missed.
    urls = [u.form["Url"] for u in twilio_stub.updates_for(call.call_sid)]
    assert [u.split("/twilio/")[1].split("&")[0] for u in urls] == [
        "connect?offer=1",
        "connect?offer=1",
        "connect?offer=2",
    ]
    back = await call.phone.post(urls[1])
    assert "<Enqueue" in back.text and "kcc-vog_rp" in back.text
    assert "missed" not in await states_of(app, "ann")
    await call.connect()
    assert await status_of(http, ann) == "on_call"
    creates = [r for r in twilio_stub.requests if r.path.endswith("/Participants.json")]
    assert len(creates) == 1


@pytest.mark.usefixtures("staff")
@pytest.mark.parametrize(
    ("fault", "first_answer"),
    [("error", 500), ("late", 0)],  # 0: not answered yet when the test looks
    ids=["created, answered 500", "created, answered after the SDK's timeout"],
)
async def test_a_participant_twilio_created_but_answered_late_for_is_the_advisers_leg(
    http: httpx.AsyncClient,
    phone: Callable[..., Phone],
    twilio_stub: TwilioStub,
    app: FastAPI,
    fault: str,
    first_answer: int,
) -> None:
    ann = await signed_in(http, ANN)
    twilio_stub.script_device("client:ann", "rings")
    await available(http, ann)
    call = ConferenceCall((await queued(phone, twilio_stub)).phone, twilio_stub)
    [update] = twilio_stub.updates_for(call.call_sid)
    call.join_if_dialled((await call.phone.post(update.form["Url"])).text)
    # The participant is created, but the answer fails or comes after the SDK gave up (3 s).
    if fault == "error":
        twilio_stub.fail_next(1, status=500, after_effect=True)
    else:
        twilio_stub.fail_next(1, delay=10.0, after_effect=True)  # cut short by the next reset

    await call.deliver()  # the join calls ann in: the retry is refused with 16026

    participants = [r for r in twilio_stub.requests if "/Participants" in r.path]
    assert [(r.method, r.path.rsplit("/", 1)[1], r.status) for r in participants] == [
        ("POST", "Participants.json", first_answer),
        ("POST", "Participants.json", 400),
        ("GET", "adviser.json", 200),
    ]
    [leg] = [p for p in call.conference().participants.values() if p.label == "adviser"]
    assert leg.status != "connected"  # ringing, once: no second ring
    conference = await app.state.services.router.conferences.view(call.call_sid)
    assert conference is not None and conference.adviser_leg == leg.call_sid
    assert await status_of(http, ann) == "offered"  # not missed, the caller not sent back

    twilio_stub.answer(leg.call_sid)
    await call.deliver()
    assert await status_of(http, ann) == "on_call"
