"""Erlang C: the waiting of calls offered at random to a group of advisers (an M/M/N queue).

Calls arrive as a Poisson stream, handling times are exponential, nobody hangs up while
waiting, and any free adviser takes the call that waited longest. From the offered load
A = calls per second x handling time (in erlangs) and N advisers:

- Erlang B by its recursion B(0) = 1, B(k) = A·B(k-1) / (k + A·B(k-1)): no factorials or
  powers, so it stays exact for hundreds of advisers where A^N / N! overflows;
- P(wait) = C = N·B / (N - A·(1 - B));
- ASA (mean wait over all calls) = C · h / (N - A);
- service level within t seconds = 1 - C · exp(-(N - A) · t / h).

Pure arithmetic: no Redis, no settings (docs/staffing.md).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from flows.errors import ErrorKind, KccError

MAX_ADVISERS = 10_000  # far beyond any contact centre; keeps a search for --target finite
_TARGET = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*/\s*(\d+(?:\.\d+)?)\s*$")


class StaffingInputError(KccError):
    """Figures that Erlang C cannot answer for (no load, too few advisers, a bad target)."""

    code = "invalid_staffing_input"
    kind = ErrorKind.INVALID


@dataclass(frozen=True)
class Load:
    calls_per_hour: float
    handle_seconds: float  # talk plus after-call work: the time an adviser is not free

    def __post_init__(self) -> None:
        if not math.isfinite(self.calls_per_hour) or self.calls_per_hour <= 0:
            raise StaffingInputError(
                "calls per hour must be a number above 0", calls_per_hour=str(self.calls_per_hour)
            )
        if not math.isfinite(self.handle_seconds) or self.handle_seconds <= 0:
            raise StaffingInputError(
                "the handling time must be a number of seconds above 0",
                handle_seconds=str(self.handle_seconds),
            )

    @property
    def erlangs(self) -> float:
        """Advisers' worth of work arriving: calls per second times the handling time."""
        return self.calls_per_hour * self.handle_seconds / 3600


@dataclass(frozen=True)
class Target:
    """A service-level goal: `share` of the calls answered within `seconds` (80/20)."""

    share: float  # 0 < share < 1
    seconds: float

    @classmethod
    def parse(cls, text: str) -> Target:
        found = _TARGET.match(text)
        if found is None:
            raise StaffingInputError(
                f"the target {text!r} is not PERCENT/SECONDS, e.g. 80/20 "
                "(80 % of calls answered within 20 seconds)",
                target=text,
            )
        percent, seconds = float(found[1]), float(found[2])
        if not 0 < percent < 100:
            raise StaffingInputError(
                f"the target's percentage must be above 0 and below 100, not {found[1]}",
                target=text,
            )
        return cls(share=percent / 100, seconds=seconds)

    def __str__(self) -> str:
        return f"{self.share * 100:g}/{self.seconds:g}"


@dataclass(frozen=True)
class Figures:
    advisers: int
    p_wait: float  # the share of calls that wait at all
    asa_seconds: float  # the mean wait over all calls (answered at once counts as 0)
    service_level: float  # the share answered within the service-level time
    sl_seconds: float


def erlang_b(erlangs: float, advisers: int) -> float:
    """The share of calls lost if there were no queue (Erlang B), by its stable recursion."""
    blocking = 1.0
    for k in range(1, advisers + 1):
        blocking = erlangs * blocking / (k + erlangs * blocking)
    return blocking


def erlang_c(load: Load, advisers: int, *, sl_seconds: float = 20) -> Figures:
    """P(wait), ASA and the service level within `sl_seconds` for `advisers` advisers."""
    if advisers < 1:
        raise StaffingInputError("the number of advisers must be at least 1", advisers=advisers)
    if sl_seconds < 0 or not math.isfinite(sl_seconds):
        raise StaffingInputError("the service-level time must be 0 seconds or more")
    spare = advisers - load.erlangs
    if spare <= 0:
        raise StaffingInputError(
            f"{advisers} advisers cannot keep up with {load.erlangs:g} erlangs of work "
            f"({load.calls_per_hour:g} calls an hour of {load.handle_seconds:g} s): the queue "
            f"grows without end; at least {math.floor(load.erlangs) + 1} advisers are needed",
            advisers=advisers,
        )
    blocking = erlang_b(load.erlangs, advisers)
    p_wait = advisers * blocking / (advisers - load.erlangs * (1 - blocking))
    asa = p_wait * load.handle_seconds / spare
    service_level = 1 - p_wait * math.exp(-spare * sl_seconds / load.handle_seconds)
    return Figures(advisers, p_wait, asa, service_level, sl_seconds)


def advisers_for(load: Load, target: Target) -> Figures:
    """The smallest number of advisers whose service level reaches the target."""
    first = math.floor(load.erlangs) + 1  # fewer can never keep up
    for advisers in range(first, MAX_ADVISERS + 1):
        figures = erlang_c(load, advisers, sl_seconds=target.seconds)
        if figures.service_level >= target.share:
            return figures
    raise StaffingInputError(
        f"more than {MAX_ADVISERS} advisers would be needed", erlangs=str(load.erlangs)
    )
