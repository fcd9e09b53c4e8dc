"""The satisfaction survey after a conversation (issue 13): the question, the caller's mark, and
where the mark waits for the call record.

When the adviser ends the conversation, the caller's <Dial> action (dial-result) runs while the
caller is still on the line; with the flow's survey on, it answers with the question instead of
goodbye. The mark is typed as 1 to 10 and #; anything else (0, 11, silence) is asked once more,
then the call ends without a mark.

The mark is kept in Redis (`keys.call_survey`) until the call record is built by the status
callback, which normally comes after the survey. Both sides decide in one atomic Redis script
each, so exactly one of them writes the mark: the status callback puts it on the record when it
is there; a mark that arrives after the record was built (`answered` returns True) updates the
row instead. The mark is not personal; it is logged with the CallSid, never with a number.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

from redis.asyncio import Redis

from flows.model import Survey, Voice
from ivr.turn import Say
from ivr.twiml import Attributes, document, element, escape_text, say, speak_and_hang_up
from routing import keys
from routing.scripts import ScriptRunner, hash_set_get

SURVEY_TRIES = 2  # the question, and once more after 0, silence or a wrong mark
MARKS = frozenset(str(mark) for mark in range(1, 11))


def survey_mark(digits: str | None) -> int | None:
    """The caller's mark when `digits` is one from 1 to 10 as typed (no leading 0), else None."""
    return int(digits) if digits in MARKS else None


@dataclass(frozen=True)
class SurveyUrls:
    base: str  # KCC_PUBLIC_URL without a trailing slash
    language: str

    def answer(self, attempt: int) -> str:
        return f"{self.base}/twilio/survey?lang={self.language}&try={attempt}"

    def no_input(self, attempt: int) -> str:
        return f"{self.answer(attempt)}&event=timeout"


def _say(survey: Survey, name: str, voice: Voice, language: str) -> Say:
    return Say(text=survey.text(name, language), language=voice.language, voice=voice.voice)


def survey_question(
    survey: Survey, voice: Voice, urls: SurveyUrls, attempt: int = 1, *, retry: bool = False
) -> str:
    """The question as a <Gather> of up to two keys ended by #; silence runs the <Redirect>."""
    before = [_say(survey, "retry", voice, urls.language)] if retry else []
    question = _say(survey, "question", voice, urls.language)
    options: Attributes = {
        "input": "dtmf",
        "action": urls.answer(attempt),
        "method": "POST",
        "timeout": survey.timeout,
        "finishOnKey": "#",
        "numDigits": 2,
    }
    verbs = [say(s.text, language=s.language, voice=s.voice) for s in before]
    gather = say(question.text, language=question.language, voice=question.voice)
    verbs.append(element("Gather", options, gather))
    verbs.append(element("Redirect", {"method": "POST"}, escape_text(urls.no_input(attempt))))
    return document(verbs)


def survey_end(survey: Survey, voice: Voice, language: str, *, answered: bool) -> str:
    """Thanks after a mark, goodbye without one; then the call ends."""
    return speak_and_hang_up([_say(survey, "thanks" if answered else "no_mark", voice, language)])


class SurveyStore:
    """The survey of each call in Redis (`keys.call_survey`), until the call record has it.
    Each change is one script (set, read, renew): atomic, as the decision of who writes the
    mark needs."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._scripts = ScriptRunner(redis)

    async def asked(self, call_sid: str, flow_version: str) -> None:
        """The question is put to the caller, in the texts of `flow_version`."""
        key = keys.call_survey(call_sid)
        await self._scripts.run_one(hash_set_get(key, keys.SURVEY_TTL, {"version": flow_version}))

    async def version(self, call_sid: str) -> str | None:
        """The flow version the call's survey was asked in; None: it was not asked."""
        found = await self._redis.hget(keys.call_survey(call_sid), "version")
        return cast(str | None, found)

    async def answered(self, call_sid: str, score: int) -> bool:
        """Keep the caller's mark; True when the call record was built already (then the row
        must be updated: the status callback has come and gone)."""
        key = keys.call_survey(call_sid)
        step = hash_set_get(key, keys.SURVEY_TTL, {"score": score}, read="recorded")
        recorded = await self._scripts.run_one(step)
        return bool(recorded)

    async def take_for_record(self, call_sid: str) -> int | None:
        """The status callback builds the record: the mark so far (None: none), and from now on
        a later mark updates the row instead."""
        key = keys.call_survey(call_sid)
        step = hash_set_get(key, keys.SURVEY_TTL, {"recorded": "1"}, read="score")
        score = await self._scripts.run_one(step)
        return int(score) if score else None
