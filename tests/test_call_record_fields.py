"""Every field of a call's record, set at the right moment, through the app's webhooks: the
software phone plays the caller, the Twilio stub plays Twilio (conference, devices), the
adviser's controls go over the API. The record holds what a report needs without joins."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from fastapi import FastAPI
from sqlmodel import Session, select

from api.cli.phone import Phone, parse_twiml
from ivr.records import CallRecord
from routing.clock import FixedClock
from tests.conftest import AUTH_TOKEN, PUBLIC_URL
from tests.support.conference_calls import (
    ANN,
    ConferenceCall,
    in_conversation,
    participant,
    queued,
)
from tests.support.routing_calls import set_status
from tests.support.staff import SANNE, add_staff, signed_in
from tests.support.twilio_stub import TwilioStub
from tests.test_metrics import scrape, value

WWM_PHONE = "+31700000102"  # the department wwm in the flow (open on the tests' Tuesday)


@pytest.fixture
def staff(app: FastAPI) -> None:
    add_staff(app.state.services.db_engine, SANNE, ANN)


async def records_of(app: FastAPI) -> list[CallRecord]:
    assert await app.state.services.records.flush()  # everything written, nothing waits
    with Session(app.state.services.db_engine) as db:
        return list(db.exec(select(CallRecord)).all())


def utc(at: datetime) -> datetime:
    """A record's time as the database gives it back (UTC; SQLite keeps no zone)."""
    return at.astimezone(UTC).replace(tzinfo=None)


def naive(at: datetime | None) -> datetime | None:
    return at.replace(tzinfo=None) if at is not None else None


async def wrap_up(http: httpx.AsyncClient, who: dict[str, str], code: str) -> httpx.Response:
    body = {"category": code, "note": ""}
    return await http.post("/api/advisers/me/wrap-up", json=body, headers=who)


@pytest.mark.usefixtures("staff")
async def test_an_answered_call_has_its_answer_adviser_wait_talk_and_wrap_up(
    http: httpx.AsyncClient,
    phone: Callable[..., Phone],
    twilio_stub: TwilioStub,
    clock: FixedClock,
    app: FastAPI,
) -> None:
    start = clock.now()
    call = await queued(phone, twilio_stub)
    clock.set(start + timedelta(seconds=40))  # 40 s in line
    ann = await signed_in(http, ANN)
    twilio_stub.script_device("client:ann", "answers")
    assert (await set_status(http, ann, "available")).json()["status"] == "offered"
    await call.connect()
    clock.set(start + timedelta(seconds=40 + 125))  # 125 s talking
    await call.hang_up()

    [record] = await records_of(app)
    assert (record.outcome, record.adviser, record.hung_up_by) == ("answered", "ann", "caller")
    assert naive(record.answered_at) == utc(start + timedelta(seconds=40))
    assert (record.wait_seconds, record.talk_seconds) == (40, 125)
    assert (record.abandoned, record.callback_requested) == (False, False)
    assert (record.wrap_up_code, record.wrap_up_seconds, record.transfer_mode) == (None, None, None)

    clock.set(start + timedelta(seconds=40 + 125 + 18))  # 18 s to note what it was about
    assert (await wrap_up(http, ann, "eherkenning")).status_code == 204
    [record] = await records_of(app)
    assert (record.wrap_up_code, record.wrap_up_seconds) == ("eherkenning", 18)

    clock.set(start + timedelta(seconds=300))
    again = await wrap_up(http, ann, "other")
    assert (again.status_code, again.json()["code"]) == (409, "wrap_up_done")
    [record] = await records_of(app)
    assert (record.wrap_up_code, record.wrap_up_seconds) == ("eherkenning", 18)


@pytest.mark.usefixtures("staff")
async def test_the_adviser_ending_the_conversation_is_on_the_record_with_the_talk_until_then(
    http: httpx.AsyncClient,
    phone: Callable[..., Phone],
    twilio_stub: TwilioStub,
    clock: FixedClock,
    app: FastAPI,
) -> None:
    call, ann = await in_conversation(http, phone, twilio_stub)
    answered = clock.now()
    clock.set(answered + timedelta(seconds=60))
    twilio_stub.hang_up_caller(participant(call.conference(), "adviser").call_sid)
    await call.deliver()
    # The caller stays on the line for the satisfaction survey (flows/kcc.yaml has it on)...
    after = call.after_conference
    assert after is not None and not after.hung_up and "/twilio/survey" in after.twiml
    clock.set(answered + timedelta(seconds=67))  # ... and hangs up without a mark
    await call.phone.hang_up()
    # The wrap-up can be saved before the record is written: it waits for it.
    clock.set(answered + timedelta(seconds=70))
    assert (await wrap_up(http, ann, "other")).status_code == 204

    [record] = await records_of(app)
    assert (record.outcome, record.adviser, record.hung_up_by) == ("answered", "ann", "adviser")
    assert record.survey_score is None
    assert (record.talk_seconds, record.wrap_up_code, record.wrap_up_seconds) == (60, "other", 10)
    assert naive(record.ended_at) == utc(answered + timedelta(seconds=67))


@pytest.mark.usefixtures("staff")
async def test_a_wrap_up_saved_before_the_record_is_written_waits_for_it(
    http: httpx.AsyncClient,
    phone: Callable[..., Phone],
    twilio_stub: TwilioStub,
    clock: FixedClock,
    app: FastAPI,
) -> None:
    call, ann = await in_conversation(http, phone, twilio_stub)
    answered = clock.now()
    clock.set(answered + timedelta(seconds=30))
    twilio_stub.hang_up_caller(participant(call.conference(), "adviser").call_sid)
    await call.deliver()
    clock.set(answered + timedelta(seconds=35))
    assert (await wrap_up(http, ann, "other")).status_code == 204
    assert not await app.state.services.records.flush()  # the change waits for its record
    assert await app.state.services.records.waiting() == 1

    await call.phone.hang_up()
    await call.phone.hang_up()  # Twilio may deliver it twice

    [record] = await records_of(app)
    assert (record.talk_seconds, record.wrap_up_code, record.wrap_up_seconds) == (30, "other", 5)
    assert await app.state.services.records.waiting() == 0


async def left_by_hanging_up(caller: Phone) -> None:
    await caller.hang_up()


async def left_when_the_line_was_full(caller: Phone) -> None:
    result = await caller.post(
        f"{PUBLIC_URL}/twilio/queue-result?lang=nl", {"QueueResult": "queue-full"}
    )
    assert parse_twiml(result.text).hung_up
    await caller.hang_up()


async def left_queue_after_closing(caller: Phone, clock: FixedClock) -> None:
    clock.set(clock.now().replace(hour=23))  # Twilio took them out of its queue after hours
    result = await caller.post(
        f"{PUBLIC_URL}/twilio/queue-result?lang=nl", {"QueueResult": "leave"}
    )
    assert parse_twiml(result.text).hung_up
    await caller.hang_up()


@pytest.mark.parametrize(
    ("how", "hung_up_by", "outcome"),
    [
        ("hang_up", "caller", "abandoned_in_queue"),
        ("queue_full", "system", "left_queue"),
        ("left_after_closing", "system", "left_queue"),
    ],
)
async def test_a_caller_leaving_the_line_is_abandoned_once_on_the_record_and_in_metrics(
    http: httpx.AsyncClient,
    phone: Callable[..., Phone],
    twilio_stub: TwilioStub,
    clock: FixedClock,
    app: FastAPI,
    how: str,
    hung_up_by: str,
    outcome: str,
) -> None:
    start = clock.now()
    call = await queued(phone, twilio_stub)
    clock.set(start + timedelta(seconds=95))
    if how == "hang_up":
        await left_by_hanging_up(call.phone)
    elif how == "queue_full":
        await left_when_the_line_was_full(call.phone)
    else:
        await left_queue_after_closing(call.phone, clock)
    await call.phone.hang_up()  # a repeated status callback counts nothing again

    [record] = await records_of(app)
    assert (record.outcome, record.abandoned, record.hung_up_by) == (outcome, True, hung_up_by)
    assert (record.answered_at, record.adviser, record.talk_seconds) == (None, None, None)
    assert record.wait_seconds == (clock.now() - start).total_seconds()
    assert value(await scrape(http), "kcc_calls_abandoned_total", product="vog_rp") == 1


async def test_a_call_ended_by_the_flow_is_the_systems_and_not_abandoned(
    phone: Callable[..., Phone], app: FastAPI
) -> None:
    caller = phone()
    await caller.dial()
    await caller.hang_up()
    [record] = await records_of(app)
    assert (record.outcome, record.hung_up_by, record.abandoned) == (
        "abandoned_in_menu",
        "caller",
        False,
    )
    assert (record.queued_at, record.wait_seconds) == (None, None)


@pytest.mark.usefixtures("staff")
async def test_a_callback_asked_then_made_is_on_the_record(
    http: httpx.AsyncClient,
    phone: Callable[..., Phone],
    clock: FixedClock,
    twilio_stub: TwilioStub,
    app: FastAPI,
) -> None:
    start = clock.now()
    call = await queued(phone, twilio_stub)
    caller = call.phone
    clock.set(start + timedelta(minutes=10))
    await caller.hold()
    await caller.post(f"{PUBLIC_URL}/twilio/callback-choice?lang=nl", {"Digits": "1"})
    await caller.post(f"{PUBLIC_URL}/twilio/queue-result?lang=nl", {"QueueResult": "leave"})
    await caller.hang_up()

    [record] = await records_of(app)
    assert (record.outcome, record.callback_requested, record.abandoned) == (
        "callback",
        True,
        False,
    )
    assert (record.callback_made_at, record.hung_up_by) == (None, "caller")
    assert value(await scrape(http), "kcc_calls_abandoned_total", product="vog_rp") == 0

    clock.set(start + timedelta(minutes=25))
    ann = await signed_in(http, ANN)
    assert (await set_status(http, ann, "available")).json()["status"] == "offered"
    response = await http.post("/api/advisers/me/callback", headers=ann)
    assert response.status_code == 202
    [create] = twilio_stub.creates()
    callback = Phone(
        caller.client,
        public_url=PUBLIC_URL,
        auth_token=AUTH_TOKEN,
        call_sid=response.json()["call_sid"],
    )
    clock.set(start + timedelta(minutes=26))  # the caller picks up
    await callback.post(create.form["Url"])

    [record] = await records_of(app)
    assert naive(record.callback_made_at) == utc(start + timedelta(minutes=26))


async def transfer_to_wwm(
    http: httpx.AsyncClient, call: ConferenceCall, stub: TwilioStub, ann: dict[str, str], mode: str
) -> None:
    if mode == "warm":
        stub.script_device(WWM_PHONE, "answers")
    body = {"to": "department:wwm", "mode": mode, "note": ""}
    moved = await http.post("/api/advisers/me/call/transfer", json=body, headers=ann)
    assert moved.status_code == 200, moved.text
    await call.deliver()
    if mode == "warm":
        done = await http.post("/api/advisers/me/call/transfer/complete", headers=ann)
        assert done.status_code == 200
    else:
        stub.answer(participant(call.conference(), "transfer").call_sid)
    await call.deliver()


@pytest.mark.parametrize("mode", ["cold", "warm"])
@pytest.mark.usefixtures("staff")
async def test_a_completed_transfer_puts_its_mode_and_target_on_the_record(
    http: httpx.AsyncClient,
    phone: Callable[..., Phone],
    twilio_stub: TwilioStub,
    app: FastAPI,
    mode: str,
) -> None:
    call, ann = await in_conversation(http, phone, twilio_stub)
    await transfer_to_wwm(http, call, twilio_stub, ann, mode)
    await call.hang_up()

    [record] = await records_of(app)
    assert (record.outcome, record.adviser) == ("answered", "ann")
    assert (record.transfer_mode, record.transfer_target) == (mode, "department:wwm")


@pytest.mark.usefixtures("staff")
async def test_a_transfer_that_did_not_complete_leaves_the_record_untransferred(
    http: httpx.AsyncClient, phone: Callable[..., Phone], twilio_stub: TwilioStub, app: FastAPI
) -> None:
    call, ann = await in_conversation(http, phone, twilio_stub)
    twilio_stub.script_device(WWM_PHONE, "answers")
    body = {"to": "department:wwm", "mode": "warm", "note": ""}
    assert (await http.post("/api/advisers/me/call/transfer", json=body, headers=ann)).is_success
    await call.deliver()
    cancelled = await http.post("/api/advisers/me/call/transfer/cancel", headers=ann)
    assert cancelled.status_code == 200, cancelled.text
    await call.deliver()
    await call.hang_up()

    [record] = await records_of(app)
    assert (record.transfer_mode, record.transfer_target) == (None, None)
