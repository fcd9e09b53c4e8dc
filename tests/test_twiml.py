"""ivr/twiml.py writes TwiML as strings; twilio's VoiceResponse (which it used before) is the
reference here: the same document, byte for byte, for every kind of answer and awkward text."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
from twilio.twiml.voice_response import Gather, VoiceResponse

from ivr import fallback
from ivr.turn import AskKeys, HangUp, JoinQueue, Say, Turn
from ivr.twiml import (
    CallUrls,
    back_to_hold,
    empty,
    hold,
    join_conference,
    leave_queue,
    render,
    speak_and_hang_up,
)

AWKWARD = [
    "Welkom bij Justis.",
    "Druk 1 voor de VOG & 2 voor <iets> anders, \"quotes\" en 'apostrofs'.",
    "Ünïcödé — € 5,- ça va? 日本語",
    "regel\neen\ttab\r\nen terug",
    "&amp; is al ge-escaped; ]]> en <![CDATA[x]]>",
    "",
]
URLS = CallUrls("https://ivr.example.nl", "nl", 3)
ODD_URLS = CallUrls('https://ivr.example.nl/a&b"c', "n<l>&", 7)


def says(texts: list[str]) -> list[Say]:
    return [Say(text, "nl-NL", "Polly.Ruben-Neural") for text in texts]


# -- the reference: the former implementation on twilio's VoiceResponse -----------------------


def _ref_say(parent: VoiceResponse | Gather, say: Say) -> None:
    parent.say(say.text, language=say.language, voice=say.voice)


def ref_render(turn: Turn, urls: CallUrls) -> str:
    response = VoiceResponse()
    for say in turn.says:
        _ref_say(response, say)
    ending = turn.ending
    match ending:
        case AskKeys():
            options: dict[str, object] = {
                "input": "dtmf",
                "action": urls.step(),
                "method": "POST",
                "timeout": ending.timeout,
                "finish_on_key": ending.finish_on_key,
            }
            if ending.num_digits is not None:
                options["num_digits"] = ending.num_digits
            if ending.action_on_empty:
                options["action_on_empty_result"] = True
            gather = response.gather(**options)
            for say in ending.prompt:
                _ref_say(gather, say)
            response.redirect(urls.no_input(), method="POST")
        case JoinQueue():
            response.enqueue(
                f"kcc-{ending.product}",
                wait_url=urls.wait(),
                wait_url_method="POST",
                action=urls.queue_result(),
                method="POST",
            )
        case HangUp():
            response.hangup()
    return str(response)


def ref_hold(
    says: list[Say], music_url: str | None, seconds: int, offer: Say | None, offer_url: str | None
) -> str:
    response = VoiceResponse()
    for say in says:
        _ref_say(response, say)
    if offer is not None and offer_url is not None:
        gather = response.gather(
            input="dtmf", num_digits=1, timeout=5, action=offer_url, method="POST"
        )
        _ref_say(gather, offer)
    if music_url:
        response.play(music_url)
    else:
        response.pause(length=seconds)
    return str(response)


def ref_conference(name: str, offer_id: str, urls: CallUrls, music: str, says: list[Say]) -> str:
    response = VoiceResponse()
    for say in says:
        _ref_say(response, say)
    dial = response.dial(action=urls.dial_result(offer_id), method="POST")
    dial.conference(
        name,
        participant_label="caller",
        beep=False,
        start_conference_on_enter=True,
        end_conference_on_exit=True,
        wait_url=music,
        wait_method="GET",
        status_callback=urls.conference_events(offer_id),
        status_callback_event="join",
        status_callback_method="POST",
    )
    return str(response)


# -- the comparisons ------------------------------------------------------------------------


ENDINGS = [
    AskKeys(prompt=says(["Kies 1 of 2."]), timeout=5, num_digits=1, finish_on_key="#"),
    AskKeys(prompt=says(AWKWARD), timeout=8, num_digits=None, finish_on_key="#"),
    AskKeys(prompt=[], timeout=3, num_digits=8, finish_on_key="", action_on_empty=True),
    JoinQueue(product="vog_np", theme="vog", priority=0),
    JoinQueue(product="a&b<c>", theme="", priority=2),
    HangUp(),
]


@pytest.mark.parametrize("urls", [URLS, ODD_URLS])
@pytest.mark.parametrize("ending", ENDINGS)
@pytest.mark.parametrize("spoken", [[], ["Hallo."], AWKWARD])
def test_render_is_what_voice_response_wrote(
    ending: AskKeys | JoinQueue | HangUp, spoken: list[str], urls: CallUrls
) -> None:
    turn = Turn(says=says(spoken), ending=ending)
    written = render(turn, urls)
    assert written == ref_render(turn, urls)
    assert ET.fromstring(written).tag == "Response"


@pytest.mark.parametrize("music", [None, "https://cdn.example.nl/hold.mp3?a=1&b=2"])
@pytest.mark.parametrize("offer", [None, Say("Druk 1 & wij bellen <u> terug", "nl-NL", "v")])
@pytest.mark.parametrize("spoken", [[], AWKWARD])
def test_hold_is_what_voice_response_wrote(
    music: str | None, offer: Say | None, spoken: list[str]
) -> None:
    offer_url = URLS.callback_choice()
    written = hold(says(spoken), music_url=music, seconds=30, offer=offer, offer_url=offer_url)
    assert written == ref_hold(says(spoken), music, 30, offer, offer_url)
    ET.fromstring(written)


@pytest.mark.parametrize("name", ["kcc-CA123", 'kcc-a&<b>"c'])
@pytest.mark.parametrize("spoken", [[], ["U wordt teruggebeld & doorverbonden"]])
def test_joining_the_conference_is_what_voice_response_wrote(name: str, spoken: list[str]) -> None:
    music = "https://music.example/a&b.mp3"
    written = join_conference(name, "42", ODD_URLS, hold_music=music, says=says(spoken))
    assert written == ref_conference(name, "42", ODD_URLS, music, says(spoken))
    ET.fromstring(written)


def test_the_small_documents_are_what_voice_response_wrote() -> None:
    assert empty() == str(VoiceResponse())
    response = VoiceResponse()
    response.redirect(ODD_URLS.wait(), method="POST")
    assert back_to_hold(ODD_URLS) == str(response)
    for spoken in ([], AWKWARD):
        response = VoiceResponse()
        for say in says(spoken):
            _ref_say(response, say)
        response.hangup()
        assert speak_and_hang_up(says(spoken)) == str(response)
        response = VoiceResponse()
        for say in says(spoken):
            _ref_say(response, say)
        response.leave()
        assert leave_queue(says(spoken)) == str(response)
    response = VoiceResponse()
    response.say(fallback.LAST_RESORT, language="nl-NL")
    response.hangup()
    assert fallback.last_resort() == str(response)


def test_prompt_text_is_escaped_not_interpreted() -> None:
    """Text can never add or close elements: what is said is exactly the prompt's text."""
    text = '</Say><Hangup/><Say>& "so" <b>'
    root = ET.fromstring(speak_and_hang_up(says([text])))
    assert [child.tag for child in root] == ["Say", "Hangup"]
    assert root[0].text == text
