"""The forecast: expected calls per weekday and opening hour, from the call records of the last
full weeks, and the advisers Erlang C needs for them to reach a service-level target.

- The period is the N full weeks (Monday to Sunday, the centre's time zone) before the week of
  `now`; the week under way is left out, as its days are not over.
- A weekday-and-hour cell is a mean over the dates it was open: a date on which the calendar
  closed that hour (a public holiday, an exception such as Christmas or a shortened 24 December)
  is skipped, so it does not pull the mean down. An open hour without calls counts as 0. An hour
  counts as open when the centre is open for any part of it.
- Calls offered to advisers are the calls that entered an adviser queue (`queued_at`), counted
  in the hour they entered it: that is when they load the advisers. All incoming calls are
  counted in the hour they started.
- The handling time is the mean talk plus wrap-up time of the answered calls of the period; when
  no record has it, the given default is used and the forecast says so.

Pure domain code: a database engine and the flow's opening hours in, figures out (docs/staffing.md).
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, and_, func, or_, select
from sqlmodel import col

from flows.errors import ErrorKind, KccError
from flows.model import Weekday
from ivr.hours import OpeningHours
from ivr.records import CallRecord
from routing.staffing.erlang import Load, Target, advisers_for

DEFAULT_WEEKS = 8
MAX_WEEKS = 52
DEFAULT_TARGET = "80/20"
DEFAULT_HANDLE_SECONDS = 300.0
MAX_HANDLE_SECONDS = 4 * 3600  # a call's session lives 4 h: no handling time is longer
_TARGET = re.compile(r"^\s*(\d{1,3})\s*/\s*(\d{1,4})\s*$")
_WEEKDAYS: tuple[Weekday, ...] = tuple(Weekday)  # Monday first, like date.weekday()


class ForecastInputError(KccError):
    """A forecast asked for with figures it cannot use; `code` says which."""

    kind = ErrorKind.INVALID

    def __init__(self, code: str, message: str, **params: str | int) -> None:
        super().__init__(message, **params)
        self.code = code


class HandleTimeSource(StrEnum):
    RECORDS = "records"  # the mean of the answered calls' talk plus wrap-up
    DEFAULT = "default"  # no record had it: the default handling time


def checked_weeks(weeks: int) -> int:
    if not 1 <= weeks <= MAX_WEEKS:
        raise ForecastInputError(
            "invalid_weeks",
            f"the number of weeks must be 1 to {MAX_WEEKS}, not {weeks}",
            weeks=weeks,
            max=MAX_WEEKS,
        )
    return weeks


def parse_target(text: str) -> Target:
    """'80/20': 80 % of the calls answered within 20 seconds (percent 1-99, seconds 1-600)."""
    found = _TARGET.match(text)
    if found is None or not (1 <= int(found[1]) <= 99 and 1 <= int(found[2]) <= 600):
        raise ForecastInputError(
            "invalid_target",
            f"the target {text!r} is not PERCENT/SECONDS with a percentage of 1 to 99 and "
            "1 to 600 seconds, e.g. 80/20 (80 % of the calls answered within 20 seconds)",
            target=text,
        )
    return Target(share=int(found[1]) / 100, seconds=int(found[2]))


def checked_handle_seconds(seconds: float) -> float:
    if not 0 < seconds <= MAX_HANDLE_SECONDS:
        raise ForecastInputError(
            "invalid_handle_time",
            f"the default handling time must be above 0 and at most {MAX_HANDLE_SECONDS} "
            f"seconds, not {seconds:g}",
            max=MAX_HANDLE_SECONDS,
        )
    return seconds


@dataclass(frozen=True)
class ForecastCell:
    weekday: int  # 1 = Monday ... 7 = Sunday (ISO)
    hour: int  # local hour the cell starts, 9 = 09:00-10:00
    calls_per_hour: float  # mean calls offered to advisers (entered an adviser queue)
    incoming_per_hour: float  # mean calls coming in, whatever became of them
    advisers: int  # the fewest that reach the target; 0 without calls
    open_days: int  # the dates the mean is over: the hour was open on them


@dataclass(frozen=True)
class Forecast:
    weeks: int
    target: Target
    first_day: date  # the period, both days included, in the centre's time zone
    last_day: date
    handle_seconds: float
    handle_source: HandleTimeSource
    handled_calls: int  # the answered calls whose handling time the mean is over
    cells: list[ForecastCell]  # weekday, then hour; only hours the weekly hours open

    @property
    def peak(self) -> ForecastCell | None:
        """The cell needing the most advisers (then the most calls; the earliest on a tie);
        None when no call was offered at all."""
        busy = [cell for cell in self.cells if cell.calls_per_hour > 0]
        if not busy:
            return None
        return max(
            busy,
            key=lambda c: (c.advisers, c.calls_per_hour, -c.weekday, -c.hour),
        )


def forecast(
    engine: Engine,
    hours: OpeningHours,
    *,
    now: datetime,
    weeks: int = DEFAULT_WEEKS,
    target: Target,
    default_handle_seconds: float = DEFAULT_HANDLE_SECONDS,
) -> Forecast:
    """The forecast from the records in `engine` of the `weeks` full weeks before `now`'s week."""
    checked_weeks(weeks)
    checked_handle_seconds(default_handle_seconds)
    zone = hours.timezone
    today = now.astimezone(zone).date()
    this_monday = today - timedelta(days=today.weekday())
    first_day = this_monday - timedelta(weeks=weeks)
    start = datetime.combine(first_day, time(), zone).astimezone(UTC)
    end = datetime.combine(this_monday, time(), zone).astimezone(UTC)

    open_hours = _open_hours(hours, first_day, this_monday)
    grid = _weekly_grid(hours)
    offered: Counter[tuple[date, int]] = Counter()
    incoming: Counter[tuple[date, int]] = Counter()
    with engine.connect() as connection:
        # Only the two timestamps of the period's calls leave the database: the hour a call
        # falls in depends on the time zone (and its summer time), which SQLite cannot do.
        started, queued = col(CallRecord.started_at), col(CallRecord.queued_at)
        rows = connection.execute(
            select(started, queued).where(
                or_(
                    and_(started >= start, started < end),
                    and_(queued >= start, queued < end),
                )
            )
        )
        for started_at, queued_at in rows:
            _count(incoming, started_at, zone, start, end)
            if queued_at is not None:
                _count(offered, queued_at, zone, start, end)
        talk, answered = col(CallRecord.talk_seconds), col(CallRecord.answered_at)
        handled_calls, handle_mean = connection.execute(
            select(
                func.count(),
                func.avg(talk + func.coalesce(col(CallRecord.wrap_up_seconds), 0)),
            ).where(talk.is_not(None), answered >= start, answered < end)
        ).one()
    if handled_calls and handle_mean and float(handle_mean) > 0:
        handle_seconds, source = float(handle_mean), HandleTimeSource.RECORDS
    else:
        handle_seconds, source = default_handle_seconds, HandleTimeSource.DEFAULT
        handled_calls = 0

    cells: list[ForecastCell] = []
    for weekday, hour in grid:
        days = [d for d, h in open_hours if h == hour and d.isoweekday() == weekday]
        calls = _mean(offered, days, hour)
        advisers = 0
        if calls > 0:
            advisers = advisers_for(Load(calls, handle_seconds), target).advisers
        cells.append(
            ForecastCell(
                weekday=weekday,
                hour=hour,
                calls_per_hour=calls,
                incoming_per_hour=_mean(incoming, days, hour),
                advisers=advisers,
                open_days=len(days),
            )
        )
    return Forecast(
        weeks=weeks,
        target=target,
        first_day=first_day,
        last_day=this_monday - timedelta(days=1),
        handle_seconds=handle_seconds,
        handle_source=source,
        handled_calls=int(handled_calls or 0),
        cells=cells,
    )


def _count(
    counts: Counter[tuple[date, int]], at: datetime, zone: ZoneInfo, start: datetime, end: datetime
) -> None:
    moment = at if at.tzinfo is not None else at.replace(tzinfo=UTC)  # SQLite gives UTC, naive
    if start <= moment < end:
        local = moment.astimezone(zone)
        counts[(local.date(), local.hour)] += 1


def _mean(counts: Counter[tuple[date, int]], days: list[date], hour: int) -> float:
    if not days:
        return 0.0
    return sum(counts[(day, hour)] for day in days) / len(days)


def _weekly_grid(hours: OpeningHours) -> list[tuple[int, int]]:
    """(ISO weekday, hour) of every hour the weekly hours open, at least in part."""
    grid: list[tuple[int, int]] = []
    for index, weekday in enumerate(_WEEKDAYS):
        opening = hours.weekly.get(weekday)
        if opening is not None:
            grid.extend((index + 1, hour) for hour in _hours_within(opening.opens, opening.closes))
    return grid


def _hours_within(opens: time, closes: time) -> range:
    """The hours an opening from `opens` up to `closes` touches: 09:00-17:00 -> 9..16."""
    on_the_hour = (closes.minute, closes.second, closes.microsecond) == (0, 0, 0)
    return range(opens.hour, closes.hour if on_the_hour else closes.hour + 1)


def _open_hours(hours: OpeningHours, first_day: date, end_day: date) -> set[tuple[date, int]]:
    """(local date, hour) of every hour the calendar opened, from `first_day` up to `end_day`:
    holidays and exceptions as the flow's calendar has them."""
    opened: set[tuple[date, int]] = set()
    day = first_day
    while day < end_day:
        plan = hours.day_plan(day)
        if plan.hours is not None:
            opened.update(
                (day, hour) for hour in _hours_within(plan.hours.opens, plan.hours.closes)
            )
        day += timedelta(days=1)
    return opened


def forecast_json(result: Forecast) -> dict[str, object]:
    """The forecast as `kcc forecast --format json` and GET /api/forecast give it."""
    peak = result.peak
    return {
        "weeks": result.weeks,
        "target": {"service_level": result.target.share, "seconds": result.target.seconds},
        "from": result.first_day.isoformat(),
        "to": result.last_day.isoformat(),
        "handle_time_seconds": round(result.handle_seconds, 1),
        "handle_time_source": result.handle_source.value,
        "handled_calls": result.handled_calls,
        "cells": [_cell_json(cell) for cell in result.cells],
        "peak": None if peak is None else _cell_json(peak),
    }


def _cell_json(cell: ForecastCell) -> dict[str, object]:
    return {
        "weekday": cell.weekday,
        "hour": cell.hour,
        "calls_per_hour": round(cell.calls_per_hour, 2),
        "incoming_per_hour": round(cell.incoming_per_hour, 2),
        "advisers": cell.advisers,
        "open_days": cell.open_days,
    }
