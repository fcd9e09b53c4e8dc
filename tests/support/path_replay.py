"""Replay a path listed by `flows.paths.flow_paths` through the real call engine, and compare.

flows/paths.py and ivr/engine.py are two interpreters of one flow document. `replay_problems`
takes one listed path, plays it as a caller would (keys as digits, silence as None, identity
outcomes as `CheckOutcome`s, a clock that makes the hours branches come out as the path says)
and returns every difference between what the path says and what the engine does. An empty list
means the two agree on that path.

How a path is played:

- The steps are grouped by engine call. A menu, gather, asking verify or verified status step
  takes input; every other step (say, goto, hours, queue, hangup, a verify that is already
  decided, a status node for an unverified caller) runs inside the engine call before it.
- Each call gets a `now`: the path's day (an ordinary weekday, the observed holiday or the
  calendar exception its hours step names), opened or closed as its steps need (hours, status
  options, "1 (adviser)", a queue that is joined or closed). A call whose steps need the centre
  both open and closed cannot happen and is reported.
- What the engine says is attributed step by step: a step that runs without input must say
  exactly what the path lists, in order; a step that takes input may be heard more than once (a
  menu asked again after a mistake, a verify asked per try), so what is heard there is compared
  without repeats (but a "3×" on verify_mismatch must be heard three times).
- Texts are compared with the flow's prompts: the same prompt id (the text fits its template)
  and the same text, except for the sample values paths.py puts in for a status date and a
  holiday's name.
- The end: a queue is joined with the path's product and theme; a hang-up ends the call; a loop
  back to a menu or gather leaves the engine waiting there, asked anew (a loop to another node:
  the engine goes on from it as the path did the first time); a path that "goes on as paths
  a-b" leaves the engine where the first of those paths leaves it at that node (replayed too).

`variant` 0 and 1 play the same path with different keys: silence or "#" to skip, a mismatch or
a locked number, the repeat key pressed first, another wrong key. A menu with no retries hears
only one complaint per call, so the two variants together hear both.
"""

from __future__ import annotations

import re
import string
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Literal, NoReturn
from zoneinfo import ZoneInfo

from flows.model import CalendarException, Flow, GatherNode, MenuNode, OpeningRange, VerifyNode
from flows.paths import SAMPLE_STATUS_PROMPT, EndKind, FlowPath, PathReport, Said, Step
from flows.spoken_hours import fill
from ivr.engine import Engine, EngineError
from ivr.hours import DayPlan, OpeningHours
from ivr.identity.check import CheckOutcome, CheckResult
from ivr.session import CallPhase, CallSession, Verification
from ivr.turn import AskKeys, HangUp, JoinQueue, Say, Turn

State = Literal["open", "closed"]
# Placeholder values paths.py cannot know: the engine says the real status date and holiday name,
# and the hours of the day of the call (paths.py says the weekly hours for {hours}).
FREE_PLACEHOLDERS = frozenset({"date", "holiday", "hours"})
# Where the search for an ordinary weekday, a holiday or an exception day starts.
SEARCH_FROM = date(2026, 1, 1)
SEARCH_DAYS = 3 * 366
BIRTH_DATE = ("15061985", "03111985#")  # DDMMYYYY per variant; "#" is stripped by the engine
KEYS = "0123456789*#"

_MISTAKES = re.compile(r"^\(no or wrong key(?: (\d+)×)?\)$")
_KEY = re.compile(r"^([0-9*#])(?: \(([a-z]+)\))?$")
_DAY = r"(\d{4}-\d{2}-\d{2})"
_EXCEPTION = re.compile(rf"^\({_DAY}(?:\.\.{_DAY})?(?: (\d\d:\d\d-\d\d:\d\d))?: (open|closed)\)$")


class ReplayStop(Exception):
    """The engine went another way; going on would only repeat the same difference."""


@dataclass(frozen=True)
class Heard:
    """One <Say> of the engine, with the flow language of its voice."""

    text: str
    language: str


@dataclass(frozen=True)
class Input:
    digits: str | None
    check: CheckResult | None = None  # the identity check's result, for a date of birth
    mistake: Literal["none", "wrong"] | None = None  # for a menu or gather: what kind


@dataclass
class Outcome:
    """Where the engine is after the path's last step."""

    tail: list[Heard]  # said after the last step: the node gone back to or gone on from
    session: CallSession
    ending: AskKeys | JoinQueue | HangUp


@dataclass
class _Segment:
    """One input step (None: the call's start), the steps that run after it without input, and
    the input step whose question ends the last engine call (None: the path ends first)."""

    step: int | None
    autos: list[int]
    next_wait: int | None


@dataclass
class PathReplay:
    flow: Flow
    report: PathReport
    variant: int = 0
    problems: list[str] = field(default_factory=list)
    # Set by `play`: the steps played, the path's name in messages, its day, the last `now`.
    steps: list[Step] = field(default_factory=list)
    name: str = ""
    day: date = SEARCH_FROM
    moment: datetime | None = None

    def __post_init__(self) -> None:
        self.hours = OpeningHours(self.flow.calendar)
        self.engine = Engine(self.flow, self.hours)
        self.zone = ZoneInfo(self.flow.calendar.timezone)
        self.voices = {(v.language, v.voice): code for code, v in self.flow.voices.items()}
        self.other = self.variant % 2 == 1  # the second way of pressing the same keys

    # -- the whole path ------------------------------------------------------------------------

    def check(self, path: FlowPath) -> list[str]:
        self.problems = []
        try:
            outcome = self.play(path.steps, f"path {path.number}")
            self._check_end(path, outcome)
        except ReplayStop:
            pass
        return self.problems

    def _check_end(self, path: FlowPath, outcome: Outcome) -> None:
        end, session, ending = path.end, outcome.session, outcome.ending
        if session.language != end.language:
            self._problem(f"the call ends in {session.language!r}, the path in {end.language!r}")
        match end.kind:
            case EndKind.QUEUE:
                joined = (ending.product, ending.theme) if isinstance(ending, JoinQueue) else None
                if joined != (end.product, end.theme) or session.phase is not CallPhase.QUEUED:
                    self._problem(
                        f"the path joins queue {end.product}/{end.theme}; the engine ends with "
                        f"{_ending(ending)}"
                    )
                self._no_tail(outcome)
            case EndKind.HANGUP:
                if not isinstance(ending, HangUp) or session.phase is not CallPhase.ENDED:
                    self._problem(f"the path hangs up; the engine ends with {_ending(ending)}")
                self._no_tail(outcome)
            case EndKind.LOOP:
                self._check_loop(path, outcome)
            case EndKind.SAME_AS:
                self._check_same_as(path, outcome)

    def _no_tail(self, outcome: Outcome) -> None:
        if outcome.tail:
            self._problem(f"the engine says more after the path's end: {self._show(outcome.tail)}")

    def _check_loop(self, path: FlowPath, outcome: Outcome) -> None:
        """Back to an earlier node: a menu or gather asks again; otherwise the engine must go on
        from there as the path did the first time (the same prompts, waiting at the same node)."""
        node_id = path.end.node
        node = self.flow.node(node_id)
        if isinstance(node, MenuNode | GatherNode):
            expected = [Heard(self.flow.text(node.prompt, path.end.language), path.end.language)]
            fresh = outcome.session.attempts == 0  # asked anew, not after a mistake
            if outcome.session.node != node_id or outcome.tail != expected or not fresh:
                self._problem(
                    f"the path goes back to {node_id}; the engine waits at "
                    f"{outcome.session.node} (mistakes {outcome.session.attempts}) after saying "
                    f"{self._show(outcome.tail)}"
                )
            return
        first = next((i for i, step in enumerate(path.steps) if step.node == node_id), None)
        if first is None:
            self._problem(f"the path goes back to {node_id}, which it never passed")
            return
        again = PathReplay(self.flow, self.report, self.variant)
        reference = again.play(path.steps[:first], f"path {path.number} up to {node_id}")
        self.problems.extend(again.problems)
        got = [self._prompts(heard) for heard in outcome.tail]
        want = [self._prompts(heard) for heard in reference.tail]
        if (
            len(got) != len(want)
            or any(not g & w for g, w in zip(got, want, strict=False))
            or outcome.session.node != reference.session.node
        ):
            self._problem(
                f"back at {node_id} the engine says {self._show(outcome.tail)} and waits at "
                f"{outcome.session.node}; the first time it said {self._show(reference.tail)} "
                f"and waited at {reference.session.node}"
            )

    def _check_same_as(self, path: FlowPath, outcome: Outcome) -> None:
        """Goes on "as in paths a-b": the engine is where path a is when it reaches the node."""
        end = path.end
        if end.same_as is None:
            self._problem("a same-as end without path numbers")
            return
        first = self.report.paths[end.same_as[0] - 1]
        at = next((i for i, step in enumerate(first.steps) if step.node == end.node), None)
        if at is None:
            self._problem(f"path {first.number} never reaches {end.node}")
            return
        again = PathReplay(self.flow, self.report, self.variant)
        reference = again.play(first.steps[:at], f"path {first.number} up to {end.node}")
        self.problems.extend(again.problems)
        ours, theirs = _where(outcome), _where(reference)
        same_tail = len(outcome.tail) == len(reference.tail) and all(
            self._same_heard(a, b) for a, b in zip(outcome.tail, reference.tail, strict=True)
        )
        if ours != theirs or not same_tail:
            self._problem(
                f"at {end.node} the engine says {self._show(outcome.tail)} and is at {ours}; "
                f"path {first.number} there says {self._show(reference.tail)} and is at {theirs}"
            )

    # -- playing steps ---------------------------------------------------------------------------

    def play(self, steps: list[Step], name: str) -> Outcome:
        """Play `steps` from the start of a call; what is said after the last one is the tail."""
        for number, step in enumerate(steps):
            node = self.flow.nodes.get(step.node)
            if node is None or node.kind != step.kind:
                self._stop(f"step {number + 1} is at {step.node} ({step.kind}), not in the flow")
        self.steps = steps
        self.name = name
        self.day = self._day(steps)
        self.moment = None
        session = CallSession(
            call_sid="CA" + "0" * 32,
            caller="+31612345678",
            flow=self.flow.name,
            flow_version="replay",
            language=self.report.language,  # a report in English is a call that starts in English
            started_at=datetime(2026, 1, 1, tzinfo=self.zone),
        )
        segments = list(self._segments(steps))
        tail: list[Heard] = []
        ending: AskKeys | JoinQueue | HangUp = HangUp()
        asked: list[Heard] = []
        for segment in segments:
            if segment.step is None:
                now = self._now(self._call_state(segment, None))
                turn = self._call("the start", self.engine.start, session, now)
                heard, ending = self._heard(turn), turn.ending
            else:
                heard, ending = self._answer_step(session, segment, asked)
            rest = self._autos(segment, heard)
            asked = []
            if segment.next_wait is not None:
                waiting = steps[segment.next_wait]
                if session.node != waiting.node or not isinstance(ending, AskKeys):
                    self._stop(
                        f"step {segment.next_wait + 1} waits at {waiting.node}; the engine is at "
                        f"{session.node} ({_ending(ending)}) after {self._show(rest)}"
                    )
                asked = rest
            else:
                tail = rest
        return Outcome(tail, session, ending)

    def _segments(self, steps: list[Step]) -> Iterator[_Segment]:
        waits = [i for i, step in enumerate(steps) if _takes_input(step)]
        starts: list[int | None] = [None, *waits]
        for n, start in enumerate(starts):
            begin = 0 if start is None else start + 1
            stop = waits[n] if n < len(waits) else len(steps)
            yield _Segment(start, list(range(begin, stop)), waits[n] if n < len(waits) else None)

    def _autos(self, segment: _Segment, heard: list[Heard]) -> list[Heard]:
        """Compare the steps that run without input, in order; the rest is for what follows."""
        at = 0
        for index in segment.autos:
            says = self.steps[index].says
            got = heard[at : at + len(says)]
            at += len(says)
            self._compare(index, says, got, exact=True)
        return heard[at:]

    def _answer_step(
        self, session: CallSession, segment: _Segment, asked: list[Heard]
    ) -> tuple[list[Heard], AskKeys | JoinQueue | HangUp]:
        """Press the step's keys; compare all it said; return what the last answer said after."""
        assert segment.step is not None
        index = segment.step
        step = self.steps[index]
        inputs = self._inputs(step, session)
        region = list(asked)
        final_state = self._call_state(segment, index)
        for number, given in enumerate(inputs):
            last = number == len(inputs) - 1
            now = self._now(final_state if last else self._step_state(step))
            turn = self._answer(session, given, now, index)
            heard = self._heard(turn)
            if not last:
                if session.node != step.node or not isinstance(turn.ending, AskKeys):
                    self._stop(
                        f"step {index + 1} ({step.node}, {step.choice}): after input "
                        f"{number + 1} of {len(inputs)} the engine left the node: "
                        f"{_ending(turn.ending)} after {self._show(heard)}"
                    )
                region += heard
                continue
            said_here = self._said_on_leaving(step, given)
            region += heard[:said_here]
            self._compare(index, self._expected(step, inputs), _distinct(region), exact=False)
            self._count_mismatches(index, region)
            return heard[said_here:], turn.ending
        raise AssertionError("no inputs")

    def _count_mismatches(self, index: int, region: list[Heard]) -> None:
        """A path's "after each wrong number and date 3×" is how often the caller hears it."""
        for said in self.steps[index].says:
            if said.prompt == "verify_mismatch" and said.note is not None:
                times = re.search(r" (\d+)×$", said.note)
                expected = int(times.group(1)) if times else 1
                heard = sum(1 for got in region if self._fits(said, got))
                if heard != expected:
                    self._problem(
                        f"step {index + 1} ({self.steps[index].node}): the path says "
                        f"verify_mismatch {expected}×, the engine says it {heard}×"
                    )

    def _answer(self, session: CallSession, given: Input, now: datetime, index: int) -> Turn:
        check: CheckOutcome | None = None
        wanted = self.engine.identity_check(session, given.digits, now)
        if given.check is not None:
            if wanted is None:
                self._stop(f"step {index + 1}: the engine asks for no identity check")
            local = now.astimezone(self.zone).date()
            sample = SAMPLE_STATUS_PROMPT.removeprefix("status_")
            check = CheckOutcome(
                result=given.check,
                product=next(iter(self.flow.products)),
                status=sample,
                status_date=date(local.year, 11, 3),  # said as the sample "3 november"
            )
        elif wanted is not None:
            self._stop(f"step {index + 1}: the engine asks for an identity check for {given}")
        return self._call(
            f"step {index + 1}", self.engine.answer, session, given.digits, now, check
        )

    def _call(self, what: str, call: Callable[..., Turn], *args: object) -> Turn:
        try:
            return call(*args)
        except EngineError as exc:
            self._stop(f"{what}: the engine fails: {exc}")

    def _heard(self, turn: Turn) -> list[Heard]:
        says = list(turn.says)
        if isinstance(turn.ending, AskKeys):
            says += turn.ending.prompt
        return [self._heard_say(say) for say in says]

    def _heard_say(self, say: Say) -> Heard:
        language = self.voices.get((say.language, say.voice))
        if language is None:
            self._stop(f"the engine speaks with an unknown voice {say.language}/{say.voice}")
        return Heard(say.text, language)

    # -- the keys for one step ------------------------------------------------------------------

    def _inputs(self, step: Step, session: CallSession) -> list[Input]:
        node = self.flow.node(step.node)
        choice = step.choice or ""
        other = self.other
        mistakes = _MISTAKES.match(choice)
        if isinstance(node, MenuNode):
            repeat = [Input(node.repeat)] if other and node.repeat is not None else []
            key = _KEY.match(choice)
            if key is not None:
                return [*repeat, Input(key.group(1))]
            if mistakes is None:
                self._stop(f"unknown menu choice {choice!r}")
            taken = {*node.options, node.repeat}
            free = [k for k in KEYS if k not in taken]
            wrong = (free[-1] if other else free[0]) if free else None
            return repeat + _mistakes(int(mistakes.group(1) or 1), wrong, other)
        if isinstance(node, GatherNode):
            if choice == f"digits ({node.store})":
                return [Input(_fitting(node))]
            if mistakes is None:
                self._stop(f"unknown gather choice {choice!r}")
            wrong = _not_fitting(node, other)
            inputs = _mistakes(int(mistakes.group(1) or 1), wrong, other)
            if other:  # "*" alone: the engine strips it, so it is no input
                inputs = [Input("*", mistake="none") if i.digits is None else i for i in inputs]
            return inputs
        if isinstance(node, VerifyNode):
            number = "".join(str(n % 9 + 1) for n in range(node.number_min_digits))
            number += "#" if other else ""
            born = BIRTH_DATE[other]
            match choice:
                case "number + date (verified)":
                    return [Input(number), Input(born, CheckResult.VERIFIED)]
                case "number + date (not verified)":
                    tries = node.tries - session.verify_failures
                    results = [CheckResult.MISMATCH] * tries
                    if other:
                        results[0] = CheckResult.LOCKED  # sounds and counts like a mismatch
                    return [i for r in results for i in (Input(number), Input(born, r))]
                case "# (skip)":
                    return [Input(None if other else "")]
            self._stop(f"unknown verify choice {choice!r}")
        if step.kind == "status":
            again = [Input("2")] if other else []
            if choice == "1 (adviser)":
                return [*again, Input("1")]
            if mistakes is None:
                self._stop(f"unknown status choice {choice!r}")
            closed = any(s.prompt == "status_options_closed" for s in step.says)
            wrong = "1" if other and closed else "9"
            return again + _mistakes(int(mistakes.group(1) or 1), wrong, other)
        self._stop(f"step at {step.node} ({step.kind}) takes no input")

    def _said_on_leaving(self, step: Step, given: Input) -> int:
        """How many things the last answer at a step says before the next node's words."""
        node = self.flow.node(step.node)
        choice = step.choice or ""
        if isinstance(node, MenuNode) and given.mistake is not None:
            return int((node.no_input if given.mistake == "none" else node.invalid) is not None)
        if isinstance(node, GatherNode) and given.mistake is not None:
            return 1
        if isinstance(node, VerifyNode):
            return 2 if choice == "number + date (not verified)" else 1
        return 0

    def _expected(self, step: Step, inputs: list[Input]) -> list[Said]:
        """The step's words, without the complaint for a kind of mistake that was not made."""
        node = self.flow.node(step.node)
        says = list(step.says)
        made = {given.mistake for given in inputs if given.mistake is not None}
        if isinstance(node, MenuNode | GatherNode) and made:
            complaints = {"none": node.no_input, "wrong": node.invalid}
            heard = {complaints[kind] for kind in made}
            unsaid = {prompt for prompt in complaints.values() if prompt not in heard}
            says = [says[0], *(s for s in says[1:] if s.prompt not in unsaid)]
        seen: set[tuple[str, str]] = set()
        distinct = []
        for said in says:
            if (said.prompt, said.text) not in seen:
                seen.add((said.prompt, said.text))
                distinct.append(said)
        return distinct

    # -- the clock -------------------------------------------------------------------------------

    def _day(self, steps: list[Step]) -> date:
        """The path's date: the one its hours steps name, else an ordinary weekday."""
        days = {self._hours_day(step) for step in steps if step.kind == "hours"}
        if len(days) > 1:
            self._stop(f"the path's hours steps name different days: {sorted(map(str, days))}")
        return days.pop() if days else self._ordinary_day()

    def _hours_day(self, step: Step) -> date:
        choice = step.choice or ""
        if choice in ("(open)", "(closed)"):
            return self._ordinary_day()
        if choice == "(holiday)":
            return self._search(lambda d: self.hours.day_plan(d).source == "holiday", choice)
        found = _EXCEPTION.match(choice)
        if found is None:
            self._stop(f"unknown hours choice {choice!r}")
        first = date.fromisoformat(found.group(1))
        until = date.fromisoformat(found.group(2)) if found.group(2) else None
        named = [
            e
            for e in self.flow.calendar.exceptions
            if (e.date, e.until, _window(e.hours)) == (first, until, found.group(3))
        ]
        if not named:
            self._stop(f"{choice}: no such calendar exception")
        days = [first + timedelta(days=n) for n in range(((until or first) - first).days + 1)]
        for day in days:
            plan = self.hours.day_plan(day)
            decided = (plan.source, plan.hours, plan.announcement)
            if any(decided == ("exception", e.hours, self._announced(e)) for e in named):
                return day
        self._stop(f"{choice}: another exception decides every one of its days")

    def _announced(self, exception: CalendarException) -> dict[str, str]:
        """The exception's announcement as the engine says it: the hours filled in."""
        return {
            code: fill(text, self.hours.spoken_hours(exception.hours, code))
            for code, text in exception.announcement.items()
        }

    def _ordinary_day(self) -> date:
        def ordinary(day: date) -> bool:
            plan = self.hours.day_plan(day)
            return (
                plan.source == "weekly"
                and plan.hours is not None
                and _closed_time(plan) is not None
            )

        return self._search(ordinary, "an ordinary opening day")

    def _search(self, fits: Callable[[date], bool], what: str) -> date:
        for n in range(SEARCH_DAYS):
            day = SEARCH_FROM + timedelta(days=n)
            if fits(day):
                return day
        self._stop(f"no day for {what} in the calendar")

    def _now(self, state: State | None) -> datetime:
        """A moment on the path's day, open or closed as asked; unasked: as before."""
        if state is None and self.moment is not None:
            return self.moment
        plan = self.hours.day_plan(self.day)
        if state is None:
            state = "closed" if plan.hours is None else "open"
        if state == "open":
            if plan.hours is None:
                self._stop(f"{self.name} needs the centre open on {self.day}, a closed day")
            wall = _middle(plan.hours.opens, plan.hours.closes)
        else:
            closed = _closed_time(plan)
            if closed is None:
                self._stop(f"{self.name} needs the centre closed on {self.day}, open all day")
            wall = closed
        moment = datetime.combine(self.day, wall, tzinfo=self.zone)
        assert self.hours.is_open(moment) == (state == "open"), (moment, state)
        self.moment = moment
        return moment

    def _call_state(self, segment: _Segment, index: int | None) -> State | None:
        """Open or closed, as the last engine call of a segment needs it."""
        needs: dict[State, list[str]] = {"open": [], "closed": []}
        if index is not None:
            step = self.steps[index]
            if step.kind == "status" and step.choice == "1 (adviser)":
                needs["open"].append(f"step {index + 1} {step.choice}")
        for n in segment.autos:
            state = _auto_state(self.flow, self.steps[n])
            if state is not None:
                needs[state].append(f"step {n + 1} {self.steps[n].choice or self.steps[n].node}")
        if segment.next_wait is not None:
            state = self._step_state(self.steps[segment.next_wait])
            if state is not None:
                needs[state].append(f"step {segment.next_wait + 1} asking ({state})")
        if needs["open"] and needs["closed"]:
            self._stop(
                "one engine call (one moment) would have to be open for "
                f"{', '.join(needs['open'])} and closed for {', '.join(needs['closed'])}"
            )
        return "open" if needs["open"] else "closed" if needs["closed"] else None

    def _step_state(self, step: Step) -> State | None:
        """A verified status node offers the adviser only while open: its words say which."""
        prompts = {said.prompt for said in step.says}
        if step.kind == "status" and "status_options_open" in prompts:
            return "open"
        if step.kind == "status" and "status_options_closed" in prompts:
            return "closed"
        return None

    # -- comparing words -------------------------------------------------------------------------

    def _compare(self, index: int, says: list[Said], heard: list[Heard], *, exact: bool) -> None:
        step = self.steps[index]
        ok = len(says) == len(heard) and all(
            self._fits(said, got) for said, got in zip(says, heard, strict=True)
        )
        if not ok:
            how = "says" if exact else "says (without repeats)"
            self._problem(
                f"step {index + 1} ({step.node}, {step.choice}): the path says "
                f"{[s.prompt for s in says]} {[s.text for s in says]}; the engine {how} "
                f"{self._show(heard)}"
            )

    def _fits(self, said: Said, heard: Heard) -> bool:
        """The engine said the path's prompt, with the same text but for free sample values."""
        if said.prompt == "announcement":
            return said.text == heard.text or any(
                _same_values(template, said.text, heard.text) for template in self._holiday(heard)
            )
        template = self.flow.prompts.get(said.prompt, {}).get(heard.language)
        return template is not None and _same_values(_fields(template), said.text, heard.text)

    def _same_heard(self, a: Heard, b: Heard) -> bool:
        if a.language != b.language:
            return False
        if a.text == b.text:
            return True
        return any(
            _same_values(_fields(self.flow.text(p, a.language)), a.text, b.text)
            for p in self._prompts(a) & self._prompts(b)
        ) or any(_same_values(t, a.text, b.text) for t in self._holiday(a))

    def _holiday(self, heard: Heard) -> list[re.Pattern[str]]:
        holidays = self.flow.calendar.public_holidays
        if holidays is None or heard.language not in holidays.announcement:
            return []
        parts = holidays.announcement[heard.language].split("{holiday}")
        return [re.compile("(?P<holiday>.+?)".join(map(re.escape, parts)), re.DOTALL)]

    def _prompts(self, heard: Heard) -> set[str]:
        """The prompt ids whose text (with any placeholder values) is what was heard."""
        found = {
            prompt
            for prompt, texts in self.flow.prompts.items()
            if heard.language in texts and _fields(texts[heard.language]).fullmatch(heard.text)
        }
        if not found:
            found = {"announcement"}
        return found

    def _show(self, heard: list[Heard]) -> str:
        return str([f"{'/'.join(sorted(self._prompts(h)))}: {h.text}" for h in heard])

    def _problem(self, message: str) -> None:
        self.problems.append(f"{self.name}: {message}")

    def _stop(self, message: str) -> NoReturn:
        self._problem(message)
        raise ReplayStop(message)


def replay_problems(flow: Flow, report: PathReport, path: FlowPath, variant: int = 0) -> list[str]:
    """Every difference between `path` (listed in `report`) and the engine; [] when they agree."""
    return PathReplay(flow, report, variant).check(path)


# -- helpers ---------------------------------------------------------------------------------------


def _takes_input(step: Step) -> bool:
    choice = step.choice or ""
    if step.kind in ("menu", "gather"):
        return True
    if step.kind == "verify":
        return not choice.startswith("(already")
    if step.kind == "status":
        return not choice.startswith("(not verified")
    return False


def _auto_state(flow: Flow, step: Step) -> State | None:
    """What a step that runs without input needs of the clock."""
    choice = step.choice or ""
    match step.kind:
        case "hours":
            return "closed" if choice.endswith("closed)") or choice == "(holiday)" else "open"
        case "status":
            return "open" if choice == "(not verified, open)" else "closed"
        case "queue":
            if choice.startswith("(closed"):
                return "closed"
            node = flow.node(step.node)
            return "open" if getattr(node, "closed", None) is not None else None
    return None


def _mistakes(count: int, wrong: str | None, other: bool) -> list[Input]:
    """`count` mistakes: silence first, then wrong keys (one mistake: silence, or in the other
    variant a wrong key). Without a wrong key to press only silence is left."""
    if count == 1 and other and wrong is not None:
        return [Input(wrong, mistake="wrong")]
    return [
        Input(None, mistake="none") if n == 0 or wrong is None else Input(wrong, mistake="wrong")
        for n in range(count)
    ]


def _fitting(node: GatherNode) -> str:
    for length in range(node.min_digits, node.max_digits + 1):
        for digit in "1234567890":
            for digits in (digit * length, ("1234567890" * 5)[:length]):
                if _fits_gather(node, digits):
                    return digits
    raise AssertionError(f"no digits fit gather {node.store}")


def _not_fitting(node: GatherNode, other: bool) -> str:
    candidates = ["1" * (node.max_digits + 1)]
    if node.min_digits > 1:
        candidates.insert(0, "1" * (node.min_digits - 1))
    if node.pattern is not None:
        candidates.insert(0, "0" * node.min_digits)
    wrong = [c for c in candidates if not _fits_gather(node, c)]
    return wrong[0] if other else wrong[-1]


def _fits_gather(node: GatherNode, digits: str) -> bool:
    if not digits.isdigit() or not node.min_digits <= len(digits) <= node.max_digits:
        return False
    return node.pattern is None or re.fullmatch(node.pattern, digits) is not None


def _distinct(heard: list[Heard]) -> list[Heard]:
    return list(dict.fromkeys(heard))


def _fields(template: str) -> re.Pattern[str]:
    """A prompt's text as a pattern: each {placeholder} a named group (a repeat matches again)."""
    pattern: list[str] = []
    names: set[str] = set()
    for literal, name, _, _ in string.Formatter().parse(template):
        pattern.append(re.escape(literal))
        if name is not None:
            pattern.append(f"(?P={name})" if name in names else f"(?P<{name}>.+?)")
            names.add(name)
    return re.compile("".join(pattern), re.DOTALL)


def _same_values(template: re.Pattern[str], one: str, two: str) -> bool:
    """Both texts fit the template, with the same values but for the free placeholders."""
    first, second = template.fullmatch(one), template.fullmatch(two)
    if first is None or second is None:
        return False
    return all(
        first.group(name) == second.group(name)
        for name in template.groupindex
        if name not in FREE_PLACEHOLDERS
    )


def _middle(start: time, end: time) -> time:
    seconds = (_seconds(start) + _seconds(end)) // 2
    return time(seconds // 3600, seconds % 3600 // 60)


def _seconds(moment: time) -> int:
    return moment.hour * 3600 + moment.minute * 60 + moment.second


def _closed_time(plan: DayPlan) -> time | None:
    """A wall time the day is closed: midday when closed all day, else the evening or night."""
    hours = plan.hours
    if hours is None:
        return time(12, 0)
    if _seconds(hours.closes) <= 23 * 3600:
        return _middle(hours.closes, time(23, 59))
    if _seconds(hours.opens) >= 3600:
        return _middle(time(0, 0), hours.opens)
    return None


def _window(hours: OpeningRange | None) -> str | None:
    """An exception's hours as the path names them: 09:00-15:00 ("24:00" for midnight)."""
    if hours is None:
        return None
    closes = "24:00" if hours.closes == time.max else f"{hours.closes:%H:%M}"
    return f"{hours.opens:%H:%M}-{closes}"


def _where(outcome: Outcome) -> tuple[object, ...]:
    """What decides how a call goes on (paths.py's situation): skipped and failed are alike."""
    session = outcome.session
    verified = session.verification is Verification.VERIFIED
    return (
        session.node,
        _ending(outcome.ending),
        session.language,
        verified,
        session.verify_failures,
        session.attempts if session.node is not None else 0,  # mistakes at the waiting node
    )


def _ending(ending: AskKeys | JoinQueue | HangUp) -> str:
    match ending:
        case JoinQueue():
            return f"queue {ending.product}/{ending.theme}"
        case HangUp():
            return "hang-up"
        case AskKeys():
            return "waiting for keys"
