"""Every path a caller can take through a flow, as a dry run: no clock, no store, no Twilio.

`flow_paths(flow, language)` walks the flow the way ivr/engine.py does and lists each way from
the start to an end (a queue or a hang-up), with the keys pressed and what is said, so that a
supervisor can read the whole menu at once. Branches that are not keys are paths too: the
opening hours (open, closed, a holiday, each calendar exception), the outcomes of an identity
check, the status node, a menu's used-up retries and a queue that is closed by the time the
caller reaches it.

Two rules keep the list finite and short:

- a path that comes back to a node it already passed ("press * for the main menu") ends with
  "back to <node>" and is not an end;
- a path that reaches a node in a situation (language, verified or not, open or closed) that an
  equally short or shorter path already went on from is not listed again: it ends with "<node>,
  as in paths a-b". Queues and hang-ups are always listed in full.
"""

from __future__ import annotations

import textwrap
from collections import deque
from dataclasses import dataclass, field, replace
from datetime import time, timedelta
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, computed_field

from flows.model import (
    END_KINDS,
    Calendar,
    CalendarException,
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
from flows.spoken_hours import HOURS, WEEKLY_HOURS, fill, hour_values
from flows.validator import SAMPLES, allowed_placeholders

# Speech estimate: the Polly voices read Dutch and English at roughly 150 words a minute, i.e.
# 2.5 words per second; good enough to spot a prompt that callers will not sit through.
WORDS_PER_SECOND = 2.5
# A prompt longer than this is flagged: callers hang up or forget the first options.
MAX_PROMPT_SECONDS = 30.0
# A menu with more options than this is flagged: callers cannot keep more choices in mind.
# Counted are the keys under `options` (including "back"); the `repeat` key is not a choice.
MAX_MENU_OPTIONS = 5
# The status text shown for a status node; which one a caller hears depends on the application.
SAMPLE_STATUS_PROMPT = "status_in_progress"
# Texts that are cut short in the text report after their first appearance.
SHORT_TEXT_CHARACTERS = 60


class Model(BaseModel):
    model_config = ConfigDict(frozen=True)


class Said(Model):
    """One thing the caller hears."""

    prompt: str  # prompt id; "announcement" for the calendar's day announcement
    text: str  # in the report's language, placeholders filled with sample values
    seconds: float  # estimated speaking time
    note: str | None = None  # when it is said, if not simply once


class Step(Model):
    """One node on a path and the branch taken there."""

    node: str
    kind: str
    # The key or outcome that leaves the node: "1", "# (skip)", "(closed)"; None when the node
    # always goes on the same way (say, goto).
    choice: str | None
    says: list[Said]


class EndKind(StrEnum):
    QUEUE = "queue"  # the caller joins a queue for an adviser
    HANGUP = "hangup"  # the call ends
    LOOP = "loop"  # back to a node earlier on the same path; not an end
    SAME_AS = "same_as"  # goes on as other listed paths do; not an end


class PathEnd(Model):
    kind: EndKind
    node: str  # the queue or hang-up node; the node looped back to or gone on from
    product: str | None = None  # queue only
    theme: str | None = None  # queue only
    same_as: tuple[int, int] | None = None  # SAME_AS only: first and last path number
    language: str  # the language the call is in by then


class FlowPath(Model):
    number: int  # 1-based, in menu order
    steps: list[Step]
    end: PathEnd

    @computed_field  # type: ignore[prop-decorator]
    @property
    def choices(self) -> list[str]:
        """The keys and outcomes along the path, as in the header of the text report."""
        return [step.choice for step in self.steps if step.choice is not None]


class WarningKind(StrEnum):
    LONG_PROMPT = "long_prompt"
    MANY_OPTIONS = "many_options"


class PathWarning(Model):
    kind: WarningKind
    subject: str  # the prompt or node id
    message: str


class PathReport(Model):
    flow: str
    language: str
    paths: list[FlowPath]
    warnings: list[PathWarning]

    @computed_field  # type: ignore[prop-decorator]
    @property
    def ends(self) -> dict[EndKind, int]:
        """How many paths end in each way, in EndKind order."""
        counts = {kind: 0 for kind in EndKind}
        for path in self.paths:
            counts[path.end.kind] += 1
        return counts


def flow_paths(flow: Flow, language: str | None = None) -> PathReport:
    """Every path through a valid `flow`, said in `language` (default: the flow's first)."""
    language = language or flow.default_language
    if language not in flow.languages:
        raise ValueError(
            f"unknown language {language!r} (the flow has {', '.join(flow.languages)})"
        )
    return _Walker(flow, language).report()


def spoken_seconds(text: str) -> float:
    return round(len(text.split()) / WORDS_PER_SECOND, 1)


# -- walking ---------------------------------------------------------------------------------

# "open": found open in the engine call now running (no key pressed since), so a queue reached
# before the next key finds it open too; "was_open": open when last looked at, but the caller has
# pressed keys since, so closing time may have passed.
Clock = Literal["unknown", "open", "was_open", "closed"]


@dataclass(frozen=True)
class _Situation:
    """What decides how the engine goes on from a node (see ivr/engine.py `_run`)."""

    node: str
    language: str
    verified: bool
    verify_failures: int  # a verify node passes straight to `unverified` once tries are used up
    clock: Clock  # what the clock said last (hours, status, queue); "unknown" before any


@dataclass(frozen=True)
class _Branch:
    choice: str | None
    says: list[Said]
    then: _Situation | PathEnd


@dataclass
class _Partial:
    order: tuple[int, ...]  # branch numbers taken: sorting by them gives menu order
    steps: list[Step]
    passed: frozenset[str]  # node ids on the path, to stop loops
    at: _Situation


@dataclass
class _Finished:
    order: tuple[int, ...]
    steps: list[Step]
    end: PathEnd
    same_as: _Situation | None = None


@dataclass
class _Walker:
    flow: Flow
    language: str
    # Situation -> the branch numbers of the path that went on from it; first come, first served
    # in breadth-first order, so the shortest way to a situation is the one listed in full.
    claimed: dict[_Situation, tuple[int, ...]] = field(default_factory=dict)

    def report(self) -> PathReport:
        start = _Situation(self.flow.start, self.language, False, 0, "unknown")
        todo = deque([_Partial((), [], frozenset(), start)])
        finished: list[_Finished] = []
        while todo:
            partial = todo.popleft()
            node_id = partial.at.node
            if node_id in partial.passed:
                end = PathEnd(kind=EndKind.LOOP, node=node_id, language=partial.at.language)
                finished.append(_Finished(partial.order, partial.steps, end))
                continue
            node = self.flow.node(node_id)
            if node.kind not in END_KINDS:
                situation = _claim(node, partial.at)
                if situation in self.claimed:
                    end = PathEnd(kind=EndKind.SAME_AS, node=node_id, language=partial.at.language)
                    finished.append(_Finished(partial.order, partial.steps, end, situation))
                    continue
                self.claimed[situation] = partial.order
            for number, branch in enumerate(self._branches(node, partial.at)):
                step = Step(node=node_id, kind=node.kind, choice=branch.choice, says=branch.says)
                order = (*partial.order, number)
                steps = [*partial.steps, step]
                if isinstance(branch.then, PathEnd):
                    finished.append(_Finished(order, steps, branch.then))
                else:
                    todo.append(_Partial(order, steps, partial.passed | {node_id}, branch.then))
        return PathReport(
            flow=self.flow.name,
            language=self.language,
            paths=self._numbered(finished),
            warnings=self._warnings(),
        )

    def _numbered(self, finished: list[_Finished]) -> list[FlowPath]:
        finished.sort(key=lambda f: f.order)
        numbers: dict[tuple[int, ...], tuple[int, int]] = {}
        for claim in self.claimed.values():
            inside = [i + 1 for i, f in enumerate(finished) if f.order[: len(claim)] == claim]
            numbers[claim] = (min(inside), max(inside))
        paths: list[FlowPath] = []
        for number, item in enumerate(finished, start=1):
            end = item.end
            if item.same_as is not None:
                end = end.model_copy(update={"same_as": numbers[self.claimed[item.same_as]]})
            paths.append(FlowPath(number=number, steps=item.steps, end=end))
        return paths

    # -- what each kind of node can do (mirrors Engine._run and the *_answer methods) ----------

    def _branches(self, node: Node, at: _Situation) -> list[_Branch]:
        match node:
            case SayNode():
                return [_Branch(None, [self._say(node.prompt, at)], replace(at, node=node.next))]
            case GotoNode():
                return [_Branch(None, [], replace(at, node=node.next))]
            case HoursNode():
                return self._hours(node, at)
            case MenuNode():
                return self._menu(node, at)
            case GatherNode():
                return self._gather(node, at)
            case VerifyNode():
                return self._verify(node, at)
            case StatusNode():
                return self._status(node, at)
            case QueueNode():
                return self._queue(node, at)
            case HangupNode():
                says = [self._say(node.prompt, at)] if node.prompt else []
                end = PathEnd(kind=EndKind.HANGUP, node=at.node, language=at.language)
                return [_Branch(None, says, end)]
        raise TypeError(f"unknown node {node!r}")

    def _hours(self, node: HoursNode, at: _Situation) -> list[_Branch]:
        """An ordinary day open or closed, then each day the calendar says something on."""
        opened = replace(at, node=node.open, clock="open")
        closed = replace(at, node=node.closed, clock="closed")
        branches = [_Branch("(open)", [], opened), _Branch("(closed)", [], closed)]
        calendar = self.flow.calendar
        holidays = calendar.public_holidays
        if holidays is not None and holidays.observe and at.language in holidays.announcement:
            # The engine fills in the day's name; the first observed holiday stands in for it.
            text = holidays.announcement[at.language].replace("{holiday}", holidays.observe[0])
            text = fill(text, hour_values(calendar, None, at.language))
            says = [self._plain(text)] if text else []  # the engine says no empty text
            branches.append(_Branch("(holiday)", says, closed))
        for exception in calendar.exceptions:
            if not _decides_a_day(calendar, exception):
                continue  # callers never hear it: another exception decides each of its days
            day = exception.date.isoformat()
            if exception.until is not None:
                day += f"..{exception.until.isoformat()}"
            announced = exception.announcement.get(at.language)
            if announced:  # the engine fills in the hours, the day's own ones too
                announced = fill(announced, hour_values(calendar, exception.hours, at.language))
            says = [self._plain(announced)] if announced else []
            if exception.hours is not None:
                hours = f"{_clock(exception.hours.opens)}-{_clock(exception.hours.closes)}"
                branches.append(_Branch(f"({day} {hours}: open)", says, opened))
                branches.append(_Branch(f"({day} {hours}: closed)", says, closed))
            else:
                branches.append(_Branch(f"({day}: closed)", says, closed))
        return branches

    def _menu(self, node: MenuNode, at: _Situation) -> list[_Branch]:
        prompt = self._say(node.prompt, at)
        if node.repeat is not None:
            prompt = prompt.model_copy(update={"note": f"{node.repeat} repeats it"})
        branches = []
        at = _pressed(at)
        for key in node.options:
            option = node.option(key)
            assert option is not None
            then = replace(at, node=option.next, language=option.language or at.language)
            choice = key if option.language is None else f"{key} ({option.language})"
            branches.append(_Branch(choice, [prompt], then))
        says = [
            prompt,
            *self._complaints(at, node.retries, node.no_input, node.invalid),
        ]
        fail = replace(at, node=node.on_fail)
        branches.append(_Branch(f"({self._mistakes(node.retries)})", says, fail))
        return branches

    def _gather(self, node: GatherNode, at: _Situation) -> list[_Branch]:
        at = _pressed(at)
        prompt = self._say(node.prompt, at)
        says = [prompt, *self._complaints(at, node.retries, node.no_input, node.invalid)]
        return [
            _Branch(f"digits ({node.store})", [prompt], replace(at, node=node.next)),
            _Branch(f"({self._mistakes(node.retries)})", says, replace(at, node=node.on_fail)),
        ]

    def _verify(self, node: VerifyNode, at: _Situation) -> list[_Branch]:
        verified = replace(at, node=node.verified, verified=True)
        unverified = replace(at, node=node.unverified)
        if at.verified:
            return [_Branch("(already verified)", [], verified)]
        if at.verify_failures >= node.tries:
            return [_Branch("(already failed)", [], unverified)]
        verified, unverified = _pressed(verified), _pressed(unverified)
        ask = self._say("verify_number_required" if node.required else "verify_number_optional", at)
        born = self._say("verify_date_of_birth", at)
        # The tries are per call: wrong details at an earlier verify node count here too.
        left = node.tries - at.verify_failures
        tries = "" if left == 1 else f" {left}×"
        # Wrong details, a locked number and, after the retries, no or a malformed date all end
        # as "failed" with the same words; only wrong details count towards `tries`.
        mismatch = self._say("verify_mismatch", at).model_copy(
            update={"note": f"after each wrong number and date{tries}"}
        )
        return [
            _Branch(
                "number + date (verified)",
                [ask, born, self._say("verify_ok", at)],
                verified,
            ),
            _Branch(
                "number + date (not verified)",
                [ask, born, mismatch, self._say("verify_failed", at)],
                replace(unverified, verify_failures=node.tries),
            ),
            # "#" alone or silence; also where too short or long numbers end after the retries.
            _Branch("# (skip)", [ask, self._say("verify_skipped", at)], unverified),
        ]

    def _status(self, node: StatusNode, at: _Situation) -> list[_Branch]:
        # The engine looks at the clock to send the caller to the adviser: open at that moment.
        adviser = replace(at, node=node.adviser, clock="open")
        goodbye = replace(at, node=node.goodbye)
        if not at.verified:
            # No input: the engine sends an unverified caller on by the clock alone.
            branches = []
            if at.clock != "closed":
                branches.append(_Branch("(not verified, open)", [], adviser))
            if at.clock not in ("open", "was_open"):
                closed = replace(goodbye, clock="closed")
                branches.append(_Branch("(not verified, closed)", [], closed))
            return branches
        goodbye = _pressed(goodbye)
        sample = self._say(SAMPLE_STATUS_PROMPT, at).model_copy(
            update={"note": "or another status_* text, by the application's status"}
        )
        said_open = [sample, self._say("status_options_open", at)]
        said_closed = [sample, self._say("status_options_closed", at)]
        # 2 says it again; any other key or none counts as a mistake, 1 only while open.
        mistakes = f"({self._mistakes(node.retries)})"
        branches = []
        if at.clock != "closed":
            branches.append(_Branch("1 (adviser)", said_open, adviser))
            branches.append(_Branch(mistakes, said_open, goodbye))
        if at.clock == "closed":
            branches.append(_Branch(mistakes, said_closed, goodbye))
        return branches

    def _queue(self, node: QueueNode, at: _Situation) -> list[_Branch]:
        says = [self._say(node.prompt, at)] if node.prompt else []
        joined = PathEnd(
            kind=EndKind.QUEUE,
            node=at.node,
            product=node.product,
            theme=node.theme,
            language=at.language,
        )
        if node.closed is None:
            return [_Branch(None, says, joined)]
        closed = replace(at, node=node.closed, clock="closed")
        if at.clock == "closed":
            return [_Branch("(closed)", [], closed)]
        if at.clock == "open":
            # Found open in this same engine call, before any key: the queue finds it open too.
            return [_Branch(None, says, joined)]
        # Open when the clock was looked at, but keys were pressed since: closing time can pass.
        label = "(closed meanwhile)" if at.clock == "was_open" else "(closed)"
        return [_Branch(None, says, joined), _Branch(label, [], closed)]

    # -- what is said ---------------------------------------------------------------------------

    def _say(self, prompt: str, at: _Situation) -> Said:
        text = _render(self.flow, prompt, at.language)
        return Said(prompt=prompt, text=text, seconds=spoken_seconds(text))

    def _plain(self, text: str) -> Said:
        return Said(prompt="announcement", text=text, seconds=spoken_seconds(text))

    def _complaints(
        self, at: _Situation, retries: int, no_input: str | None, invalid: str | None
    ) -> list[Said]:
        """Said after each mistake: no key at all, or a key that is not an option."""
        times = "" if retries == 0 else f", up to {retries + 1}×"
        notes = ((no_input, f"after no key{times}"), (invalid, f"after a wrong key{times}"))
        return [
            self._say(prompt, at).model_copy(update={"note": note})
            for prompt, note in notes
            if prompt is not None
        ]

    @staticmethod
    def _mistakes(retries: int) -> str:
        # The engine asks again `retries` times; one more mistake leaves the node.
        return "no or wrong key" if retries == 0 else f"no or wrong key {retries + 1}×"

    # -- warnings -------------------------------------------------------------------------------

    def _warnings(self) -> list[PathWarning]:
        warnings: list[PathWarning] = []
        for prompt in self.flow.prompts:
            text = _render(self.flow, prompt, self.language)
            seconds = spoken_seconds(text)
            if seconds > MAX_PROMPT_SECONDS:
                words = len(text.split())
                warnings.append(
                    PathWarning(
                        kind=WarningKind.LONG_PROMPT,
                        subject=prompt,
                        message=(
                            f"prompt {prompt} ({self.language}) takes about {seconds:g} s "
                            f"({words} words), more than {MAX_PROMPT_SECONDS:.0f} s"
                        ),
                    )
                )
        for node_id, node in self.flow.nodes.items():
            if isinstance(node, MenuNode) and len(node.options) > MAX_MENU_OPTIONS:
                keys = " ".join(node.options)
                warnings.append(
                    PathWarning(
                        kind=WarningKind.MANY_OPTIONS,
                        subject=node_id,
                        message=(
                            f"menu {node_id} has {len(node.options)} options ({keys}), "
                            f"more than {MAX_MENU_OPTIONS}"
                        ),
                    )
                )
        return warnings


def _decides_a_day(calendar: Calendar, exception: CalendarException) -> bool:
    """Whether `exception` decides at least one of its days, as ivr/hours.py picks: of the
    exceptions covering a date the one spanning the fewest days, ties to the one listed first."""

    def span(item: CalendarException) -> int:
        return ((item.until or item.date) - item.date).days

    for offset in range(span(exception) + 1):
        day = exception.date + timedelta(days=offset)
        covering = [item for item in calendar.exceptions if item.covers(day)]
        if min(covering, key=span) is exception:
            return True
    return False


def _pressed(at: _Situation) -> _Situation:
    """The caller pressed keys (or let the time run out): an open clock may have closed since."""
    return replace(at, clock="was_open") if at.clock == "open" else at


def _claim(node: Node, at: _Situation) -> _Situation:
    """The situation as far as it decides how the call goes on from `node`: a menu, a gather and
    a status node go on alike from "open" and "was_open" (they wait for keys, or look at the
    clock again)."""
    if isinstance(node, MenuNode | GatherNode | StatusNode):
        return _pressed(at)
    return at


def _clock(moment: time) -> str:
    # The model stores "24:00" as the last instant of the day.
    return "24:00" if moment.second == 59 else f"{moment:%H:%M}"


def _render(flow: Flow, prompt: str, language: str) -> str:
    """The prompt as said, with sample values for its placeholders: the validator's, the flow's
    own product names and its weekly hours ({hours} as on a day without hours of its own)."""
    text = flow.text(prompt, language)
    allowed = allowed_placeholders(prompt)
    values = {name: SAMPLES[name] for name in allowed}
    hours = hour_values(flow.calendar, None, language)
    values[WEEKLY_HOURS], values[HOURS] = hours[WEEKLY_HOURS], hours[HOURS]
    if "product" in allowed and flow.products:
        # The engine says the product's name in the caller's language, not a Dutch sample.
        values["product"] = next(iter(flow.products.values())).get(language, values["product"])
    return text.format(**values)


# -- text report ---------------------------------------------------------------------------------


def format_report(report: PathReport, *, full: bool = False, width: int = 100) -> list[str]:
    """The report as lines of text: one block per path, then a summary and the warnings.

    Paths come in menu order, so each shares its start with the one above: unless `full`, a
    block says only what is said after that shared start, and a text is given in full the first
    time and cut short after that.
    """
    lines: list[str] = []
    shown: set[tuple[str, str]] = set()
    above: list[Said] = []
    for path in report.paths:
        lines.append(f"{path.number}. {_header(path)}")
        said = [line for step in path.steps for line in step.says]
        shared = 0 if full else _shared_start(above, said)
        if shared:
            lines.append(f"   … as path {path.number - 1} up to {said[shared - 1].prompt}")
        for line in said[shared:]:
            lines.extend(_said_lines(line, None if full else shown, width))
        above = said
        lines.append("")
    ends = report.ends
    lines.append(f"{len(report.paths)} paths ({report.flow}, language {report.language})")
    lines.append(
        f"  {ends[EndKind.QUEUE]} end in a queue, {ends[EndKind.HANGUP]} hang up, "
        f"{ends[EndKind.LOOP]} go back to an earlier node, "
        f"{ends[EndKind.SAME_AS]} go on as other paths"
    )
    if report.warnings:
        lines.append(f"{len(report.warnings)} warning(s):")
        lines.extend(f"  warning: {warning.message}" for warning in report.warnings)
    else:
        lines.append("no warnings")
    return lines


def _shared_start(above: list[Said], said: list[Said]) -> int:
    shared = 0
    while shared < min(len(above), len(said)) and above[shared] == said[shared]:
        shared += 1
    return shared


def _header(path: FlowPath) -> str:
    route = " → ".join(path.choices) or "(no choice)"
    end = path.end
    match end.kind:
        case EndKind.QUEUE:
            target = f"⇒ queue {end.product}/{end.theme}"
        case EndKind.HANGUP:
            target = f"⇒ hang up ({end.node})"
        case EndKind.LOOP:
            target = f"→ back to {end.node}"
        case EndKind.SAME_AS:
            first, last = end.same_as or (0, 0)
            numbers = f"path {first}" if first == last else f"paths {first}-{last}"
            target = f"→ {end.node}, as in {numbers}"
    return f"{route}  {target}"


def _said_lines(said: Said, shown: set[tuple[str, str]] | None, width: int) -> list[str]:
    key = (said.prompt, said.text)
    text = said.text
    if shown is not None:
        if key in shown and len(text) > SHORT_TEXT_CHARACTERS:
            text = text[:SHORT_TEXT_CHARACTERS].rsplit(" ", 1)[0] + " …"
        shown.add(key)
    note = f", {said.note}" if said.note else ""
    head = f"   {said.prompt} ({said.seconds:g} s{note}): "
    return textwrap.wrap(
        f"{head}“{text}”",
        width=width,
        subsequent_indent=" " * 6,
        break_on_hyphens=False,
    ) or [head]
