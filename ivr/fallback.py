"""What a caller hears when something failed: never Twilio's "application error".

Needs no Redis and no database: only the flow and the calendar, which are in memory.
"""

from __future__ import annotations

from datetime import datetime

from ivr.engine import Engine
from ivr.twiml import (
    CallUrls,
    document,
    element,
    empty,
    hold,
    say,
    speak_and_enqueue,
    speak_and_hang_up,
)

# Said if even the flow's own apology cannot be rendered.
LAST_RESORT = (
    "Excuses, er is een storing. Probeer het later opnieuw of kijk op justis.nl. "
    "Sorry, we have a technical problem. Please call again later or visit justis.nl."
)


def apology(engine: Engine, *, language: str | None, now: datetime, base_url: str) -> str:
    """Apologise; put the caller in the general queue when open, else ask them to call back."""
    try:
        flow = engine.flow
        lang = language if language in flow.languages else flow.default_language
        if engine.hours.is_open(now):
            says = [engine.say("error_apology", lang)]
            urls = CallUrls(base=base_url, language=lang)
            return speak_and_enqueue(says, flow.queue.general_product, urls)
        return speak_and_hang_up([engine.say("error_call_back", lang)])
    except Exception:  # the apology itself must not fail
        return last_resort()


def number_fallback(engine: Engine, *, now: datetime, base_url: str) -> str:
    """The number's fallback URL: Twilio asks it when the voice URL failed, so nothing is known
    of the caller. The flow's apology in every language of the flow, then the general queue when
    the flow loaded at start-up says the centre is open, else a request to call back later."""
    try:
        flow = engine.flow
        languages = flow.languages  # the default (Dutch) first
        if engine.hours.is_open(now):
            says = [engine.say("error_apology", lang) for lang in languages]
            urls = CallUrls(base=base_url, language=flow.default_language)
            return speak_and_enqueue(says, flow.queue.general_product, urls)
        return speak_and_hang_up([engine.say("error_call_back", lang) for lang in languages])
    except Exception:  # the apology itself must not fail
        return last_resort()


def last_resort() -> str:
    return document([say(LAST_RESORT, language="nl-NL"), element("Hangup")])


def hold_on(engine: Engine, *, twilio_position: int | None, language: str | None) -> str:
    """The waitUrl when something failed: the caller is in Twilio's queue and stays there.

    Only Play, Say, Pause, Hangup, Redirect, Leave and Gather are allowed in a waitUrl.
    """
    try:
        flow = engine.flow
        lang = language if language in flow.languages else flow.default_language
        says = (
            [engine.say("queue_position", lang, position=twilio_position)]
            if twilio_position
            else []
        )
        return hold(says, music_url=flow.queue.music_for(lang), seconds=flow.queue.announce_every)
    except Exception:
        return hold([], music_url=None, seconds=30)


def after_queue(result: str) -> str:
    """The Enqueue action when something failed: after a conversation or a hang-up, just end."""
    return empty() if result in ("hangup", "redirected") else speak_and_hang_up([])
