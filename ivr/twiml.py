"""Write the engine's decisions as TwiML, with absolute URLs under the public base URL."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlencode

from twilio.twiml.voice_response import Gather, VoiceResponse

from ivr.turn import AskKeys, HangUp, JoinQueue, Say, Turn


@dataclass(frozen=True)
class CallUrls:
    """The URLs Twilio is sent to next. `seq` lets a retried webhook be recognised."""

    base: str  # KCC_PUBLIC_URL without a trailing slash
    language: str
    seq: int = 0

    def _url(self, path: str, **query: str | int) -> str:
        return f"{self.base}{path}?{urlencode(query)}"

    def step(self) -> str:
        return self._url("/twilio/step", seq=self.seq, lang=self.language)

    def no_input(self) -> str:
        return self._url("/twilio/step", seq=self.seq, lang=self.language, event="timeout")

    def wait(self) -> str:
        return self._url("/twilio/wait", lang=self.language)

    def queue_result(self) -> str:
        return self._url("/twilio/queue-result", lang=self.language)

    def callback_choice(self) -> str:
        return self._url("/twilio/callback-choice", lang=self.language)

    def dial_result(self, offer_id: str) -> str:
        return self._url("/twilio/dial-result", offer=offer_id, lang=self.language)

    def offer_answered(self, offer_id: str) -> str:
        return self._url("/twilio/offer-answered", offer=offer_id)


@dataclass(frozen=True)
class RoutingUrls:
    """Where routing moves a call (REST redirect) once an adviser is chosen."""

    base: str

    def connect(self, offer_id: str) -> str:
        return f"{self.base}/twilio/connect?{urlencode({'offer': offer_id})}"


def queue_name(product: str) -> str:
    return f"kcc-{product}"


def _say(parent: VoiceResponse | Gather, say: Say) -> None:
    parent.say(say.text, language=say.language, voice=say.voice)


def render(turn: Turn, urls: CallUrls) -> str:
    response = VoiceResponse()
    for say in turn.says:
        _say(response, say)
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
                _say(gather, say)
            # Twilio runs the next verb when nothing was pressed: that is the no-input branch.
            response.redirect(urls.no_input(), method="POST")
        case JoinQueue():
            response.enqueue(
                queue_name(ending.product),
                wait_url=urls.wait(),
                wait_url_method="POST",
                action=urls.queue_result(),
                method="POST",
            )
        case HangUp():
            response.hangup()
    return str(response)


def hold(
    says: list[Say],
    *,
    music_url: str | None,
    seconds: int,
    offer: Say | None = None,
    offer_url: str | None = None,
) -> str:
    """A waitUrl document: announcements, then music or silence; Twilio fetches it again after.

    `offer` (with `offer_url`) asks for one key, e.g. 1 for a callback; Gather is allowed there.
    """
    response = VoiceResponse()
    for say in says:
        _say(response, say)
    if offer is not None and offer_url is not None:
        gather = response.gather(
            input="dtmf", num_digits=1, timeout=5, action=offer_url, method="POST"
        )
        _say(gather, offer)
    if music_url:
        response.play(music_url)
    else:
        response.pause(length=seconds)
    return str(response)


def speak_and_hang_up(says: list[Say]) -> str:
    response = VoiceResponse()
    for say in says:
        _say(response, say)
    response.hangup()
    return str(response)


def speak_and_enqueue(says: list[Say], product: str, urls: CallUrls) -> str:
    return render(Turn(says=says, ending=JoinQueue(product=product, theme="", priority=0)), urls)


def dial_adviser(
    device: str,
    offer_id: str,
    urls: CallUrls,
    *,
    timeout: int,
    caller_id: str | None = None,
    says: list[Say] | None = None,
) -> str:
    """Ring the adviser: a browser softphone (client:NAME) or a phone number."""
    response = VoiceResponse()
    for say in says or []:
        _say(response, say)
    dial = response.dial(
        timeout=timeout,
        action=urls.dial_result(offer_id),
        method="POST",
        caller_id=caller_id,
    )
    events = {
        "status_callback_event": "answered",
        "status_callback": urls.offer_answered(offer_id),
        "status_callback_method": "POST",
    }
    if device.startswith("client:"):
        dial.client(device.removeprefix("client:"), **events)
    else:
        dial.number(device, **events)
    return str(response)


def leave_queue(says: list[Say]) -> str:
    """Confirm, then take the caller out of Twilio's queue (the Enqueue action follows)."""
    response = VoiceResponse()
    for say in says:
        _say(response, say)
    response.leave()
    return str(response)


def back_to_hold(urls: CallUrls) -> str:
    response = VoiceResponse()
    response.redirect(urls.wait(), method="POST")
    return str(response)


_EMPTY = str(VoiceResponse())


def empty() -> str:
    return _EMPTY
