"""The call engine: walks a flow for one webhook at a time. Pure: no I/O, no clock of its own.

The engine runs through nodes that need no caller input (say, goto, hours) until it reaches one
that waits for keys (menu, gather, verify) or ends the flow (queue, hangup). The session it is
given is changed in place; the caller persists it.
"""

from __future__ import annotations

import re
import string
from datetime import date, datetime

from flows.errors import KccError
from flows.model import (
    Flow,
    GatherNode,
    GotoNode,
    HangupNode,
    HoursNode,
    MenuNode,
    Node,
    QueueNode,
    SayNode,
    StatusNode,
    VerifyNode,
)
from flows.spoken_hours import HOURS, WEEKLY_HOURS
from ivr.hours import OpeningHours
from ivr.identity.check import CheckOutcome, CheckResult, IdentityCheck
from ivr.identity.keyed_dates import keyed_date_of_birth, spoken_date
from ivr.session import CallPhase, CallSession, Verification, VerifyStage
from ivr.turn import AskKeys, HangUp, JoinQueue, Say, Turn

MAX_AUTOMATIC_STEPS = 200  # the validator forbids loops without input; this is a second guard


class EngineError(KccError):
    """The flow cannot continue (a bug or a flow that slipped past validation)."""

    code = "engine_error"


class Engine:
    def __init__(self, flow: Flow, hours: OpeningHours) -> None:
        self.flow = flow
        self.hours = hours
        self._fields: dict[str, frozenset[str]] = {}  # per prompt text: its placeholders

    def start(self, session: CallSession, now: datetime) -> Turn:
        turn = Turn()
        outage = self.flow.outage
        if outage is not None and outage.active:
            language = session.language if session.language in outage.prompt else None
            language = language or self.flow.default_language
            text = outage.prompt.get(language)
            if text:  # an empty text says nothing: no empty <Say>
                turn.says.append(self._plain(text, language))
        return self._run(session, self.flow.start, now, turn)

    def answer(
        self,
        session: CallSession,
        digits: str | None,
        now: datetime,
        check: CheckOutcome | None = None,
    ) -> Turn:
        """The caller pressed `digits` (None: nothing before the timeout) at the waiting node.

        `check` is the outcome of the identity check that `identity_check` asked for.
        """
        if session.node is None or session.phase is not CallPhase.MENU:
            raise EngineError(f"call is not waiting for keys (phase {session.phase})")
        node = self.flow.node(session.node)
        match node:
            case MenuNode():
                return self._menu_answer(session, node, digits or None, now)
            case GatherNode():
                return self._gather_answer(session, node, digits or None, now)
            case VerifyNode():
                return self._verify_answer(session, node, digits, now, check)
            case StatusNode():
                return self._status_answer(session, node, digits or None, now)
            case _:
                raise EngineError(f"node {session.node!r} does not take keys")

    def identity_check(
        self, session: CallSession, digits: str | None, now: datetime
    ) -> IdentityCheck | None:
        """The check to run before `answer`, when these keys complete a number and birth date."""
        if session.node is None or session.verify_stage is not VerifyStage.DATE_OF_BIRTH:
            return None
        if not isinstance(self.flow.node(session.node), VerifyNode):
            return None
        born = keyed_date_of_birth(digits or "", today=self._local_date(now))
        if born is None or session.pending_number is None:
            return None
        return IdentityCheck(application_number=session.pending_number, born=born)

    def replay(self, session: CallSession, now: datetime) -> Turn:
        """Ask again at the waiting node (a late or stale webhook)."""
        if session.node is None:
            return Turn(says=[], ending=HangUp())
        return Turn(ending=self._ask(session, self.flow.node(session.node), now))

    def say(self, prompt: str, language: str, now: datetime | None = None, **values: object) -> Say:
        """A flow prompt with its placeholders filled: `values`, the hours of the calendar
        ({weekly_hours} always; {hours} with `now`, the moment of the call: the validator allows
        it only in prompts the walk says, not in the system prompts said without one)."""
        voice = self.flow.voices[language]
        text = self.flow.text(prompt, language)
        names = self._placeholders(text)
        if names is not None:
            fill: dict[str, object] = {}
            if WEEKLY_HOURS in names:
                fill[WEEKLY_HOURS] = self.hours.spoken_hours(None, language)[WEEKLY_HOURS]
            if HOURS in names and now is not None:
                own = self.hours.own_hours(self._local_date(now))
                fill[HOURS] = self.hours.spoken_hours(own, language)[HOURS]
            text = text.format(**fill, **values)
        return Say(text=text, language=voice.language, voice=voice.voice)

    def _placeholders(self, text: str) -> frozenset[str] | None:
        """The {names} in a prompt; None when it has no braces at all (nothing to format)."""
        if "{" not in text and "}" not in text:
            return None
        found = self._fields.get(text)
        if found is None:
            found = frozenset(
                name for _, name, _, _ in string.Formatter().parse(text) if name is not None
            )
            self._fields[text] = found
        return found

    # -- walking ---------------------------------------------------------------------------

    def _run(self, session: CallSession, node_id: str, now: datetime, turn: Turn) -> Turn:
        for _ in range(MAX_AUTOMATIC_STEPS):
            node = self.flow.node(node_id)
            language = session.language
            match node:
                case SayNode():
                    turn.says.append(self.say(node.prompt, language, now=now))
                    node_id = node.next
                case GotoNode():
                    node_id = node.next
                case HoursNode():
                    # day_plan and is_open never need to search for the next opening.
                    plan = self.hours.day_plan(self._local_date(now))
                    announcement = (plan.announcement or {}).get(language)
                    if announcement:  # an empty text says nothing: no empty <Say>
                        turn.says.append(self._plain(announcement, language))
                    node_id = node.open if self.hours.is_open(now) else node.closed
                case VerifyNode() if session.verification is Verification.VERIFIED:
                    node_id = node.verified  # verified once in this call is enough
                case VerifyNode() if session.verify_failures >= node.tries:
                    node_id = node.unverified  # the tries are per call, not per verify node
                case VerifyNode():
                    session.verify_stage = VerifyStage.NUMBER
                    session.pending_number = None
                    session.node = node_id
                    session.attempts = 0
                    turn.ending = self._ask(session, node, now)
                    return turn
                case StatusNode():
                    if session.verification is not Verification.VERIFIED:
                        node_id = node.adviser if self.hours.is_open(now) else node.goodbye
                        continue
                    session.node = node_id
                    session.attempts = 0
                    session.self_service = True
                    turn.says.append(self._status_say(session, now))
                    turn.ending = self._ask(session, node, now)
                    return turn
                case MenuNode() | GatherNode():
                    session.node = node_id
                    session.attempts = 0
                    turn.ending = self._ask(session, node, now)
                    return turn
                case QueueNode():
                    if node.closed is not None and not self.hours.is_open(now):
                        session.path.append(f"{node_id}=closed")
                        node_id = node.closed
                        continue
                    return self._join_queue(session, node, now, turn)
                case HangupNode():
                    if node.prompt:
                        turn.says.append(self.say(node.prompt, language, now=now))
                    session.node = None
                    session.phase = CallPhase.ENDED
                    turn.ending = HangUp()
                    return turn
        raise EngineError(f"more than {MAX_AUTOMATIC_STEPS} steps without input from {node_id!r}")

    def _join_queue(self, session: CallSession, node: QueueNode, now: datetime, turn: Turn) -> Turn:
        if node.prompt:
            turn.says.append(self.say(node.prompt, session.language, now=now))
        session.node = None
        session.phase = CallPhase.QUEUED
        session.product, session.theme, session.priority = node.product, node.theme, node.priority
        session.queued_at = now
        turn.ending = JoinQueue(product=node.product, theme=node.theme, priority=node.priority)
        return turn

    def _ask(self, session: CallSession, node: Node, now: datetime) -> AskKeys:
        language = session.language
        match node:
            case VerifyNode() if session.verify_stage is VerifyStage.DATE_OF_BIRTH:
                return AskKeys(
                    prompt=[self.say("verify_date_of_birth", language, now=now)],
                    timeout=node.timeout,
                    num_digits=8,
                    finish_on_key="#",
                )
            case VerifyNode():
                prompt = "verify_number_required" if node.required else "verify_number_optional"
                # Twilio leaves the finish key out of Digits: "#" alone is an empty result, which
                # it only posts to the action with actionOnEmptyResult (else it runs the Redirect).
                return AskKeys(
                    prompt=[self.say(prompt, language, now=now)],
                    timeout=node.timeout,
                    num_digits=None,
                    finish_on_key="#",
                    action_on_empty=True,
                )
            case StatusNode():
                options = (
                    "status_options_open" if self.hours.is_open(now) else "status_options_closed"
                )
                return AskKeys(
                    prompt=[self.say(options, language, now=now)],
                    timeout=node.timeout,
                    num_digits=1,
                    finish_on_key="",
                )
            case MenuNode():
                return AskKeys(
                    prompt=[self.say(node.prompt, session.language, now=now)],
                    timeout=node.timeout,
                    num_digits=1,
                    finish_on_key="",
                )
            case GatherNode():
                return AskKeys(
                    prompt=[self.say(node.prompt, session.language, now=now)],
                    timeout=node.timeout,
                    num_digits=node.max_digits if not node.finish_on_key else None,
                    finish_on_key=node.finish_on_key,
                )
        raise EngineError(f"node kind {node.kind!r} does not ask for keys")

    # -- answers ---------------------------------------------------------------------------

    def _menu_answer(
        self, session: CallSession, node: MenuNode, key: str | None, now: datetime
    ) -> Turn:
        node_id = session.node
        assert node_id is not None
        if key is not None and key == node.repeat:
            return Turn(ending=self._ask(session, node, now))
        option = node.option(key) if key is not None else None
        if option is not None:
            session.path.append(f"{node_id}={key}")
            if option.language is not None:
                session.language = option.language
            session.node = None
            return self._run(session, option.next, now, Turn())
        complaint = node.no_input if key is None else node.invalid
        return self._retry(session, node, complaint, node.retries, node.on_fail, now)

    def _gather_answer(
        self, session: CallSession, node: GatherNode, digits: str | None, now: datetime
    ) -> Turn:
        node_id = session.node
        assert node_id is not None
        if digits is not None:
            digits = digits.rstrip("#*")
        if digits and _digits_fit(node, digits):
            session.values[node.store] = digits
            session.path.append(f"{node_id}=entered")  # never the digits themselves
            session.node = None
            return self._run(session, node.next, now, Turn())
        complaint = node.no_input if not digits else node.invalid
        return self._retry(session, node, complaint, node.retries, node.on_fail, now)

    def _retry(
        self,
        session: CallSession,
        node: MenuNode | GatherNode | StatusNode,
        complaint: str | None,
        retries: int,
        on_fail: str,
        now: datetime,
    ) -> Turn:
        """Say what went wrong; ask again up to `retries` times, then go to `on_fail`."""
        session.attempts += 1
        turn = Turn(says=[self.say(complaint, session.language, now=now)] if complaint else [])
        if session.attempts > retries:
            session.path.append(f"{session.node}=failed")
            session.node = None
            return self._run(session, on_fail, now, turn)
        turn.ending = self._ask(session, node, now)
        return turn

    # -- identity verification -------------------------------------------------------------

    def _verify_answer(
        self,
        session: CallSession,
        node: VerifyNode,
        digits: str | None,
        now: datetime,
        check: CheckOutcome | None,
    ) -> Turn:
        language = session.language
        if session.verify_stage is VerifyStage.DATE_OF_BIRTH:
            if check is not None:
                return self._verify_checked(session, node, check, now)
            complaint = "verify_no_input" if digits is None else "verify_date_invalid"
            return self._verify_retry(session, node, complaint, Verification.FAILED, now)
        number = (digits or "").rstrip("#")
        if not number:
            # "#" alone (or silence: with actionOnEmptyResult Twilio cannot tell them apart):
            # the caller has no application number at hand.
            turn = Turn(says=[self.say("verify_skipped", language, now=now)])
            return self._verify_done(session, node, Verification.SKIPPED, now, turn)
        fits = node.number_min_digits <= len(number) <= node.number_max_digits
        if not number.isdigit() or not fits:
            return self._verify_retry(
                session, node, "verify_number_invalid", Verification.SKIPPED, now
            )
        session.pending_number = number
        session.verify_stage = VerifyStage.DATE_OF_BIRTH
        session.attempts = 0
        return Turn(ending=self._ask(session, node, now))

    def _verify_checked(
        self, session: CallSession, node: VerifyNode, check: CheckOutcome, now: datetime
    ) -> Turn:
        language = session.language
        number, session.pending_number = session.pending_number, None
        session.attempts = 0
        if check.result is CheckResult.VERIFIED:
            session.application_number = number
            session.application_product = check.product
            session.application_status = check.status
            session.application_status_date = check.status_date
            turn = Turn(says=[self.say("verify_ok", language, now=now)])
            return self._verify_done(session, node, Verification.VERIFIED, now, turn)
        # Unknown number, wrong date and a lock all sound the same.
        session.verify_failures += 1
        session.verify_locked = session.verify_locked or check.result is CheckResult.LOCKED
        turn = Turn(says=[self.say("verify_mismatch", language, now=now)])
        if session.verify_failures >= node.tries:  # a lock sounds and counts like a mismatch
            turn.says.append(self.say("verify_failed", language, now=now))
            outcome = Verification.LOCKED if session.verify_locked else Verification.FAILED
            return self._verify_done(session, node, outcome, now, turn)
        session.verify_stage = VerifyStage.NUMBER
        turn.ending = self._ask(session, node, now)
        return turn

    def _verify_retry(
        self,
        session: CallSession,
        node: VerifyNode,
        complaint: str,
        gives_up_as: Verification,
        now: datetime,
    ) -> Turn:
        """Silence or malformed input: ask again (not a failed verification), then give up."""
        session.attempts += 1
        turn = Turn(says=[self.say(complaint, session.language, now=now)])
        if session.attempts > node.retries:
            ending = "verify_skipped" if gives_up_as is Verification.SKIPPED else "verify_failed"
            turn.says.append(self.say(ending, session.language, now=now))
            return self._verify_done(session, node, gives_up_as, now, turn)
        turn.ending = self._ask(session, node, now)
        return turn

    def _verify_done(
        self,
        session: CallSession,
        node: VerifyNode,
        outcome: Verification,
        now: datetime,
        turn: Turn,
    ) -> Turn:
        node_id = session.node
        session.verification = outcome
        session.verify_stage = None
        session.pending_number = None
        session.path.append(f"{node_id}={outcome.value}")
        session.node = None
        target = node.verified if outcome is Verification.VERIFIED else node.unverified
        return self._run(session, target, now, turn)

    # -- self-service status ---------------------------------------------------------------

    def _status_say(self, session: CallSession, now: datetime) -> Say:
        language = session.language
        product = session.application_product or ""
        names = self.flow.products.get(product, {})
        status_date = session.application_status_date
        spoken = (
            spoken_date(status_date, language, today=self._local_date(now)) if status_date else ""
        )
        return self.say(
            f"status_{session.application_status}",
            language,
            now=now,
            product=names.get(language, product),
            date=spoken,
        )

    def _status_answer(
        self, session: CallSession, node: StatusNode, key: str | None, now: datetime
    ) -> Turn:
        node_id = session.node
        if key == "1" and self.hours.is_open(now):
            session.path.append(f"{node_id}=adviser")
            session.node = None
            return self._run(session, node.adviser, now, Turn())
        if key == "2":
            return Turn(says=[self._status_say(session, now)], ending=self._ask(session, node, now))
        return self._retry(session, node, None, node.retries, node.goodbye, now)

    def _local_date(self, now: datetime) -> date:
        return now.astimezone(self.hours.timezone).date()

    def _plain(self, text: str, language: str) -> Say:
        voice = self.flow.voices[language]
        return Say(text=text, language=voice.language, voice=voice.voice)


def _digits_fit(node: GatherNode, digits: str) -> bool:
    if not digits.isdigit() or not node.min_digits <= len(digits) <= node.max_digits:
        return False
    return node.pattern is None or re.fullmatch(node.pattern, digits) is not None
