"""Typed model of a call flow document (flows/*.yaml).

The YAML loader (flows/loader.py) turns a document into these models; the checks that span
several nodes (targets, reachability, loops, translations) live in flows/validator.py.
"""

from __future__ import annotations

import datetime as dt
import re
from datetime import time
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from flows.errors import WrapUpCodeUnknown
from flows.problems import FlowValueError

NodeId = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$")]
PromptId = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$")]
Key = Annotated[str, Field(pattern=r"^[0-9*#]$")]

# Prompts the engine itself speaks (queue announcements, apologies); every flow must define them.
SYSTEM_PROMPTS: tuple[str, ...] = (
    "queue_position",  # {position}: the caller's place in the line
    "queue_hold",  # said between hold music/pauses, may be empty
    "error_apology",  # something failed; the caller is put through to the general queue
    "error_call_back",  # something failed while closed or the queue is unreachable
    "queue_full",  # Twilio refused the caller a place in the queue
    "queue_return",  # the adviser did not answer; the caller stays at the head of the line
    "call_end",  # after the conversation, when the adviser hung up first
    "queue_wait",  # {minutes}: the estimated wait, said only when there is enough data
    "callback_offer",  # after a long wait: press 1 to be called back, keeping your place
    "callback_confirmed",  # you will be called back; you can hang up now
    "callback_greeting",  # said to the caller when Justis calls back, before the adviser
)

# Prompts of identity verification; every flow with a verify node must define them.
VERIFY_PROMPTS: tuple[str, ...] = (
    "verify_number_required",  # ask for the application number (the question needs it)
    "verify_number_optional",  # offer it: # alone skips
    "verify_number_invalid",  # not the right number of digits
    "verify_date_of_birth",  # ask for DDMMYYYY
    "verify_date_invalid",  # not a real date, in the future or before 1900
    "verify_mismatch",  # unknown number, wrong date or locked: always the same words
    "verify_failed",  # tries used up; the call goes on unverified
    "verify_skipped",  # no number; the call goes on unverified
    "verify_ok",  # verified
    "verify_no_input",  # nothing pressed
)

# Prompts of the self-service status; every flow with a status node must define them.
STATUS_PROMPTS: tuple[str, ...] = (
    "status_received",
    "status_in_progress",
    "status_waiting_for_information",
    "status_issued",
    "status_refused",
    "status_objection_in_progress",
    "status_options_open",  # 1: an adviser, 2: again
    "status_options_closed",  # 2: again
)

# Prompts of a transfer to a department, said to the department before it is connected; every
# flow with departments must define them.
DEPARTMENT_PROMPTS: tuple[str, ...] = (
    "department_whisper",  # {product}, {question}: what the transferred call is about
    "department_whisper_note",  # {note}: the adviser's note, said after it when there is one
)

_HOURS_RANGE = re.compile(r"^(\d{2}):(\d{2})-(\d{2}):(\d{2})$")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Weekday(StrEnum):
    MONDAY = "monday"
    TUESDAY = "tuesday"
    WEDNESDAY = "wednesday"
    THURSDAY = "thursday"
    FRIDAY = "friday"
    SATURDAY = "saturday"
    SUNDAY = "sunday"


class OpeningRange(Strict):
    """Opening hours of one day, from `opens` up to but not including `closes` (local time)."""

    opens: time
    closes: time

    @model_validator(mode="before")
    @classmethod
    def _from_text(cls, value: object) -> object:
        return _range_fields(value) if isinstance(value, str) else value


def _range_fields(text: str) -> dict[str, time]:
    """'09:00-17:00' -> opens/closes; '24:00' closes at midnight."""
    match = _HOURS_RANGE.match(text.strip())
    if not match:
        raise FlowValueError("hours_format", text=text)
    h1, m1, h2, m2 = (int(g) for g in match.groups())
    if h1 > 23 or h2 > 24 or m1 > 59 or m2 > 59 or (h2 == 24 and m2 != 0):
        raise FlowValueError("hours_invalid", text=text)
    closes = time(23, 59, 59, 999999) if h2 == 24 else time(h2, m2)
    if closes <= time(h1, m1):
        raise FlowValueError("hours_reversed", text=text)
    return {"opens": time(h1, m1), "closes": closes}


class PublicHolidays(Strict):
    country: str = "NL"
    # Names as the `holidays` package gives them in English ("King's Day", "Ascension Day" ...).
    observe: list[str]
    # Said to callers on such a day; "{holiday}" is replaced by the holiday's name.
    announcement: dict[str, str]


class CalendarException(Strict):
    """A closure (no `hours`) or a shortened/extended day, for one date or a range of dates."""

    date: dt.date
    until: dt.date | None = None
    hours: OpeningRange | None = None
    announcement: dict[str, str]

    @model_validator(mode="after")
    def _until_after_date(self) -> CalendarException:
        if self.until is not None and self.until < self.date:
            raise FlowValueError("until_before_date")
        return self

    def covers(self, day: dt.date) -> bool:
        return self.date <= day <= (self.until or self.date)


class Calendar(Strict):
    timezone: str = "Europe/Amsterdam"
    weekly: dict[Weekday, OpeningRange]
    public_holidays: PublicHolidays | None = None
    exceptions: list[CalendarException] = []
    # Per language: the reason given (GET /api/hours, the supervisor's calendar) on a day the
    # weekly hours leave closed, e.g. a Saturday; "{weekday}" is the day's name. Unset: a
    # built-in text (flows/spoken_hours.py).
    weekly_closed_reason: dict[str, str] | None = None


class Outage(Strict):
    """A message said at the start of every call, before anything else (a breakdown, a known
    problem); switched on and off from the supervisor page without touching the rest."""

    active: bool = False
    prompt: dict[str, str]  # per language; a language without one hears the first language's


class Voice(Strict):
    language: str  # Twilio <Say language>, e.g. nl-NL
    voice: str  # Twilio <Say voice>, e.g. Polly.Lotte


MusicUrl = Annotated[str, Field(pattern=r"^https?://\S+$")]
# Twilio's own hold music: what a held caller hears when the flow names none for the language
TWILIO_HOLD_MUSIC = "http://com.twilio.music.classical.s3.amazonaws.com/BusyStrings.mp3"


class QueueSettings(Strict):
    # URL of an audio file, or one per language ({nl: URL, en: URL}); None: silence between
    # announcements in the queue, Twilio's classical music on hold in a conversation
    hold_music: MusicUrl | dict[str, MusicUrl] | None = None
    announce_every: int = Field(default=60, ge=10, le=600)  # seconds between announcements
    callback_after: int = Field(default=600, ge=60, le=7200)  # seconds before a callback is offered
    general_product: str = "general"  # where failed menus and errors send a call
    general_theme: str = "general"

    def music_for(self, language: str) -> str | None:
        """The hold music a caller in this language hears, if the flow names one."""
        if isinstance(self.hold_music, dict):
            return self.hold_music.get(language)
        return self.hold_music

    def conversation_hold_music(self, language: str) -> str:
        """What a caller hears in a conversation's conference: never silence."""
        return self.music_for(language) or TWILIO_HOLD_MUSIC


class SayNode(Strict):
    kind: Literal["say"]
    prompt: PromptId
    next: NodeId


class MenuOption(Strict):
    next: NodeId
    language: str | None = None  # switch the rest of the call to this language


class MenuNode(Strict):
    kind: Literal["menu"]
    prompt: PromptId
    options: dict[Key, NodeId | MenuOption]
    repeat: Key | None = None  # key that says the menu again
    retries: int = Field(default=3, ge=0, le=9)
    timeout: int = Field(default=5, ge=1, le=60)
    no_input: PromptId | None = None  # said when the caller pressed nothing
    invalid: PromptId | None = None  # said after a key that is not an option
    on_fail: NodeId  # where the call goes when the retries are used up

    def option(self, key: str) -> MenuOption | None:
        target = self.options.get(key)
        if target is None or isinstance(target, MenuOption):
            return target
        return MenuOption(next=target)


class GatherNode(Strict):
    kind: Literal["gather"]
    prompt: PromptId
    store: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$")]  # session variable for the digits
    min_digits: int = Field(default=1, ge=1, le=40)
    max_digits: int = Field(default=20, ge=1, le=40)
    finish_on_key: Literal["#", "*", ""] = "#"
    pattern: str | None = None  # full-match regular expression the digits must satisfy
    timeout: int = Field(default=5, ge=1, le=60)
    retries: int = Field(default=3, ge=1, le=9)
    no_input: PromptId
    invalid: PromptId
    next: NodeId
    on_fail: NodeId

    @model_validator(mode="after")
    def _check(self) -> GatherNode:
        if self.max_digits < self.min_digits:
            raise FlowValueError("max_below_min", max_field="max_digits", min_field="min_digits")
        if self.pattern is not None:
            try:
                re.compile(self.pattern)
            except re.error as exc:
                raise FlowValueError("pattern_invalid", reason=str(exc)) from exc
            # A quantified group inside a quantifier can take exponential time on a long input,
            # stalling every call on the instance; digit patterns never need one.
            if re.search(r"\)[*+?{]", self.pattern):
                raise FlowValueError("pattern_repeats_group")
        return self


class VerifyNode(Strict):
    """Identity check: application number (ended with #) and date of birth (DDMMYYYY).

    `required` only changes the words: a caller without a number can always press # alone and
    go on unverified; nobody is trapped.
    """

    kind: Literal["verify"]
    required: bool = False
    tries: int = Field(default=3, ge=1, le=5)  # wrong number/date combinations per call
    retries: int = Field(default=2, ge=0, le=5)  # re-asks for silence or malformed input
    number_min_digits: int = Field(default=6, ge=1, le=20)
    number_max_digits: int = Field(default=12, ge=1, le=20)
    timeout: int = Field(default=10, ge=3, le=60)
    verified: NodeId
    unverified: NodeId  # failed, locked or skipped

    @model_validator(mode="after")
    def _check(self) -> VerifyNode:
        if self.number_max_digits < self.number_min_digits:
            raise FlowValueError(
                "max_below_min", max_field="number_max_digits", min_field="number_min_digits"
            )
        return self


class StatusNode(Strict):
    """Self-service: tells a verified caller the status of their application."""

    kind: Literal["status"]
    adviser: NodeId  # 1: speak to an adviser (offered only while open)
    goodbye: NodeId  # after the retries, or when the caller is not verified and it is closed
    retries: int = Field(default=2, ge=0, le=5)
    timeout: int = Field(default=6, ge=1, le=60)


class HoursNode(Strict):
    kind: Literal["hours"]
    open: NodeId
    closed: NodeId


class QueueNode(Strict):
    kind: Literal["queue"]
    product: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$", max_length=40)]
    theme: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$")]
    priority: int = Field(default=0, ge=0, le=9)
    prompt: PromptId | None = None  # said before the caller joins the queue
    closed: NodeId | None = None  # where a call goes that reaches the queue after closing time


class HangupNode(Strict):
    kind: Literal["hangup"]
    prompt: PromptId | None = None


class GotoNode(Strict):
    kind: Literal["goto"]
    next: NodeId


Node = (
    SayNode
    | MenuNode
    | GatherNode
    | VerifyNode
    | StatusNode
    | HoursNode
    | QueueNode
    | HangupNode
    | GotoNode
)

NODE_KINDS: dict[str, type[BaseModel]] = {
    "say": SayNode,
    "menu": MenuNode,
    "gather": GatherNode,
    "verify": VerifyNode,
    "status": StatusNode,
    "hours": HoursNode,
    "queue": QueueNode,
    "hangup": HangupNode,
    "goto": GotoNode,
}

# Nodes that wait for the caller; every loop in a flow must pass through one of them.
WAITING_KINDS = frozenset({"menu", "gather", "verify", "status"})
# Nodes where a call leaves the flow.
END_KINDS = frozenset({"queue", "hangup"})


# Twilio queue names are "kcc-<product>" and may be 64 characters at most.
ProductId = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$", max_length=40)]
ThemeId = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$")]


class Labels(Strict):
    """What the staff pages show for the flow's products, themes and nodes, per language (the
    callers never hear these: the spoken names of products stay under `products`). Each is
    optional; a page shows the id of a product or theme without one."""

    products: dict[ProductId, dict[str, str]] = {}
    themes: dict[ThemeId, dict[str, str]] = {}
    nodes: dict[NodeId, dict[str, str]] = {}


DepartmentId = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$", max_length=40)]
# E.164: a plus, a country code that does not start with 0, at most 15 digits in all.
_E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")


class Department(Strict):
    """A department of Justis that an adviser can transfer a call to (issue 12)."""

    name: dict[str, str]  # per language, as the staff pages show it
    phone: str  # E.164, e.g. "+31700000101"; Twilio dials it
    language: str | None = None  # the language of the whisper; None: the flow's first
    products: list[ProductId] = []  # the products it handles (for the desk; may be empty)
    # Its own opening hours, in the calendar format of the KCC's; None: open when the KCC is.
    hours: Calendar | None = None

    @field_validator("phone", mode="before")
    @classmethod
    def _phone(cls, value: object) -> object:
        if isinstance(value, bool):
            return value  # the model's own "not text"
        if isinstance(value, int | float):
            # YAML reads +31700000101 without quotes as a number and drops the plus.
            raise FlowValueError("phone_unquoted", number=str(value))
        if isinstance(value, str) and not _E164.match(value):
            raise FlowValueError("phone_not_e164", text=value)
        return value


WrapUpCode = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$", max_length=64)]


class WrapUpCodes(Strict):
    """What an adviser can note as the subject of a call after it (the desk's wrap-up form),
    for reports: a shared list every call offers, and each product's own. Each code has a label
    per language, as the desk shows it. In the desk's order: the product's own, then shared."""

    shared: dict[WrapUpCode, dict[str, str]] = {}
    per_product: dict[ProductId, dict[WrapUpCode, dict[str, str]]] = {}

    def for_product(self, product: str | None) -> dict[str, dict[str, str]]:
        """The codes a call of `product` can be wrapped up with (shared only for None)."""
        own = self.per_product.get(product, {}) if product is not None else {}
        return {**own, **self.shared}

    def check(self, product: str | None, code: str) -> None:
        """Raise `WrapUpCodeUnknown` unless a call of `product` can be wrapped up with `code`."""
        if code not in self.for_product(product):
            raise WrapUpCodeUnknown(code, product)


SURVEY_TEXTS: tuple[str, ...] = ("question", "retry", "thanks", "no_mark")


class Survey(Strict):
    """The satisfaction survey after a conversation (issue 13): when the adviser ends it and the
    caller is still on the line, the caller is asked for a mark from 1 to 10, typed and ended
    with #. Each text per language of the flow."""

    enabled: bool = True
    question: dict[str, str]  # asks for the mark, and says how (1 to 10, then #)
    retry: dict[str, str]  # said before the question again, after 0, silence or a wrong mark
    thanks: dict[str, str]  # after a mark; then the call ends
    no_mark: dict[str, str]  # goodbye after the second try without a mark; then the call ends
    timeout: int = Field(default=8, ge=3, le=30)  # seconds of silence before it counts as none

    def text(self, name: str, language: str) -> str:
        texts: dict[str, str] = getattr(self, name)
        return texts[language]


class Flow(Strict):
    name: str
    languages: list[str] = Field(min_length=1)  # the first is the language a call starts in
    voices: dict[str, Voice]
    # Every product a call can be queued for, with its spoken name per language.
    products: dict[ProductId, dict[str, str]]
    labels: Labels = Labels()  # what the staff pages show (optional)
    prompts: dict[PromptId, dict[str, str]]
    calendar: Calendar
    queue: QueueSettings = QueueSettings()
    # Where advisers can transfer a call to, by key (optional).
    departments: dict[DepartmentId, Department] = {}
    # What an adviser can note after a call, per product (optional: without it, none).
    wrap_up_codes: WrapUpCodes = WrapUpCodes()
    # The satisfaction survey after a conversation (optional: without it, none).
    survey: Survey | None = None
    outage: Outage | None = None  # optional: a message before the menu while active
    start: NodeId
    nodes: dict[NodeId, Annotated[Node, Field(discriminator="kind")]]

    @property
    def default_language(self) -> str:
        return self.languages[0]

    def node(self, node_id: str) -> Node:
        return self.nodes[node_id]

    def text(self, prompt: str, language: str) -> str:
        return self.prompts[prompt][language]

    def themes(self) -> list[str]:
        """Every theme a call can be queued with: the queue nodes' and the general one."""
        found = [n.theme for n in self.nodes.values() if isinstance(n, QueueNode)]
        return list(dict.fromkeys([*found, self.queue.general_theme]))


def targets(node: Node) -> list[tuple[str, str]]:
    """(field, node id) for every node this node can lead to."""
    match node:
        case SayNode() | GotoNode():
            return [("next", node.next)]
        case VerifyNode():
            return [("verified", node.verified), ("unverified", node.unverified)]
        case StatusNode():
            return [("adviser", node.adviser), ("goodbye", node.goodbye)]
        case MenuNode():
            found = [(f"options.{key}", node.option(key).next) for key in node.options]  # type: ignore[union-attr]
            return [*found, ("on_fail", node.on_fail)]
        case GatherNode():
            return [("next", node.next), ("on_fail", node.on_fail)]
        case HoursNode():
            return [("open", node.open), ("closed", node.closed)]
        case QueueNode():
            return [("closed", node.closed)] if node.closed else []
        case HangupNode():
            return []
    raise TypeError(f"unknown node {node!r}")


def prompts_used(node: Node) -> list[tuple[str, str]]:
    """(field, prompt id) for every prompt a node speaks."""
    fields = ("prompt", "no_input", "invalid")
    return [(f, getattr(node, f)) for f in fields if getattr(node, f, None)]
