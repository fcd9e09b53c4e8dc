"""Write the engine's decisions as TwiML, with absolute URLs under the public base URL.

The documents are written as strings: twilio's VoiceResponse builds an ElementTree for every
answer, which cost more than the rest of the rendering on the caller's clock. The output is the
same, byte for byte (tests/test_twiml.py compares it with VoiceResponse): the XML declaration,
attributes sorted by name, `<Verb />` for an empty element, and text and attribute values
escaped as ElementTree escapes them.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote_plus, urlencode

from ivr.turn import AskKeys, HangUp, JoinQueue, Say, Turn

_DECLARATION = '<?xml version="1.0" encoding="UTF-8"?>'
Attributes = dict[str, str | int | bool | None]


def escape_text(text: str) -> str:
    """Character data: &, < and > (what ElementTree escapes in text)."""
    if "&" in text:
        text = text.replace("&", "&amp;")
    if "<" in text:
        text = text.replace("<", "&lt;")
    if ">" in text:
        text = text.replace(">", "&gt;")
    return text


def escape_attribute(value: str) -> str:
    """An attribute value in double quotes: also the quote and the line breaks and tabs."""
    value = escape_text(value)
    if '"' in value:
        value = value.replace('"', "&quot;")
    if "\r" in value:
        value = value.replace("\r", "&#13;")
    if "\n" in value:
        value = value.replace("\n", "&#10;")
    if "\t" in value:
        value = value.replace("\t", "&#09;")
    return value


def _attributes(attributes: Attributes) -> str:
    """` name="value"` for each attribute that is not None, sorted by name as twilio does."""
    parts = []
    for name in sorted(attributes):
        value = attributes[name]
        if value is None:
            continue
        text = ("true" if value else "false") if isinstance(value, bool) else str(value)
        parts.append(f' {name}="{escape_attribute(text)}"')
    return "".join(parts)


def element(name: str, attributes: Attributes | None = None, content: str = "") -> str:
    """One element; `content` is escaped text or the elements inside, already written."""
    attrs = _attributes(attributes) if attributes else ""
    return f"<{name}{attrs}>{content}</{name}>" if content else f"<{name}{attrs} />"


def document(verbs: list[str]) -> str:
    return f"{_DECLARATION}{element('Response', None, ''.join(verbs))}"


@dataclass(frozen=True)
class CallUrls:
    """The URLs Twilio is sent to next. `seq` lets a retried webhook be recognised."""

    base: str  # KCC_PUBLIC_URL without a trailing slash
    language: str
    seq: int = 0
    # The waiting call's queue entry, sealed (routing/queue.py): the waitUrl carries it, so a
    # call Redis lost comes back with its context. Only we can open it; the signature covers it.
    context: str = ""

    def _url(self, path: str, **query: str | int) -> str:
        return f"{self.base}{path}?{_query_string(query)}"

    def step(self) -> str:
        return self._url("/twilio/step", seq=self.seq, lang=self.language)

    def no_input(self) -> str:
        return self._url("/twilio/step", seq=self.seq, lang=self.language, event="timeout")

    def wait(self) -> str:
        if self.context:
            return self._url("/twilio/wait", lang=self.language, ctx=self.context)
        return self._url("/twilio/wait", lang=self.language)

    def queue_result(self) -> str:
        return self._url("/twilio/queue-result", lang=self.language)

    def callback_choice(self) -> str:
        if self.context:  # back to the waitUrl from there, with the context
            return self._url("/twilio/callback-choice", lang=self.language, ctx=self.context)
        return self._url("/twilio/callback-choice", lang=self.language)

    def dial_result(self, offer_id: str) -> str:
        return self._url("/twilio/dial-result", offer=offer_id, lang=self.language)

    def conference_events(self, offer_id: str) -> str:
        return self._url("/twilio/conference-events", offer=offer_id)


def _query_string(query: dict[str, str | int]) -> str:
    """As urlencode(query), without its per-value quoting where a value needs none (digits, a
    language code, an offer id): every answer carries a few of these."""
    parts = []
    for name, value in query.items():
        text = str(value)
        if not (text.isascii() and text.isalnum()):
            text = quote_plus(text)
        parts.append(f"{name}={text}")
    return "&".join(parts)


@dataclass(frozen=True)
class RoutingUrls:
    """Where routing moves a call (REST redirect) once an adviser is chosen."""

    base: str

    def connect(self, offer_id: str) -> str:
        return f"{self.base}/twilio/connect?{urlencode({'offer': offer_id})}"

    def adviser_status(self, offer_id: str) -> str:
        return f"{self.base}/twilio/adviser-status?{urlencode({'offer': offer_id})}"

    def monitor_status(self, call_sid: str, supervisor: str, session_id: str) -> str:
        query = urlencode({"call": call_sid, "supervisor": supervisor, "session": session_id})
        return f"{self.base}/twilio/monitor-status?{query}"

    def transfer_status(self, call_sid: str) -> str:
        return f"{self.base}/twilio/transfer-status?{urlencode({'call': call_sid})}"


def queue_name(product: str) -> str:
    return f"kcc-{product}"


def say(text: str, *, language: str | None = None, voice: str | None = None) -> str:
    return element("Say", {"language": language, "voice": voice}, escape_text(text))


def _says(says: list[Say]) -> list[str]:
    return [say(s.text, language=s.language, voice=s.voice) for s in says]


def _redirect(url: str) -> str:
    return element("Redirect", {"method": "POST"}, escape_text(url))


_HANGUP = element("Hangup")


def render(turn: Turn, urls: CallUrls) -> str:
    verbs = _says(turn.says)
    ending = turn.ending
    match ending:
        case AskKeys():
            options: Attributes = {
                "input": "dtmf",
                "action": urls.step(),
                "method": "POST",
                "timeout": ending.timeout,
                "finishOnKey": ending.finish_on_key,
                "numDigits": ending.num_digits,
            }
            if ending.action_on_empty:
                options["actionOnEmptyResult"] = True
            verbs.append(element("Gather", options, "".join(_says(ending.prompt))))
            # Twilio runs the next verb when nothing was pressed: that is the no-input branch.
            verbs.append(_redirect(urls.no_input()))
        case JoinQueue():
            attributes: Attributes = {
                "waitUrl": urls.wait(),
                "waitUrlMethod": "POST",
                "action": urls.queue_result(),
                "method": "POST",
            }
            verbs.append(element("Enqueue", attributes, escape_text(queue_name(ending.product))))
        case HangUp():
            verbs.append(_HANGUP)
    return document(verbs)


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
    verbs = _says(says)
    if offer is not None and offer_url is not None:
        options: Attributes = {
            "input": "dtmf",
            "numDigits": 1,
            "timeout": 5,
            "action": offer_url,
            "method": "POST",
        }
        verbs.append(element("Gather", options, "".join(_says([offer]))))
    if music_url:
        verbs.append(element("Play", None, escape_text(music_url)))
    else:
        verbs.append(element("Pause", {"length": seconds}))
    return document(verbs)


def speak_and_hang_up(says: list[Say]) -> str:
    return document([*_says(says), _HANGUP])


def speak_and_enqueue(says: list[Say], product: str, urls: CallUrls) -> str:
    return render(Turn(says=says, ending=JoinQueue(product=product, theme="", priority=0)), urls)


# Only the joins are acted on (the caller's join calls the adviser in); start, end, leave, hold
# and mute cost a signed webhook each and told nothing the Dial action, the participant status
# callbacks and our own hold/mute requests do not.
CONFERENCE_EVENTS = "join"


def join_conference(
    name: str,
    offer_id: str,
    urls: CallUrls,
    *,
    hold_music: str,
    says: list[Say] | None = None,
) -> str:
    """The caller joins the conversation's conference and hears `hold_music` until the adviser
    is there; leaving it ends the conference and runs the Dial action (dial-result)."""
    options: Attributes = {
        "participantLabel": "caller",
        "beep": False,
        "startConferenceOnEnter": True,
        "endConferenceOnExit": True,
        "waitUrl": hold_music,
        "waitMethod": "GET",  # a music file: GET lets Twilio cache it
        "statusCallback": urls.conference_events(offer_id),
        "statusCallbackEvent": CONFERENCE_EVENTS,
        "statusCallbackMethod": "POST",
    }
    conference = element("Conference", options, escape_text(name))
    dial: Attributes = {"action": urls.dial_result(offer_id), "method": "POST"}
    return document([*_says(says or []), element("Dial", dial, conference)])


def leave_queue(says: list[Say]) -> str:
    """Confirm, then take the caller out of Twilio's queue (the Enqueue action follows)."""
    return document([*_says(says), element("Leave")])


def back_to_hold(urls: CallUrls) -> str:
    return document([_redirect(urls.wait())])


_EMPTY = document([])


def empty() -> str:
    return _EMPTY
