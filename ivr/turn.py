"""What the engine decides for one webhook, before it is written as TwiML."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Say:
    text: str
    language: str  # Twilio language code, e.g. nl-NL
    voice: str


@dataclass(frozen=True)
class AskKeys:
    """A <Gather> for keypad digits; no input falls through to a redirect."""

    prompt: list[Say]
    timeout: int
    num_digits: int | None  # None: until finish_on_key or timeout
    finish_on_key: str
    action_on_empty: bool = False  # True when "# alone" means something (skip)


@dataclass(frozen=True)
class JoinQueue:
    product: str
    theme: str
    priority: int


@dataclass(frozen=True)
class HangUp:
    pass


Ending = AskKeys | JoinQueue | HangUp


@dataclass
class Turn:
    says: list[Say] = field(default_factory=list)
    ending: Ending = field(default_factory=HangUp)
