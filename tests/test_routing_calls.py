"""The adviser's side over HTTP: states, the REST redirect through the real twilio SDK to the
local stub, the connect and dial webhooks, wrap-up."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta

import httpx
import pytest
from fastapi import FastAPI
from sqlmodel import Session, select

from api.cli.phone import Phone, parse_twiml
from routing.adviser_history import AdviserStateChange, WrapUp
from routing.clock import FixedClock
from tests.conftest import AUTH_TOKEN, PUBLIC_URL
from tests.support.conference_calls import ConferenceCall
from tests.support.routing_calls import ANN, BOB, queued_vog_rp, set_status, staff
from tests.support.staff import SANNE, signed_in
from tests.support.twilio_stub import TwilioStub

__all__ = ["staff"]  # the fixture, used by name


@pytest.mark.usefixtures("staff")
async def test_call_is_redirected_into_the_conversations_conference(
    http: httpx.AsyncClient, phone: Callable[..., Phone], twilio_stub: TwilioStub
) -> None:
    ann = await signed_in(http, ANN)
    assert (await set_status(http, ann, "available")).json()["status"] == "available"
    caller = await queued_vog_rp(phone)
    [update] = twilio_stub.updates_for(caller.call_sid)
    assert update.form["Url"] == f"{PUBLIC_URL}/twilio/connect?offer=1"
    assert update.form["Method"] == "POST"
    me = (await http.get("/api/advisers/me", headers=ann)).json()
    assert me["status"] == "offered"
    assert me["call"]["call_sid"] == caller.call_sid and me["call"]["product"] == "vog_rp"
    # Twilio follows the redirect into the conference; the adviser is called in when the
    # caller has joined (tests/test_conference_calls.py).
    connect = parse_twiml((await caller.post(update.form["Url"])).text)
    assert f">kcc-{caller.call_sid}</Conference>" in connect.twiml
    assert 'participantLabel="caller"' in connect.twiml


@pytest.mark.usefixtures("staff")
async def test_conversation_then_wrap_up_then_ready(
    http: httpx.AsyncClient, phone: Callable[..., Phone], app: FastAPI
) -> None:
    ann = await signed_in(http, ANN)
    await set_status(http, ann, "available")
    caller = await queued_vog_rp(phone)
    await caller.post(f"{PUBLIC_URL}/twilio/offer-answered?offer=1", {"CallStatus": "in-progress"})
    assert (await http.get("/api/advisers/me", headers=ann)).json()["status"] == "on_call"
    done = await caller.post(
        f"{PUBLIC_URL}/twilio/dial-result?offer=1&lang=nl", {"DialCallStatus": "completed"}
    )
    after = parse_twiml(done.text)
    # The caller is still on the line after the adviser's hang-up: the survey's question.
    assert not after.hung_up and "Hoe tevreden bent u over dit gesprek?" in after.text
    me = (await http.get("/api/advisers/me", headers=ann)).json()
    assert me["status"] == "wrap_up" and me["wrap_until"] is not None
    response = await http.post(
        "/api/advisers/me/wrap-up",
        json={"category": "procedure", "note": "uitleg gegeven"},
        headers=ann,
    )
    assert response.status_code == 204
    assert (await set_status(http, ann, "ready")).json()["status"] == "available"
    await app.state.services.state_log.flush()  # the state log is written in the background
    with Session(app.state.services.db_engine) as db:
        [wrap] = db.exec(select(WrapUp)).all()
        states = [
            c.state
            for c in db.exec(select(AdviserStateChange).order_by(AdviserStateChange.id)).all()
        ]  # type: ignore[arg-type]
    assert (wrap.call_sid, wrap.category) == (caller.call_sid, "procedure")
    assert states == ["available", "offered", "on_call", "wrap_up", "available"]


@pytest.mark.usefixtures("staff")
async def test_unanswered_offer_puts_the_caller_back_in_line_and_parks_the_adviser(
    http: httpx.AsyncClient, phone: Callable[..., Phone]
) -> None:
    ann = await signed_in(http, ANN)
    await set_status(http, ann, "available")
    caller = await queued_vog_rp(phone)
    back = parse_twiml(
        (
            await caller.post(
                f"{PUBLIC_URL}/twilio/dial-result?offer=1&lang=nl", {"DialCallStatus": "no-answer"}
            )
        ).text
    )
    assert back.queue == "kcc-vog_rp"
    assert "U blijft vooraan in de wachtrij" in back.text
    me = (await http.get("/api/advisers/me", headers=ann)).json()
    assert me["status"] == "missed"
    supervisor = await signed_in(http, SANNE)
    [waiting] = (await http.get("/api/queue", headers=supervisor)).json()
    assert waiting["call_sid"] == caller.call_sid


@pytest.mark.usefixtures("staff")
async def test_caller_hanging_up_while_ringing_frees_the_adviser(
    http: httpx.AsyncClient, phone: Callable[..., Phone]
) -> None:
    ann = await signed_in(http, ANN)
    await set_status(http, ann, "available")
    caller = await queued_vog_rp(phone)
    await caller.hang_up()
    me = (await http.get("/api/advisers/me", headers=ann)).json()
    assert me["status"] == "available" and me["call"] is None


@pytest.mark.usefixtures("staff")
async def test_the_desk_is_told_which_call_ended_when_the_caller_hangs_up_while_ringing(
    app: FastAPI, http: httpx.AsyncClient, phone: Callable[..., Phone]
) -> None:
    """The card that goes away still says whose call it was: the entry outlives the hang-up
    until routing has told the desk."""
    ann = await signed_in(http, ANN)
    await set_status(http, ann, "available")
    events = app.state.services.router.events.listen("ann")
    await anext(events)  # subscribed
    caller = await queued_vog_rp(phone)
    await caller.hang_up()
    ended: dict[str, object] = {}
    async with asyncio.timeout(5):
        async for name, data in events:
            if name == "ended":
                ended = data
                break
    await events.aclose()
    assert ended["call_sid"] == caller.call_sid and ended["reason"] == "caller hung up"
    assert ended["product"] == "vog_rp" and ended["caller"] == caller.caller


@pytest.mark.usefixtures("staff")
async def test_adviser_with_a_phone_number_is_dialled_on_it(
    http: httpx.AsyncClient, phone: Callable[..., Phone], twilio_stub: TwilioStub
) -> None:
    bob = await signed_in(http, BOB)
    await set_status(http, bob, "available")
    caller = phone()
    await caller.dial()
    await caller.press("3")
    await caller.press("#")
    await ConferenceCall(caller, twilio_stub).connect()
    [create] = [r for r in twilio_stub.requests if r.path.endswith("/Participants.json")]
    assert (create.form["To"], create.form["Label"]) == ("+31201234567", "adviser")


@pytest.mark.usefixtures("staff")
async def test_withdrawn_offer_sends_a_late_redirect_back_to_the_queue(
    http: httpx.AsyncClient, phone: Callable[..., Phone]
) -> None:
    caller = await queued_vog_rp(phone)
    late = parse_twiml((await caller.post(f"{PUBLIC_URL}/twilio/connect?offer=99")).text)
    assert late.queue == "kcc-vog_rp"


@pytest.mark.usefixtures("staff")
async def test_invalid_transition_is_409_with_the_reason(http: httpx.AsyncClient) -> None:
    ann = await signed_in(http, ANN)
    response = await set_status(http, ann, "break")
    assert response.status_code == 409
    assert response.json()["detail"] == "sign in (available) before taking a break"
    response = await http.post("/api/advisers/me/status", json={"status": "dancing"}, headers=ann)
    assert response.status_code == 422


@pytest.mark.usefixtures("staff")
async def test_supervisors_see_all_advisers_and_advisers_cannot(http: httpx.AsyncClient) -> None:
    ann = await signed_in(http, ANN)
    await set_status(http, ann, "available")
    assert (await http.get("/api/advisers", headers=ann)).status_code == 403
    supervisor = await signed_in(http, SANNE)
    advisers = (await http.get("/api/advisers", headers=supervisor)).json()
    assert [(a["name"], a["status"]) for a in advisers] == [("ann", "available")]
    assert advisers[0]["since"] is not None


@pytest.mark.usefixtures("staff")
async def test_supervisor_has_no_desk_api(http: httpx.AsyncClient) -> None:
    supervisor = await signed_in(http, SANNE)
    assert (await http.get("/api/advisers/me", headers=supervisor)).status_code == 403


@pytest.mark.usefixtures("staff")
async def test_redirect_failures_are_retried_then_the_call_waits_again(
    http: httpx.AsyncClient, phone: Callable[..., Phone], twilio_stub: TwilioStub, app: FastAPI
) -> None:
    app.state.services.telephony._backoff = (0, 0)  # no real waiting between the retries here
    twilio_stub.fail_next(3, status=503)
    ann = await signed_in(http, ANN)
    await set_status(http, ann, "available")
    caller = await queued_vog_rp(phone)
    assert len(twilio_stub.updates_for(caller.call_sid)) == 3  # tried three times, all 503
    me = (await http.get("/api/advisers/me", headers=ann)).json()
    assert me["status"] == "available"
    await app.state.services.router.tick()  # the safety net tries again: now it works
    assert (await http.get("/api/advisers/me", headers=ann)).json()["status"] == "offered"


@pytest.mark.usefixtures("staff")
async def test_expected_wait_is_said_only_with_enough_data(
    http: httpx.AsyncClient, phone: Callable[..., Phone], app: FastAPI
) -> None:
    queue = app.state.services.queue
    first, second = await queued_vog_rp(phone), await queued_vog_rp(phone)
    hold = await second.hold()
    assert "U bent nummer 2 in de wachtrij." in hold.text
    assert "verwachte wachttijd" not in hold.text  # no handling times yet
    ann = await signed_in(http, ANN)
    await set_status(http, ann, "available")  # takes the first call
    for _ in range(5):
        await queue.record_handle_time("vog_rp", 240.0)
    hold = await second.hold()
    assert "U bent nummer 1 in de wachtrij." in hold.text
    assert "De verwachte wachttijd is ongeveer 4 minuten." in hold.text
    assert first.call_sid != second.call_sid


@pytest.mark.usefixtures("staff")
async def test_callback_after_a_long_wait_keeps_the_place_and_is_made_from_the_desk(
    http: httpx.AsyncClient,
    phone: Callable[..., Phone],
    clock: FixedClock,
    twilio_stub: TwilioStub,
    app: FastAPI,
) -> None:
    caller = await queued_vog_rp(phone)
    assert "Toets dan 1" not in (await caller.hold()).text
    clock.set(clock.now() + timedelta(minutes=10))
    hold = await caller.hold()
    assert "Wilt u liever teruggebeld worden? Toets dan 1." in hold.text
    assert "/twilio/callback-choice" in hold.twiml
    chosen = await caller.post(f"{PUBLIC_URL}/twilio/callback-choice?lang=nl", {"Digits": "1"})
    assert "<Leave" in chosen.text and "Wij bellen u terug" in chosen.text
    left = await caller.post(f"{PUBLIC_URL}/twilio/queue-result?lang=nl", {"QueueResult": "leave"})
    assert parse_twiml(left.text).hung_up
    await caller.hang_up()
    supervisor = await signed_in(http, SANNE)
    [waiting] = (await http.get("/api/queue", headers=supervisor)).json()
    assert waiting["call_sid"] == caller.call_sid and waiting["callback"] is True
    # an adviser becomes available: a callback offer, no redirect of a call that is gone
    ann = await signed_in(http, ANN)
    me = (await set_status(http, ann, "available")).json()
    assert me["status"] == "offered" and me["call"]["callback"] is True
    assert twilio_stub.updates_for(caller.call_sid) == []
    response = await http.post("/api/advisers/me/callback", headers=ann)
    assert response.status_code == 202
    [create] = twilio_stub.creates()
    assert create.form["To"] == caller.caller
    assert create.form["Url"] == f"{PUBLIC_URL}/twilio/connect?offer=1"
    # the caller answers Justis' call: greeted, then put through to ann
    callback = Phone(
        caller.client,
        public_url=PUBLIC_URL,
        auth_token=AUTH_TOKEN,
        call_sid=response.json()["call_sid"],
    )
    connect = parse_twiml((await callback.post(create.form["Url"])).text)
    assert connect.heard[0].text.startswith("U wordt teruggebeld door Justis.")
    conference = ConferenceCall(callback, twilio_stub)
    conference.join_if_dialled(connect.twiml)
    await conference.deliver()
    assert conference.conference_name == f"kcc-{callback.call_sid}"
    [ringing] = [p for p in conference.conference().participants.values() if p.label == "adviser"]
    assert ringing.to == "client:ann"
    await callback.post(
        f"{PUBLIC_URL}/twilio/offer-answered?offer=1", {"CallStatus": "in-progress"}
    )
    await callback.post(
        f"{PUBLIC_URL}/twilio/dial-result?offer=1&lang=nl", {"DialCallStatus": "completed"}
    )
    assert (await http.get("/api/queue", headers=supervisor)).json() == []
    assert (await http.get("/api/advisers/me", headers=ann)).json()["status"] == "wrap_up"
