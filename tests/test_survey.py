"""The satisfaction survey after a conversation (issue 13): through the webhooks, with the Twilio
stub playing the conference through the real twilio SDK. The adviser ends the conversation, the
caller is still on the line and hears the question; the mark lands on the call record, whether
the status callback comes after the mark or before it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from sqlmodel import Session, select

from api.cli.phone import Phone, PhoneTurn
from flows.loader import check_flow_text
from ivr.records import CallRecord
from tests.conftest import AUTH_TOKEN, PUBLIC_URL
from tests.support.conference_calls import ANN, ConferenceCall, available, status_of
from tests.support.flow_drafts import TEXT, edit, line_of
from tests.support.staff import SANNE, add_staff, signed_in
from tests.support.twilio_stub import TwilioStub

QUESTION_NL = "Hoe tevreden bent u over dit gesprek?"
QUESTION_EN = "How satisfied are you with this conversation?"
THANKS_NL = "Dank u wel voor uw beoordeling."
GOODBYE_NL = "Bedankt voor het bellen met Justis. Tot ziens."
CALL_END_NL = "Bedankt voor uw telefoontje. Tot ziens."  # the goodbye without a survey
RETRY_NL = "Wij hebben geen cijfer van 1 tot en met 10 ontvangen."


@pytest.fixture
def staff(app: FastAPI) -> None:
    add_staff(app.state.services.db_engine, SANNE, ANN)


async def talking(
    http: httpx.AsyncClient, phone: Callable[..., Phone], stub: TwilioStub, *keys: str
) -> ConferenceCall:
    """Ann is available, a caller presses `keys` to the VOG RP line and Ann answers."""
    headers = await signed_in(http, ANN)
    await available(http, headers)
    stub.script_device("client:ann", "answers")
    caller = phone()
    await caller.dial()
    turn: PhoneTurn | None = None
    for key in keys or ("2", "#"):
        turn = await caller.press(key)
    assert turn is not None and turn.queue == "kcc-vog_rp"
    call = ConferenceCall(caller, stub)
    await call.connect()
    assert await status_of(http, headers) == "on_call"
    return call


async def adviser_ends(call: ConferenceCall) -> PhoneTurn:
    """Ann puts her phone down: what the caller hears next (the Dial action's answer)."""
    [leg] = [p.call_sid for p in call.conference().participants.values() if p.label == "adviser"]
    call.stub.hang_up_caller(leg)
    await call.deliver()
    assert call.after_conference is not None
    call.phone.last = call.after_conference  # the caller's phone runs what Twilio runs
    return call.after_conference


async def record_of(app: FastAPI, call_sid: str) -> CallRecord:
    await app.state.services.records.flush()
    with Session(app.state.services.db_engine) as db:
        [record] = db.exec(select(CallRecord).where(CallRecord.call_sid == call_sid)).all()
    return record


@pytest.mark.usefixtures("staff")
async def test_after_the_adviser_hangs_up_the_caller_gives_a_mark_that_lands_on_the_record(
    app: FastAPI, http: httpx.AsyncClient, phone: Callable[..., Phone], twilio_stub: TwilioStub
) -> None:
    call = await talking(http, phone, twilio_stub)

    question = await adviser_ends(call)

    assert question.text.startswith(QUESTION_NL) and not question.hung_up
    assert question.heard[0].language == "nl-NL"
    assert 'finishOnKey="#"' in question.twiml and 'numDigits="2"' in question.twiml
    assert call.conference().status == "completed"
    assert await status_of(http, await signed_in(http, ANN)) == "wrap_up"

    thanks = await call.phone.press("8#")
    await call.phone.hang_up()  # Twilio's status callback after the <Hangup>

    assert thanks.hung_up and thanks.text.startswith(THANKS_NL)
    record = await record_of(app, call.call_sid)
    assert (record.outcome, record.survey_score) == ("answered", 8)


@pytest.mark.usefixtures("staff")
async def test_an_english_caller_hears_the_question_in_english_and_10_needs_no_hash(
    app: FastAPI, http: httpx.AsyncClient, phone: Callable[..., Phone], twilio_stub: TwilioStub
) -> None:
    call = await talking(http, phone, twilio_stub, "9", "2", "#")

    question = await adviser_ends(call)
    thanks = await call.phone.press("10")  # two keys end the input at once
    await call.phone.hang_up()

    assert question.text.startswith(QUESTION_EN) and question.heard[0].language == "en-GB"
    assert thanks.hung_up and thanks.text.startswith("Thank you for your rating.")
    assert (await record_of(app, call.call_sid)).survey_score == 10


@pytest.mark.usefixtures("staff")
async def test_0_then_11_is_asked_twice_then_goodbye_without_a_mark(
    app: FastAPI, http: httpx.AsyncClient, phone: Callable[..., Phone], twilio_stub: TwilioStub
) -> None:
    call = await talking(http, phone, twilio_stub)
    await adviser_ends(call)

    again = await call.phone.press("0#")
    goodbye = await call.phone.press("11")
    await call.phone.hang_up()

    assert again.text.startswith(RETRY_NL) and QUESTION_NL in again.text and not again.hung_up
    assert goodbye.hung_up and goodbye.text == GOODBYE_NL
    assert (await record_of(app, call.call_sid)).survey_score is None


@pytest.mark.usefixtures("staff")
async def test_silence_twice_ends_the_call_without_a_mark(
    app: FastAPI, http: httpx.AsyncClient, phone: Callable[..., Phone], twilio_stub: TwilioStub
) -> None:
    call = await talking(http, phone, twilio_stub)
    await adviser_ends(call)

    again = await call.phone.stay_silent()
    goodbye = await call.phone.stay_silent()
    await call.phone.hang_up()

    assert again.text.startswith(RETRY_NL)
    assert goodbye.hung_up and goodbye.text == GOODBYE_NL
    assert (await record_of(app, call.call_sid)).survey_score is None


@pytest.mark.usefixtures("staff")
async def test_a_caller_who_hangs_up_during_the_question_is_recorded_without_a_mark(
    app: FastAPI, http: httpx.AsyncClient, phone: Callable[..., Phone], twilio_stub: TwilioStub
) -> None:
    call = await talking(http, phone, twilio_stub)
    await adviser_ends(call)

    response = await call.phone.hang_up()

    assert response.status_code == 200
    record = await record_of(app, call.call_sid)
    assert (record.outcome, record.survey_score) == ("answered", None)


@pytest.mark.usefixtures("staff")
async def test_a_mark_that_arrives_after_the_status_callback_updates_the_record_once(
    app: FastAPI, http: httpx.AsyncClient, phone: Callable[..., Phone], twilio_stub: TwilioStub
) -> None:
    call = await talking(http, phone, twilio_stub)
    await adviser_ends(call)
    gather = call.phone.last
    await call.phone.hang_up()  # the record is written without a mark ...
    assert (await record_of(app, call.call_sid)).survey_score is None

    call.phone.last = gather
    thanks = await call.phone.press("7#")  # ... then the Gather's action arrives
    call.phone.last = gather
    await call.phone.press("7#")  # and Twilio retries it

    assert thanks.hung_up and thanks.text.startswith(THANKS_NL)
    assert (await record_of(app, call.call_sid)).survey_score == 7


@pytest.mark.usefixtures("staff")
async def test_a_caller_who_hangs_up_first_hears_no_survey(
    app: FastAPI, http: httpx.AsyncClient, phone: Callable[..., Phone], twilio_stub: TwilioStub
) -> None:
    call = await talking(http, phone, twilio_stub)

    await call.hang_up()

    answers = [d.response.text for d in call.delivered]
    assert not [text for text in answers if "/twilio/survey" in text]
    assert await status_of(http, await signed_in(http, ANN)) == "wrap_up"
    record = await record_of(app, call.call_sid)
    assert (record.outcome, record.survey_score) == ("answered", None)


async def test_a_survey_url_for_a_call_that_was_never_asked_just_ends_the_call(
    phone: Callable[..., Phone],
) -> None:
    caller = phone()
    await caller.dial()

    response = await caller.post(f"{PUBLIC_URL}/twilio/survey?lang=nl&try=1", {"Digits": "8"})

    assert response.status_code == 200
    assert "<Hangup />" in response.text and "<Say" not in response.text


# -- the survey turned off ---------------------------------------------------------------------


@pytest.fixture
async def survey_off(
    make_app: Callable[..., FastAPI], tmp_path: Path
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    flow = tmp_path / "survey-off.yaml"
    flow.write_text(edit(TEXT, "  enabled: true\n", "  enabled: false\n"), encoding="utf-8")
    app = make_app(flow=flow)
    add_staff(app.state.services.db_engine, SANNE, ANN)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=PUBLIC_URL) as client:
        yield app, client


async def test_with_the_survey_off_the_caller_hears_goodbye_as_before(
    survey_off: tuple[FastAPI, httpx.AsyncClient], twilio_stub: TwilioStub
) -> None:
    app, http = survey_off

    def phone() -> Phone:
        return Phone(http, public_url=PUBLIC_URL, auth_token=AUTH_TOKEN)

    call = await talking(http, phone, twilio_stub)

    after = await adviser_ends(call)
    await call.phone.hang_up()

    assert after.hung_up and after.text == CALL_END_NL and "survey" not in after.twiml
    assert (await record_of(app, call.call_sid)).survey_score is None


# -- the checker ---------------------------------------------------------------------------------

BLOCK = "survey:"


@pytest.mark.parametrize(
    ("old", "new", "code", "fragment"),
    [
        # a text missing in a language of the flow
        (
            '    en: "Thank you for your rating. Goodbye."\n',
            "",
            "translation_missing",
            "  thanks:",
        ),
        # a text in a language the flow does not speak
        (
            '    en: "We did not receive a mark from 1 to 10."\n',
            '    en: "We did not receive a mark from 1 to 10."\n    de: "Keine Note."\n',
            "language_not_listed",
            '    de: "Keine Note."',
        ),
        # a text left out altogether
        (
            '  no_mark:\n    nl: "Bedankt voor het bellen met Justis. Tot ziens."\n'
            '    en: "Thank you for calling Justis. Goodbye."\n',
            "",
            "missing_key",
            "survey:",
        ),
        # on/off is yes or no
        ("  enabled: true\n", "  enabled: maybe\n", "wrong_type", "  enabled: maybe"),
        # a key the block does not have
        ("  enabled: true\n", "  enabled: true\n  scale: 5\n", "unknown_key", "  scale: 5"),
    ],
)
def test_each_survey_problem_is_reported_with_its_code_on_its_line(
    old: str, new: str, code: str, fragment: str
) -> None:
    text = edit(TEXT, old, new)
    _, problems = check_flow_text(text, "kcc.yaml")
    found = [(p.line, p.code) for p in problems]
    assert found == [(line_of(text, fragment, after=BLOCK), code)], [str(p) for p in problems]
    assert str(problems[0]).startswith(f"kcc.yaml:{found[0][0]}: survey")
