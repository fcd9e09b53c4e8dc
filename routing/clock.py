"""Clocks the engine is given, so tests and dry runs can pin the time."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Protocol
from zoneinfo import ZoneInfo

# The contact centre's own time: "today" on the wallboard is its day, whatever the server's.
CENTRE_TIME = ZoneInfo("Europe/Amsterdam")


def centre_day(at: datetime) -> str:
    """The contact centre's date (ISO) at the instant `at`."""
    return at.astimezone(CENTRE_TIME).date().isoformat()


class Clock(Protocol):
    def now(self) -> datetime: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class FixedClock:
    """Always the same instant (KCC_NOW, `kcc call --at`); `advance` helps tests."""

    def __init__(self, at: datetime) -> None:
        if at.tzinfo is None:
            raise ValueError("a pinned time needs a UTC offset, e.g. 2026-12-24T16:30+01:00")
        self._at = at.astimezone(UTC)

    def now(self) -> datetime:
        return self._at

    def set(self, at: datetime) -> None:
        self._at = at.astimezone(UTC)


class ShiftedClock:
    """Starts at a chosen instant and then runs on (KCC_NOW): the calendar sees the chosen day,
    while timers (wrap-up, offers) still see time pass."""

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("a pinned time needs a UTC offset, e.g. 2026-12-24T16:30+01:00")
        self._offset = start.astimezone(UTC) - datetime.now(UTC)

    def now(self) -> datetime:
        return datetime.now(UTC) + self._offset
