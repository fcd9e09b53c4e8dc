"""Transfers end to end (issue 12): the caller's webhooks from the software phone, Twilio's part
(the conference, every device, each callback signed) by the stub through the real twilio SDK,
and the adviser's transfer controls over the API."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta

import httpx
import pytest
from fastapi import FastAPI
from sqlmodel import Session, col, select

from api.cli.phone import Phone
from flows.model import TWILIO_HOLD_MUSIC
from ivr.departments import whisper_url
from ivr.records import CallRecord
from routing.adviser_history import AdviserStateChange
from routing.clock import FixedClock
from routing.transfers import CallTransfer
from tests.conftest import PUBLIC_URL
from tests.support.conference_calls import (
    ANN,
    ConferenceCall,
    available,
    in_conversation,
    queued,
    status_of,
)
from tests.support.staff import SANNE, add_staff, adviser, signed_in
from tests.support.twilio_conferences import Participant
from tests.support.twilio_stub import TwilioStub

CAROL = adviser("carol", skills=["vog_rp", "vog_np"])
DAN = adviser("dan", skills=["vog_np"])
WWM_PHONE = "+31700000102"  # the department wwm in the flow (open on the tests' Tuesday)
GOODBYE = "Bedankt voor uw telefoontje"
SURVEY_QUESTION = "Hoe tevreden bent u over dit gesprek?"
STAY_AT_THE_HEAD = "U blijft vooraan in de wachtrij"


@pytest.fixture
def staff(app: FastAPI) -> None:
    add_staff(app.state.services.db_engine, SANNE, ANN, CAROL, DAN)


async def transfer(
    http: httpx.AsyncClient, who: dict[str, str], to: str, mode: str = "cold", note: str = ""
) -> httpx.Response:
    body = {"to": to, "mode": mode, "note": note}
    return await http.post("/api/advisers/me/call/transfer", json=body, headers=who)


def labelled(call: ConferenceCall, label: str) -> Participant | None:
    found = [p for p in call.conference().participants.values() if p.label == label]
    return found[0] if found else None


async def transfers_recorded(app: FastAPI) -> list[CallTransfer]:
    await app.state.services.transfer_log.flush()
    with Session(app.state.services.db_engine) as db:
        return list(db.exec(select(CallTransfer).order_by(col(CallTransfer.id))).all())


async def waiting(http: httpx.AsyncClient) -> list[tuple[str, str]]:
    supervisor = await signed_in(http, SANNE)
    entries = (await http.get("/api/queue", headers=supervisor)).json()
    return [(e["call_sid"], e["product"]) for e in entries]


# -- to a colleague and to a queue --------------------------------------------------------------


@pytest.mark.usefixtures("staff")
async def test_cold_transfer_to_a_colleague_rings_them_with_the_context_and_the_note(
    http: httpx.AsyncClient, phone: Callable[..., Phone], twilio_stub: TwilioStub, app: FastAPI
) -> None:
    call, ann = await in_conversation(http, phone, twilio_stub)
    old_conference = call.conference()
    carol = await signed_in(http, CAROL)
    await available(http, carol)

    moved = await transfer(http, ann, "adviser:carol", note="Wil bezwaar maken tegen de VOG")

    assert moved.status_code == 200, moved.text
    assert moved.json() == {"to": "adviser:carol", "mode": "cold", "state": "started"}
    assert await status_of(http, ann) == "wrap_up"
    # Carol's screen-pop: the caller's context, who transferred it and the note.
    mine = (await http.get("/api/advisers/me", headers=carol)).json()
    assert mine["status"] == "offered"
    assert mine["call"]["call_sid"] == call.call_sid
    assert mine["call"]["product"] == "vog_rp"
    assert mine["call"]["transferred_by"] == "ann"
    assert mine["call"]["transfer_note"] == "Wil bezwaar maken tegen de VOG"
    # Ann has let go: a second transfer is refused while hers is on its way.
    again = await transfer(http, ann, "queue:vog_np")
    assert (again.status_code, again.json()["code"]) == (409, "transfer_in_progress")
    # The caller was moved (REST) out of Ann's conference into a new one; Carol's phone rings.
    twilio_stub.script_device("client:carol", "answers")
    await call.connect()
    assert old_conference.status == "completed"
    assert call.conference() is not old_conference
    assert await status_of(http, carol) == "on_call"
    assert sorted(p.label or "" for p in call.conference().participants.values()) == [
        "adviser",
        "caller",
    ]
    [record] = await transfers_recorded(app)
    assert (record.adviser, record.target_kind, record.target, record.mode) == (
        "ann",
        "adviser",
        "carol",
        "cold",
    )
    assert (record.answered, record.outcome) == (True, "answered")


@pytest.mark.parametrize("who", ["dan", "ann", "nobody"])
@pytest.mark.usefixtures("staff")
async def test_a_colleague_who_is_not_signed_in_and_available_is_refused_with_409(
    http: httpx.AsyncClient, phone: Callable[..., Phone], twilio_stub: TwilioStub, who: str
) -> None:
    """Dan is signed in but on a break; Ann cannot transfer to herself; nobody is unknown."""
    call, ann = await in_conversation(http, phone, twilio_stub)
    dan = await signed_in(http, DAN)
    await available(http, dan)
    await http.post("/api/advisers/me/status", json={"status": "break"}, headers=dan)

    refused = await transfer(http, ann, f"adviser:{who}")

    assert (refused.status_code, refused.json()["code"]) == (409, "adviser_unavailable")
    assert await status_of(http, ann) == "on_call"  # nothing changed: Ann still talks
    assert labelled(call, "caller") is not None and labelled(call, "adviser") is not None
    retry = await transfer(http, ann, "queue:vog_np")  # and no transfer was left claimed
    assert retry.status_code == 200


@pytest.mark.usefixtures("staff")
async def test_a_colleague_who_does_not_answer_leaves_the_caller_at_the_head_of_the_line(
    http: httpx.AsyncClient, phone: Callable[..., Phone], twilio_stub: TwilioStub, app: FastAPI
) -> None:
    call, ann = await in_conversation(http, phone, twilio_stub)
    carol = await signed_in(http, CAROL)
    await available(http, carol)
    twilio_stub.script_device("client:carol", "no-answer")

    await transfer(http, ann, "adviser:carol")
    later = await queued(phone, twilio_stub)  # a vog_rp caller who came after
    await call.connect()

    assert call.after_conference is not None and call.after_conference.queue == "kcc-vog_rp"
    assert STAY_AT_THE_HEAD in call.after_conference.text
    assert await status_of(http, carol) == "missed"
    assert await waiting(http) == [(call.call_sid, "vog_rp"), (later.call_sid, "vog_rp")]
    [record] = await transfers_recorded(app)
    assert (record.answered, record.outcome) == (False, "no-answer")


@pytest.mark.usefixtures("staff")
async def test_cold_transfer_to_a_queue_takes_the_head_of_that_line(
    http: httpx.AsyncClient, phone: Callable[..., Phone], twilio_stub: TwilioStub, app: FastAPI
) -> None:
    call, ann = await in_conversation(http, phone, twilio_stub)
    earlier = phone()  # a vog_np caller waiting already (nobody for vog_np is available)
    await earlier.dial()
    await earlier.press("1")
    await earlier.press("4")
    assert (await earlier.press("#")).queue == "kcc-vog_np"

    moved = await transfer(http, ann, "queue:vog_np", note="Heeft een VOG NP nodig")
    await call.deliver()

    assert moved.status_code == 200
    assert await status_of(http, ann) == "wrap_up"
    # The caller left the conference; the Dial action put them in the vog_np line, first.
    assert call.after_conference is not None and call.after_conference.queue == "kcc-vog_np"
    assert await waiting(http) == [(call.call_sid, "vog_np"), (earlier.call_sid, "vog_np")]
    # Dan, for vog_np, signs in: the transferred call is offered to him first, with the note.
    dan = await signed_in(http, DAN)
    await http.post("/api/advisers/me/status", json={"status": "available"}, headers=dan)
    mine = (await http.get("/api/advisers/me", headers=dan)).json()
    assert mine["status"] == "offered" and mine["call"]["call_sid"] == call.call_sid
    assert (mine["call"]["transferred_by"], mine["call"]["transfer_note"]) == (
        "ann",
        "Heeft een VOG NP nodig",
    )
    twilio_stub.script_device("client:dan", "answers")
    await call.connect()
    assert await status_of(http, dan) == "on_call"
    [record] = await transfers_recorded(app)
    assert (record.target_kind, record.target, record.answered) == ("queue", "vog_np", True)


@pytest.mark.usefixtures("staff")
async def test_two_transfers_of_the_same_call_at_once_one_wins_the_other_is_409(
    http: httpx.AsyncClient, phone: Callable[..., Phone], twilio_stub: TwilioStub
) -> None:
    call, ann = await in_conversation(http, phone, twilio_stub)

    first, second = await asyncio.gather(
        transfer(http, ann, "queue:vog_np"), transfer(http, ann, "department:wwm")
    )

    statuses = sorted([first.status_code, second.status_code])
    assert statuses == [200, 409]
    loser = first if first.status_code == 409 else second
    assert loser.json()["code"] == "transfer_in_progress"
    # Only one of them happened: the department was called, or the caller queued, not both.
    department_called = any(
        r.form.get("To") == WWM_PHONE for r in twilio_stub.requests if r.method == "POST"
    )
    await call.deliver()
    queued_again = call.after_conference is not None and call.after_conference.queue is not None
    assert department_called != queued_again


@pytest.mark.usefixtures("staff")
async def test_bad_targets_answer_with_a_code(
    http: httpx.AsyncClient, phone: Callable[..., Phone], twilio_stub: TwilioStub
) -> None:
    call, ann = await in_conversation(http, phone, twilio_stub)

    closed = await transfer(http, ann, "department:gratie")  # pardons: afternoons only
    unknown = await transfer(http, ann, "department:kantine")
    no_product = await transfer(http, ann, "queue:visum")
    badly = await transfer(http, ann, "somewhere")
    warm_queue = await transfer(http, ann, "queue:vog_np", mode="warm")

    assert (closed.status_code, closed.json()["code"]) == (409, "department_closed")
    assert (unknown.status_code, unknown.json()["code"]) == (404, "department_unknown")
    assert (no_product.status_code, no_product.json()["code"]) == (404, "product_unknown")
    assert badly.status_code == 422
    assert (warm_queue.status_code, warm_queue.json()["code"]) == (422, "warm_transfer_to_queue")
    assert await status_of(http, ann) == "on_call"
    assert labelled(call, "caller") is not None and not labelled(call, "caller").hold  # type: ignore[union-attr]


@pytest.mark.usefixtures("staff")
async def test_transfer_without_a_call_is_409(http: httpx.AsyncClient) -> None:
    ann = await signed_in(http, ANN)
    await available(http, ann)

    refused = await transfer(http, ann, "queue:vog_np")
    complete = await http.post("/api/advisers/me/call/transfer/complete", headers=ann)

    assert (refused.status_code, refused.json()["code"]) == (409, "no_call_in_progress")
    assert (complete.status_code, complete.json()["code"]) == (409, "no_call_in_progress")


# -- warm to a colleague (a consult) --------------------------------------------------------------


async def states_of(app: FastAPI, name: str) -> list[str]:
    await app.state.services.state_log.flush()
    with Session(app.state.services.db_engine) as db:
        changes = db.exec(select(AdviserStateChange).order_by(col(AdviserStateChange.id)))
        return [c.state for c in changes if c.adviser == name]


async def consulting_carol(
    http: httpx.AsyncClient, phone: Callable[..., Phone], twilio_stub: TwilioStub
) -> tuple[ConferenceCall, dict[str, str], dict[str, str]]:
    """Ann talks to a caller and consults Carol, who answers."""
    call, ann = await in_conversation(http, phone, twilio_stub)
    carol = await signed_in(http, CAROL)
    await available(http, carol)
    twilio_stub.script_device("client:carol", "answers")
    consult = await transfer(http, ann, "adviser:carol", mode="warm", note="Bezwaar tegen VOG")
    await call.deliver()
    assert consult.status_code == 200, consult.text
    assert consult.json() == {"to": "adviser:carol", "mode": "warm", "state": "started"}
    return call, ann, carol


@pytest.mark.usefixtures("staff")
async def test_warm_transfer_to_a_colleague_consults_them_then_completes(
    http: httpx.AsyncClient, phone: Callable[..., Phone], twilio_stub: TwilioStub, app: FastAPI
) -> None:
    call, ann, carol = await consulting_carol(http, phone, twilio_stub)

    # The caller hears music while Ann and Carol talk, all in the caller's conference.
    caller, colleague = labelled(call, "caller"), labelled(call, "transfer")
    assert caller is not None and caller.hold and caller.hold_url == TWILIO_HOLD_MUSIC
    assert colleague is not None and colleague.to == "client:carol"
    assert labelled(call, "adviser") is not None
    me = (await http.get("/api/advisers/me", headers=ann)).json()
    assert (me["status"], me["transfer"]) == (
        "on_call",
        {"to": "adviser:carol", "mode": "warm", "state": "answered"},
    )
    # Carol's screen-pop: the caller's context, who transferred it and the note; no controls.
    mine = (await http.get("/api/advisers/me", headers=carol)).json()
    assert (mine["status"], mine["transfer"]) == ("on_call", None)
    assert (mine["call"]["call_sid"], mine["call"]["product"]) == (call.call_sid, "vog_rp")
    assert (mine["call"]["transferred_by"], mine["call"]["transfer_note"]) == (
        "ann",
        "Bezwaar tegen VOG",
    )
    assert (await states_of(app, "carol"))[-3:] == ["offered", "on_call", "consulting"]
    # Supervisors see one conversation, Ann's, while she consults Carol.
    supervisor = await signed_in(http, SANNE)
    listed = (await http.get("/api/calls", headers=supervisor)).json()
    assert [(c["call_sid"], c["adviser"]) for c in listed] == [(call.call_sid, "ann")]
    # Only Ann completes; Carol cannot hold the caller yet: the call is still Ann's.
    refused = await http.post("/api/advisers/me/call/transfer/complete", headers=carol)
    hold = await http.post("/api/advisers/me/call/hold", json={"hold": False}, headers=carol)
    assert (refused.status_code, refused.json()["code"]) == (409, "no_call_in_progress")
    assert (hold.status_code, hold.json()["code"]) == (409, "no_call_in_progress")
    assert caller.hold

    done = await http.post("/api/advisers/me/call/transfer/complete", headers=ann)
    await call.deliver()

    assert done.status_code == 200 and done.json()["state"] == "done"
    assert await status_of(http, ann) == "wrap_up"
    assert await status_of(http, carol) == "on_call"
    assert labelled(call, "adviser") is None and not caller.hold
    assert colleague.call_sid not in call.conference().left
    assert (await states_of(app, "ann"))[-3:] == ["consulting", "on_call", "wrap_up"]
    [record] = await transfers_recorded(app)
    assert (record.target_kind, record.target, record.mode) == ("adviser", "carol", "warm")
    assert (record.answered, record.outcome) == (True, "answered")
    listed = (await http.get("/api/calls", headers=supervisor)).json()
    assert [(c["call_sid"], c["adviser"]) for c in listed] == [(call.call_sid, "carol")]
    # The conversation is Carol's now: she holds the caller, and her hang-up ends it.
    held = await http.post("/api/advisers/me/call/hold", json={"hold": True}, headers=carol)
    assert held.status_code == 200 and caller.hold
    await http.post("/api/advisers/me/call/hold", json={"hold": False}, headers=carol)

    twilio_stub.hang_up_caller(colleague.call_sid)
    await call.deliver()

    # Carol ended the conversation: the caller is asked the survey (tests/test_survey.py).
    assert call.after_conference is not None and not call.after_conference.hung_up
    assert SURVEY_QUESTION in call.after_conference.text
    assert await status_of(http, carol) == "wrap_up"
    assert await status_of(http, ann) == "wrap_up"
    assert await waiting(http) == []


@pytest.mark.usefixtures("staff")
async def test_warm_transfer_to_a_colleague_cancelled_frees_them_and_brings_the_adviser_back(
    http: httpx.AsyncClient, phone: Callable[..., Phone], twilio_stub: TwilioStub, app: FastAPI
) -> None:
    call, ann, carol = await consulting_carol(http, phone, twilio_stub)
    colleague = labelled(call, "transfer")
    assert colleague is not None

    back = await http.post("/api/advisers/me/call/transfer/cancel", headers=ann)
    await call.deliver()

    assert back.status_code == 200 and back.json()["state"] == "cancelled"
    assert colleague.call_sid in call.conference().left
    caller = labelled(call, "caller")
    assert caller is not None and not caller.hold
    me = (await http.get("/api/advisers/me", headers=ann)).json()
    assert (me["status"], me["transfer"]) == ("on_call", None)
    assert await status_of(http, carol) == "available"
    [record] = await transfers_recorded(app)
    assert (record.target, record.answered, record.outcome) == ("carol", True, "cancelled")
    # Ann's conversation goes on as before: she may transfer again, and hang up.
    again = await transfer(http, ann, "adviser:carol")
    assert again.status_code == 200


@pytest.mark.parametrize("carol_does", ["no-answer", "busy", "failed"])
@pytest.mark.usefixtures("staff")
async def test_a_colleague_not_answering_a_consult_is_missed_and_the_adviser_is_back(
    http: httpx.AsyncClient,
    phone: Callable[..., Phone],
    twilio_stub: TwilioStub,
    app: FastAPI,
    carol_does: str,
) -> None:
    call, ann = await in_conversation(http, phone, twilio_stub)
    carol = await signed_in(http, CAROL)
    await available(http, carol)
    twilio_stub.script_device("client:carol", carol_does)  # type: ignore[arg-type]

    await transfer(http, ann, "adviser:carol", mode="warm")
    await call.deliver()

    caller = labelled(call, "caller")
    assert caller is not None and not caller.hold
    assert labelled(call, "adviser") is not None
    me = (await http.get("/api/advisers/me", headers=ann)).json()
    assert (me["status"], me["transfer"]) == ("on_call", None)
    assert await status_of(http, carol) == "missed"
    assert await waiting(http) == []  # the caller stays with Ann, not back in a line
    [record] = await transfers_recorded(app)
    assert (record.answered, record.outcome) == (False, carol_does)


@pytest.mark.usefixtures("staff")
async def test_caller_hanging_up_during_a_consult_with_a_colleague_frees_both_advisers(
    http: httpx.AsyncClient, phone: Callable[..., Phone], twilio_stub: TwilioStub, app: FastAPI
) -> None:
    call, ann, carol = await consulting_carol(http, phone, twilio_stub)
    colleague = labelled(call, "transfer")
    assert colleague is not None

    await call.hang_up()

    assert await status_of(http, ann) == "wrap_up"
    assert await status_of(http, carol) == "available"
    assert call.conference().status == "completed"
    assert twilio_stub.call_status(colleague.call_sid) != "in-progress"
    assert await waiting(http) == []
    [record] = await transfers_recorded(app)
    assert (record.answered, record.outcome) == (True, "caller_hung_up")


@pytest.mark.usefixtures("staff")
async def test_the_adviser_hanging_up_during_a_consult_leaves_the_caller_with_the_colleague(
    http: httpx.AsyncClient, phone: Callable[..., Phone], twilio_stub: TwilioStub, app: FastAPI
) -> None:
    call, ann, carol = await consulting_carol(http, phone, twilio_stub)
    own = labelled(call, "adviser")
    assert own is not None

    twilio_stub.hang_up_caller(own.call_sid)  # Ann puts her phone down: the hand-over
    await call.deliver()

    caller = labelled(call, "caller")
    assert caller is not None and not caller.hold
    assert await status_of(http, ann) == "wrap_up"
    assert await status_of(http, carol) == "on_call"
    [record] = await transfers_recorded(app)
    assert (record.mode, record.answered, record.outcome) == ("warm", True, "answered")


# -- to a department ----------------------------------------------------------------------------


@pytest.mark.usefixtures("staff")
async def test_cold_transfer_to_a_department_whispers_then_puts_the_caller_through(
    http: httpx.AsyncClient, phone: Callable[..., Phone], twilio_stub: TwilioStub, app: FastAPI
) -> None:
    call, ann = await in_conversation(http, phone, twilio_stub)

    moved = await transfer(http, ann, "department:wwm", note="Vraagt naar zijn verlof")
    await call.deliver()

    assert moved.status_code == 200
    assert await status_of(http, ann) == "wrap_up"  # Ann lets go at once
    assert labelled(call, "adviser") is None
    caller, department = labelled(call, "caller"), labelled(call, "transfer")
    assert caller is not None and caller.hold and caller.hold_url == TWILIO_HOLD_MUSIC
    assert department is not None and department.to == WWM_PHONE
    assert department.status == "ringing"

    twilio_stub.answer(department.call_sid)
    await call.deliver()

    # The department hears the whisper as it joins; then the caller is off hold.
    assert department.announced == [whisper_url(PUBLIC_URL, "wwm", call.call_sid)]
    assert not caller.hold
    whisper = await call.phone.client.post(
        department.announced[0].removeprefix(PUBLIC_URL),
        data={"CallSid": department.call_sid},
        headers={
            "X-Twilio-Signature": twilio_stub.sign(
                department.announced[0], {"CallSid": department.call_sid}
            )
        },
    )
    assert "Vraagt naar zijn verlof" in whisper.text
    [record] = await transfers_recorded(app)
    assert (record.target_kind, record.target, record.mode, record.answered) == (
        "department",
        "wwm",
        "cold",
        True,
    )

    twilio_stub.hang_up_caller(department.call_sid)  # the department is done
    await call.deliver()

    assert call.after_conference is not None and call.after_conference.hung_up
    assert GOODBYE in call.after_conference.text


@pytest.mark.usefixtures("staff")
async def test_warm_transfer_to_a_department_consults_then_completes(
    http: httpx.AsyncClient, phone: Callable[..., Phone], twilio_stub: TwilioStub, app: FastAPI
) -> None:
    call, ann = await in_conversation(http, phone, twilio_stub)
    twilio_stub.script_device(WWM_PHONE, "answers")

    consult = await transfer(http, ann, "department:wwm", mode="warm", note="Verlof verlopen")
    await call.deliver()

    assert consult.status_code == 200
    me = (await http.get("/api/advisers/me", headers=ann)).json()
    assert me["status"] == "on_call"
    assert me["transfer"] == {"to": "department:wwm", "mode": "warm", "state": "answered"}
    caller = labelled(call, "caller")
    assert caller is not None and caller.hold  # the caller hears music while Ann consults
    assert labelled(call, "adviser") is not None and labelled(call, "transfer") is not None

    done = await http.post("/api/advisers/me/call/transfer/complete", headers=ann)
    await call.deliver()

    assert done.status_code == 200 and done.json()["state"] == "done"
    assert await status_of(http, ann) == "wrap_up"
    assert labelled(call, "adviser") is None and not caller.hold
    assert labelled(call, "transfer") is not None
    await app.state.services.state_log.flush()
    with Session(app.state.services.db_engine) as db:
        states = [
            c.state
            for c in db.exec(select(AdviserStateChange).order_by(col(AdviserStateChange.id)))
            if c.adviser == "ann"
        ]
    assert states[-3:] == ["consulting", "on_call", "wrap_up"]
    [record] = await transfers_recorded(app)
    assert (record.mode, record.answered, record.outcome) == ("warm", True, "answered")


@pytest.mark.usefixtures("staff")
async def test_warm_transfer_cancelled_brings_the_adviser_back_to_the_caller(
    http: httpx.AsyncClient, phone: Callable[..., Phone], twilio_stub: TwilioStub, app: FastAPI
) -> None:
    call, ann = await in_conversation(http, phone, twilio_stub)
    twilio_stub.script_device(WWM_PHONE, "answers")
    await transfer(http, ann, "department:wwm", mode="warm")
    await call.deliver()
    department = labelled(call, "transfer")
    assert department is not None

    back = await http.post("/api/advisers/me/call/transfer/cancel", headers=ann)
    await call.deliver()

    assert back.status_code == 200 and back.json()["state"] == "cancelled"
    assert department.call_sid in call.conference().left
    caller = labelled(call, "caller")
    assert caller is not None and not caller.hold
    me = (await http.get("/api/advisers/me", headers=ann)).json()
    assert (me["status"], me["transfer"]) == ("on_call", None)
    [record] = await transfers_recorded(app)
    assert (record.answered, record.outcome) == (True, "cancelled")
    again = await http.post("/api/advisers/me/call/transfer/cancel", headers=ann)
    assert (again.status_code, again.json()["code"]) == (409, "no_transfer_in_progress")


@pytest.mark.parametrize("department_does", ["no-answer", "busy", "failed"])
@pytest.mark.usefixtures("staff")
async def test_department_not_answering_a_consult_brings_the_adviser_back_to_the_caller(
    http: httpx.AsyncClient,
    phone: Callable[..., Phone],
    twilio_stub: TwilioStub,
    app: FastAPI,
    department_does: str,
) -> None:
    call, ann = await in_conversation(http, phone, twilio_stub)
    twilio_stub.script_device(WWM_PHONE, department_does)  # type: ignore[arg-type]

    await transfer(http, ann, "department:wwm", mode="warm")
    await call.deliver()

    caller = labelled(call, "caller")
    assert caller is not None and not caller.hold
    me = (await http.get("/api/advisers/me", headers=ann)).json()
    assert (me["status"], me["transfer"]) == ("on_call", None)
    [record] = await transfers_recorded(app)
    assert (record.answered, record.outcome) == (False, department_does)


@pytest.mark.parametrize("department_does", ["no-answer", "busy", "failed"])
@pytest.mark.usefixtures("staff")
async def test_department_not_answering_a_cold_transfer_puts_the_caller_back_at_the_head(
    http: httpx.AsyncClient,
    phone: Callable[..., Phone],
    twilio_stub: TwilioStub,
    app: FastAPI,
    department_does: str,
) -> None:
    call, ann = await in_conversation(http, phone, twilio_stub)
    later = await queued(phone, twilio_stub)  # a vog_rp caller who came after
    twilio_stub.script_device(WWM_PHONE, department_does)  # type: ignore[arg-type]

    await transfer(http, ann, "department:wwm")
    await call.deliver()

    assert call.after_conference is not None and call.after_conference.queue == "kcc-vog_rp"
    assert STAY_AT_THE_HEAD in call.after_conference.text
    assert await status_of(http, ann) == "wrap_up"
    assert await waiting(http) == [(call.call_sid, "vog_rp"), (later.call_sid, "vog_rp")]
    [record] = await transfers_recorded(app)
    assert (record.answered, record.outcome) == (False, department_does)


@pytest.mark.usefixtures("staff")
async def test_caller_hanging_up_during_a_consult_ends_it_and_the_adviser_wraps_up(
    http: httpx.AsyncClient, phone: Callable[..., Phone], twilio_stub: TwilioStub, app: FastAPI
) -> None:
    call, ann = await in_conversation(http, phone, twilio_stub)
    twilio_stub.script_device(WWM_PHONE, "answers")
    await transfer(http, ann, "department:wwm", mode="warm")
    await call.deliver()
    department = labelled(call, "transfer")
    assert department is not None

    await call.hang_up()

    assert await status_of(http, ann) == "wrap_up"
    assert call.conference().status == "completed"
    assert twilio_stub.call_status(department.call_sid) != "in-progress"
    assert department.call_sid in call.conference().left
    [record] = await transfers_recorded(app)
    assert (record.answered, record.outcome) == (True, "caller_hung_up")


@pytest.mark.usefixtures("staff")
async def test_caller_hanging_up_on_hold_while_the_department_rings_ends_the_transfer(
    http: httpx.AsyncClient, phone: Callable[..., Phone], twilio_stub: TwilioStub, app: FastAPI
) -> None:
    call, ann = await in_conversation(http, phone, twilio_stub)
    await transfer(http, ann, "department:wwm")  # cold: the department's phone keeps ringing
    await call.deliver()
    ringing = labelled(call, "transfer")
    assert ringing is not None

    await call.hang_up()

    assert call.conference().status == "completed"
    assert await status_of(http, ann) == "wrap_up"
    assert await waiting(http) == []
    [record] = await transfers_recorded(app)
    assert (record.answered, record.outcome) == (False, "caller_hung_up")


@pytest.mark.usefixtures("staff")
async def test_an_adviser_whose_desk_closes_mid_consult_still_hands_the_caller_over(
    http: httpx.AsyncClient,
    phone: Callable[..., Phone],
    twilio_stub: TwilioStub,
    app: FastAPI,
    clock: FixedClock,
) -> None:
    """The desk's tab closes during a consult (the adviser's phone still works): the
    conversation is left alone, the transfer completes, and the adviser is away after it."""
    router = app.state.services.router
    call, ann = await in_conversation(http, phone, twilio_stub)
    await router.desk_beat("ann", "tab1")
    twilio_stub.script_device(WWM_PHONE, "answers")
    await transfer(http, ann, "department:wwm", mode="warm")
    await call.deliver()

    await router.desk_gone("ann", "tab1")  # the browser closes mid-call
    clock.set(clock.now() + timedelta(minutes=1))
    await router.tick()

    assert await status_of(http, ann) == "on_call"
    done = await http.post("/api/advisers/me/call/transfer/complete", headers=ann)
    assert done.status_code == 200
    await call.deliver()
    caller = labelled(call, "caller")
    assert caller is not None and not caller.hold and labelled(call, "adviser") is None
    await router.tick()
    assert await status_of(http, ann) == "away"
    [record] = await transfers_recorded(app)
    assert (record.mode, record.answered) == ("warm", True)


@pytest.mark.usefixtures("staff")
async def test_colleagues_available_now_are_listed_without_anything_of_their_calls(
    http: httpx.AsyncClient, phone: Callable[..., Phone], twilio_stub: TwilioStub
) -> None:
    _, ann = await in_conversation(http, phone, twilio_stub)
    carol = await signed_in(http, CAROL)
    await available(http, carol)
    await signed_in(http, DAN)  # signed in, never available

    listed = (await http.get("/api/advisers/available", headers=ann)).json()

    assert listed == [{"name": "carol", "skills": ["vog_rp", "vog_np"]}]
    supervisor = await signed_in(http, SANNE)
    assert (await http.get("/api/advisers/available", headers=supervisor)).status_code == 403


@pytest.mark.usefixtures("staff")
async def test_the_time_held_while_the_department_rings_is_the_calls_hold_time(
    http: httpx.AsyncClient,
    phone: Callable[..., Phone],
    twilio_stub: TwilioStub,
    app: FastAPI,
    clock: FixedClock,
) -> None:
    call, ann = await in_conversation(http, phone, twilio_stub)
    await transfer(http, ann, "department:wwm")
    await call.deliver()
    department = labelled(call, "transfer")
    assert department is not None
    clock.set(clock.now() + timedelta(seconds=30))  # the department takes its time

    twilio_stub.answer(department.call_sid)
    await call.deliver()
    await call.hang_up()

    await app.state.services.records.flush()
    with Session(app.state.services.db_engine) as db:
        [record] = db.exec(select(CallRecord)).all()
    assert (record.outcome, record.hold_seconds) == ("answered", 30)
