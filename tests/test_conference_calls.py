"""Conversations in a conference, end to end: the caller's webhooks from the software phone,
Twilio's part (the conference, the adviser's device, every callback signed) by the stub through
the real twilio SDK, and the adviser's hold and mute over the API."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import httpx
import pytest
from fastapi import FastAPI
from sqlmodel import Session, col, select

from api.cli.phone import Phone
from flows.model import TWILIO_HOLD_MUSIC
from ivr.records import CallRecord
from routing.adviser_history import AdviserStateChange
from routing.clock import FixedClock
from tests.conftest import PUBLIC_URL
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
from tests.support.twilio_conferences import Participant
from tests.support.twilio_stub import TwilioStub

KCC_NUMBER = "+31703704900"  # KCC_CALLER_ID of the tests' settings


@pytest.fixture
def staff(app: FastAPI) -> None:
    add_staff(app.state.services.db_engine, SANNE, ANN, BOB)


def participant_labelled(call: ConferenceCall, label: str) -> Participant:
    [found] = [p for p in call.conference().participants.values() if p.label == label]
    return found


@pytest.mark.usefixtures("staff")
async def test_offered_call_joins_a_conference_and_the_adviser_who_answers_is_called_in(
    http: httpx.AsyncClient, phone: Callable[..., Phone], twilio_stub: TwilioStub
) -> None:
    ann = await signed_in(http, ANN)
    await available(http, ann)
    call = await queued(phone, twilio_stub)

    turn = await call.connect()

    # The caller is in a conference named after their call, hearing music, never silence.
    assert call.conference_name == f"kcc-{call.call_sid}"
    assert f'waitUrl="{TWILIO_HOLD_MUSIC}"' in turn.twiml
    assert 'endConferenceOnExit="true"' in turn.twiml
    assert 'statusCallbackEvent="join"' in turn.twiml
    # Ann's browser phone rings into it (unscripted: it keeps ringing).
    conference = call.conference()
    [ringing] = [p for p in conference.participants.values() if p.label == "adviser"]
    assert (ringing.to, ringing.status) == ("client:ann", "ringing")
    [create] = [
        r
        for r in twilio_stub.requests
        if r.path.endswith("/Participants.json") and r.method == "POST"
    ]
    assert create.form["From"] == KCC_NUMBER and create.form["Timeout"] == "20"
    assert create.form["StatusCallback"] == f"{PUBLIC_URL}/twilio/adviser-status?offer=1"
    assert create.form["StatusCallbackEvent"] == "ringing answered completed"
    assert create.form["EndConferenceOnExit"] == "false"
    assert await status_of(http, ann) == "offered"

    twilio_stub.answer(ringing.call_sid)
    await call.deliver()

    assert await status_of(http, ann) == "on_call"
    labels = sorted(p.label or "" for p in call.conference().participants.values())
    assert labels == ["adviser", "caller"]


@pytest.mark.usefixtures("staff")
async def test_a_repeated_join_event_calls_the_adviser_in_only_once(
    http: httpx.AsyncClient, phone: Callable[..., Phone], twilio_stub: TwilioStub
) -> None:
    ann = await signed_in(http, ANN)
    await available(http, ann)
    call = await queued(phone, twilio_stub)
    await call.connect()
    [join] = [d for d in call.delivered if d.callback.event == "participant-join"]

    again = await call.phone.client.post(
        "/twilio/conference-events?offer=1",
        data=join.callback.form,
        headers={"X-Twilio-Signature": join.callback.signature},
    )

    assert again.status_code == 200
    creates = [r for r in twilio_stub.requests if r.path.endswith("/Participants.json")]
    assert len(creates) == 1
    # A join without a label from another call is not the caller's: nobody is called in.
    stranger = {**join.callback.form, "CallSid": "CA" + "9" * 32, "ParticipantLabel": ""}
    signature = twilio_stub.sign(join.callback.url, stranger)
    other = await call.phone.client.post(
        "/twilio/conference-events?offer=1",
        data=stranger,
        headers={"X-Twilio-Signature": signature},
    )
    assert other.status_code == 200
    creates = [r for r in twilio_stub.requests if r.path.endswith("/Participants.json")]
    assert len(creates) == 1


@pytest.mark.parametrize("device_does", ["no-answer", "busy", "failed"])
@pytest.mark.usefixtures("staff")
async def test_adviser_who_does_not_answer_puts_the_caller_back_at_the_head_of_the_line(
    http: httpx.AsyncClient,
    phone: Callable[..., Phone],
    twilio_stub: TwilioStub,
    device_does: str,
) -> None:
    ann = await signed_in(http, ANN)
    await available(http, ann)
    twilio_stub.script_device("client:ann", device_does)  # type: ignore[arg-type]
    first = await queued(phone, twilio_stub)
    second = await queued(phone, twilio_stub)  # waits: Ann has the first call

    await first.connect()

    assert first.after_conference is not None
    assert first.after_conference.queue == "kcc-vog_rp"
    assert "U blijft vooraan in de wachtrij" in first.after_conference.text
    assert first.conference().status == "completed"
    assert await status_of(http, ann) == "missed"
    supervisor = await signed_in(http, SANNE)
    waiting = (await http.get("/api/queue", headers=supervisor)).json()
    assert [w["call_sid"] for w in waiting] == [first.call_sid, second.call_sid]


@pytest.mark.usefixtures("staff")
async def test_an_offer_nobody_reports_on_expires_and_takes_the_caller_out_of_the_conference(
    http: httpx.AsyncClient,
    phone: Callable[..., Phone],
    twilio_stub: TwilioStub,
    app: FastAPI,
    clock: FixedClock,
) -> None:
    """Twilio's callbacks for the adviser's leg were lost: the safety net still moves on."""
    ann = await signed_in(http, ANN)
    await available(http, ann)
    call = await queued(phone, twilio_stub)
    await call.connect()  # Ann's phone keeps ringing and nothing is ever reported
    clock.set(clock.now() + timedelta(minutes=2))

    await app.state.services.router.tick()
    await call.deliver()

    assert call.after_conference is not None and call.after_conference.queue == "kcc-vog_rp"
    assert await status_of(http, ann) == "missed"


@pytest.mark.usefixtures("staff")
async def test_caller_hanging_up_while_the_adviser_rings_stops_the_ringing_and_frees_the_adviser(
    http: httpx.AsyncClient, phone: Callable[..., Phone], twilio_stub: TwilioStub
) -> None:
    ann = await signed_in(http, ANN)
    await available(http, ann)
    call = await queued(phone, twilio_stub)
    await call.connect()
    ringing = participant_labelled(call, "adviser")

    await call.hang_up()

    assert await status_of(http, ann) == "available"
    assert twilio_stub.call_status(ringing.call_sid) in ("completed", "canceled")
    assert call.conference().status == "completed"
    supervisor = await signed_in(http, SANNE)
    assert (await http.get("/api/queue", headers=supervisor)).json() == []


@pytest.mark.usefixtures("staff")
async def test_adviser_hanging_up_keeps_the_caller_for_the_survey_and_starts_wrap_up(
    http: httpx.AsyncClient, phone: Callable[..., Phone], twilio_stub: TwilioStub
) -> None:
    call, ann = await in_conversation(http, phone, twilio_stub)
    [adviser_leg] = [
        p.call_sid for p in call.conference().participants.values() if p.label == "adviser"
    ]

    twilio_stub.hang_up_caller(adviser_leg)  # Ann puts her phone down
    await call.deliver()

    # The caller is still on the line: the survey's question (tests/test_survey.py).
    assert call.after_conference is not None and not call.after_conference.hung_up
    assert "Hoe tevreden bent u over dit gesprek?" in call.after_conference.text
    assert await status_of(http, ann) == "wrap_up"
    assert call.conference().status == "completed"


@pytest.mark.usefixtures("staff")
async def test_hold_plays_the_flows_music_to_the_caller_and_unhold_brings_them_back(
    http: httpx.AsyncClient,
    phone: Callable[..., Phone],
    twilio_stub: TwilioStub,
    app: FastAPI,
    clock: FixedClock,
) -> None:
    call, ann = await in_conversation(http, phone, twilio_stub)

    held = await http.post("/api/advisers/me/call/hold", json={"hold": True}, headers=ann)

    assert held.status_code == 200 and held.json()["hold"] is True
    [caller] = [p for p in call.conference().participants.values() if p.label == "caller"]
    assert caller.hold and caller.hold_url == TWILIO_HOLD_MUSIC
    # The hold is Twilio's participant state; the conference sends no hold event (only joins).
    await call.deliver()
    assert "participant-hold" not in [d.callback.event for d in call.delivered]

    clock.set(clock.now() + timedelta(seconds=40))
    back = await http.post("/api/advisers/me/call/hold", json={"hold": False}, headers=ann)

    assert back.status_code == 200 and back.json() == {
        "hold": False,
        "mute": False,
        "hold_seconds": 40,
    }
    assert not caller.hold
    await app.state.services.state_log.flush()
    with Session(app.state.services.db_engine) as db:
        states = [
            c.state
            for c in db.exec(select(AdviserStateChange).order_by(col(AdviserStateChange.id)))
        ]
    assert states[-3:] == ["on_call", "on_hold", "on_call"]


@pytest.mark.usefixtures("staff")
async def test_caller_hanging_up_on_hold_ends_the_advisers_call_and_records_the_hold_time(
    http: httpx.AsyncClient,
    phone: Callable[..., Phone],
    twilio_stub: TwilioStub,
    app: FastAPI,
    clock: FixedClock,
) -> None:
    call, bob = await in_conversation(http, phone, twilio_stub, BOB)  # a phone number
    await http.post("/api/advisers/me/call/hold", json={"hold": True}, headers=bob)
    clock.set(clock.now() + timedelta(seconds=25))

    await call.hang_up()

    conference = call.conference()
    assert conference.status == "completed" and not conference.participants
    assert await status_of(http, bob) == "wrap_up"
    # Bob's phone was called into the conference and left it when it ended.
    [bob_leg] = [
        d.callback.form["CallSid"]
        for d in call.delivered
        if d.callback.form.get("To") == "+31201234567" and d.callback.event == "in-progress"
    ]
    assert bob_leg in conference.left
    assert any(
        d.callback.form.get("CallSid") == bob_leg and d.callback.event == "completed"
        for d in call.delivered
    )
    await app.state.services.records.flush()
    with Session(app.state.services.db_engine) as db:
        [record] = db.exec(select(CallRecord)).all()
    assert (record.outcome, record.hold_seconds) == ("answered", 25)


@pytest.mark.usefixtures("staff")
async def test_mute_mutes_the_advisers_phone_in_the_conference(
    http: httpx.AsyncClient, phone: Callable[..., Phone], twilio_stub: TwilioStub
) -> None:
    call, ann = await in_conversation(http, phone, twilio_stub)

    muted = await http.post("/api/advisers/me/call/mute", json={"mute": True}, headers=ann)

    assert muted.status_code == 200 and muted.json()["mute"] is True
    [mine] = [p for p in call.conference().participants.values() if p.label == "adviser"]
    assert mine.muted
    await http.post("/api/advisers/me/call/mute", json={"mute": False}, headers=ann)
    assert not mine.muted
    await call.deliver()
    events = [d.callback.event for d in call.delivered]
    assert "participant-mute" not in events and "participant-unmute" not in events


@pytest.mark.usefixtures("staff")
async def test_hold_and_mute_without_a_call_are_409_with_a_code(http: httpx.AsyncClient) -> None:
    ann = await signed_in(http, ANN)
    await available(http, ann)

    hold = await http.post("/api/advisers/me/call/hold", json={"hold": True}, headers=ann)
    mute = await http.post("/api/advisers/me/call/mute", json={"mute": True}, headers=ann)

    assert (hold.status_code, hold.json()["code"]) == (409, "no_call_in_progress")
    assert (mute.status_code, mute.json()["code"]) == (409, "no_call_in_progress")
    bad = await http.post("/api/advisers/me/call/hold", json={"hold": "soms"}, headers=ann)
    assert bad.status_code == 422
