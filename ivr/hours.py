"""Opening hours of the contact centre: weekly hours, public holidays and exceptions.

All times are local wall-clock times in the calendar's timezone; a day is open from `opens` up to
but not including `closes`. What decides a day, strongest first:

1. an exception covering the date (`date`..`until`): without `hours` the day is closed, with
   `hours` those hours replace the day's hours (they may also open a Saturday or a holiday);
   when several exceptions cover a date the one spanning the fewest days wins, ties go to the
   one listed first;
2. a public holiday whose English name is listed in `public_holidays.observe`: closed;
3. the weekly hours (a weekday missing from `weekly` is closed).

`OpeningHours.status` raises `NeverOpenError` when the calendar does not open within
`SEARCH_DAYS` days of the moment asked about; `OpeningHours.is_open` never does.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from types import MappingProxyType
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays

from flows.errors import KccError
from flows.holiday_names import known_holiday_names, unknown_holiday_names
from flows.model import Calendar, CalendarException, OpeningRange, PublicHolidays, Weekday
from flows.spoken_hours import (
    DEFAULT_CLOSED_REASON,
    WEEKDAY,
    fill,
    hour_values,
    weekday_name,
)

# How far ahead `next_open` looks before giving up.
SEARCH_DAYS = 400
# Holiday categories that can close the contact centre (only the names in `observe` do).
HOLIDAY_CATEGORIES: tuple[str, ...] = ("public", "optional")
# Flow languages whose holiday names always go in `reason`.
_REASON_LANGUAGES: tuple[str, ...] = ("nl", "en")
# Monday first, like date.weekday().
_WEEKDAYS: tuple[Weekday, ...] = tuple(Weekday)

DaySource = Literal["weekly", "holiday", "exception"]


class NeverOpenError(KccError):
    """The calendar does not open within `SEARCH_DAYS` days, so there is no `next_open`."""

    code = "never_open"


@dataclass(frozen=True)
class DayPlan:
    """The opening hours of one local date and why they are what they are."""

    day: date
    hours: OpeningRange | None  # None: closed all day
    source: DaySource  # what decided the hours: weekly hours, a holiday or an exception
    # Per language: the holiday's name, the exception's announcement, or why a day the weekly
    # hours leave closed is closed (a weekend); None on a day with weekly hours.
    reason: dict[str, str] | None
    announcement: dict[str, str] | None  # per language: what to tell a caller on this day

    @property
    def closed(self) -> bool:
        return self.hours is None


@dataclass(frozen=True)
class HoursStatus:
    open: bool
    # Per language: the holiday's name, the exception's announcement or why the weekly hours
    # leave the day closed (a weekend); None on a day with weekly hours.
    reason: dict[str, str] | None
    # Per language: what to say to a caller today; None on an ordinary day.
    announcement: dict[str, str] | None
    # In the calendar's timezone: the moment asked about when open, else the next opening.
    next_open: datetime
    # When open: the moment it closes today; else None.
    closes_at: datetime | None


@dataclass(frozen=True)
class _Country:
    code: str
    categories: tuple[str, ...]
    languages: tuple[str, ...]
    default_language: str | None

    def language_for(self, code: str) -> str | None:
        """The `holidays` language that names holidays for flow language `code` ("en" -> en_US)."""
        if code in self.languages:
            return code
        base = code.split("_")[0].split("-")[0]
        for language in self.languages:
            if language.split("_")[0] == base:
                return language
        if code != "en":
            return self.language_for("en")
        return self.default_language


@lru_cache(maxsize=32)
def _country(code: str) -> _Country:
    try:
        table = holidays.country_holidays(code)
    except NotImplementedError:
        raise ValueError(f"unknown holiday country {code!r}") from None
    categories = tuple(c for c in HOLIDAY_CATEGORIES if c in table.supported_categories)
    return _Country(
        code=code,
        categories=categories,
        languages=tuple(table.supported_languages),
        default_language=table.default_language,
    )


@lru_cache(maxsize=512)
def _holiday_names(country: str, year: int, language: str | None) -> Mapping[date, tuple[str, ...]]:
    """Holiday names per date of one year; several holidays on one date keep their order."""
    info = _country(country)
    table = holidays.country_holidays(
        country, years=year, categories=info.categories, language=language
    )
    return MappingProxyType({day: tuple(table.get_list(day)) for day in table})


WINDOWS_KEPT = 64  # days whose opening window is_open keeps; calls ask about today


class OpeningHours:
    """Answers "are we open?" for one flow calendar."""

    def __init__(self, calendar: Calendar) -> None:
        self._calendar = calendar
        try:
            self._zone = ZoneInfo(calendar.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown timezone {calendar.timezone!r}") from None
        self._holidays = calendar.public_holidays
        # Every webhook asks whether it is open: a day's hours are worked out once (the
        # calendar of a flow version never changes), and the few days asked about are kept.
        self._windows: dict[date, tuple[datetime, datetime] | None] = {}
        self._english: str | None = None
        self._spoken: dict[tuple[OpeningRange | None, str], dict[str, str]] = {}
        self._name_languages: dict[str, str | None] = {}
        if self._holidays is not None:
            self._check_holidays(self._holidays)

    def _check_holidays(self, public: PublicHolidays) -> None:
        country = _country(public.country)
        self._english = country.language_for("en")
        codes = dict.fromkeys((*_REASON_LANGUAGES, *public.announcement))
        self._name_languages = {code: country.language_for(code) for code in codes}
        known = known_holiday_names(public.country)
        unknown = unknown_holiday_names(public.country, public.observe)
        if unknown:
            listed = ", ".join(f"'{name}'" for name in unknown)
            noun = "holiday" if len(unknown) == 1 else "holidays"
            raise ValueError(
                f"unknown {noun} {listed} for {public.country} (known: {', '.join(sorted(known))})"
            )

    @property
    def timezone(self) -> ZoneInfo:
        return self._zone

    @property
    def weekly(self) -> Mapping[Weekday, OpeningRange]:
        """The ordinary week's hours, before holidays and exceptions."""
        return self._calendar.weekly

    def day_plan(self, day: date) -> DayPlan:
        """The hours of local date `day`: exception first, then holiday, then weekly hours.
        Announcements come with their hours placeholders filled (flows/spoken_hours.py)."""
        exception = self._exception_for(day)
        if exception is not None:
            announcement = {
                code: fill(text, self.spoken_hours(exception.hours, code))
                for code, text in exception.announcement.items()
            }
            return DayPlan(day, exception.hours, "exception", dict(announcement), announcement)
        holiday = self._observed_holiday(day)
        if holiday is not None and self._holidays is not None:
            announcement = {
                code: fill(text.replace("{holiday}", holiday[code]), self.spoken_hours(None, code))
                for code, text in self._holidays.announcement.items()
            }
            return DayPlan(day, None, "holiday", holiday, announcement)
        hours = self._calendar.weekly.get(_WEEKDAYS[day.weekday()])
        reason = None if hours is not None else self._closed_reason(day)
        return DayPlan(day, hours, "weekly", reason, None)

    def spoken_hours(self, own: OpeningRange | None, language: str) -> dict[str, str]:
        """The values of the hours placeholders (flows/spoken_hours.py) for a day whose own
        hours (an exception's) are `own`, None for any other day."""
        key = (own, language)
        if key not in self._spoken:
            self._spoken[key] = hour_values(self._calendar, own, language)
        return self._spoken[key]

    def own_hours(self, day: date) -> OpeningRange | None:
        """The hours a calendar exception gives local date `day`; None for any other day."""
        exception = self._exception_for(day)
        return exception.hours if exception is not None else None

    def _closed_reason(self, day: date) -> dict[str, str]:
        texts = self._calendar.weekly_closed_reason or DEFAULT_CLOSED_REASON
        return {
            code: fill(text, {WEEKDAY: weekday_name(day.weekday(), code)})
            for code, text in texts.items()
        }

    def is_open(self, at: datetime) -> bool:
        day = self._localise(at).date()
        if day in self._windows:
            window = self._windows[day]
        else:
            window = self._window(day)
            if len(self._windows) >= WINDOWS_KEPT:
                self._windows.clear()
            self._windows[day] = window
        return window is not None and window[0] <= at.astimezone(UTC) < window[1]

    def _window(self, day: date) -> tuple[datetime, datetime] | None:
        """When local date `day` opens and closes, in UTC; None when closed all day."""
        hours = self.day_plan(day).hours
        return None if hours is None else self._opening(day, hours)

    def _opening(self, day: date, hours: OpeningRange) -> tuple[datetime, datetime]:
        # In UTC: aware datetimes sharing a tzinfo compare by wall time, wrong at DST.
        opens = self._moment(day, hours.opens).astimezone(UTC)
        return opens, self._moment(day, hours.closes).astimezone(UTC)

    def status(self, at: datetime) -> HoursStatus:
        """Open or closed at `at` (timezone-aware), and what to tell the caller.

        Raises NeverOpenError when closed and not opening within SEARCH_DAYS days.
        """
        local = self._localise(at)
        plan = self.day_plan(local.date())
        if plan.hours is not None and self._within(local, plan.day, plan.hours):
            closes = self._moment(plan.day, plan.hours.closes)
            return HoursStatus(True, plan.reason, plan.announcement, local, closes)
        return HoursStatus(False, plan.reason, plan.announcement, self._next_open(local), None)

    # -- internals -------------------------------------------------------------------------

    def _localise(self, at: datetime) -> datetime:
        if at.tzinfo is None or at.utcoffset() is None:
            raise ValueError(f"{at.isoformat()} has no timezone; pass an aware datetime")
        return at.astimezone(self._zone)

    def _moment(self, day: date, wall: time) -> datetime:
        """The real moment of a local wall time (a time skipped by DST moves forward)."""
        moment = datetime.combine(day, wall, tzinfo=self._zone)
        return moment.astimezone(UTC).astimezone(self._zone)

    def _within(self, local: datetime, day: date, hours: OpeningRange) -> bool:
        opens, closes = self._opening(day, hours)
        return opens <= local.astimezone(UTC) < closes

    def _next_open(self, local: datetime) -> datetime:
        today = local.date()
        for offset in range(SEARCH_DAYS + 1):
            day = today + timedelta(days=offset)
            hours = self.day_plan(day).hours
            if hours is None:
                continue
            opens = self._moment(day, hours.opens)
            if opens.astimezone(UTC) > local.astimezone(UTC):
                return opens
        raise NeverOpenError(
            f"the calendar does not open in the {SEARCH_DAYS} days after {local.isoformat()}"
        )

    def _exception_for(self, day: date) -> CalendarException | None:
        covering = [e for e in self._calendar.exceptions if e.covers(day)]
        if not covering:
            return None
        return min(covering, key=lambda e: ((e.until or e.date) - e.date).days)

    def _observed_holiday(self, day: date) -> dict[str, str] | None:
        """Per flow language the name(s) of the observed holiday(s) on `day`, or None."""
        public = self._holidays
        if public is None:
            return None
        english = _holiday_names(public.country, day.year, self._english).get(day, ())
        picked = [i for i, name in enumerate(english) if name in public.observe]
        if not picked:
            return None
        names: dict[str, str] = {}
        for code, language in self._name_languages.items():
            local = _holiday_names(public.country, day.year, language).get(day, ())
            source = local if len(local) == len(english) else english
            names[code] = ", ".join(source[i] for i in picked)
        return names
