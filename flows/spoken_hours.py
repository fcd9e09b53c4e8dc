"""Opening hours as a caller hears them, for the placeholders of prompts and announcements.

Dutch follows the convention of Dutch government phone lines: "van maandag tot en met vrijdag
van 9.00 tot 17.00 uur" (hours with a dot, "uur" after the range). English says "Monday to
Friday, from 9 am to 5 pm". Another language gets the English forms.

The placeholders (docs/flows.md):

- `{weekly_hours}`: the regular hours of the weekly calendar, e.g. "van maandag tot en met vrijdag
  van 9.00 tot 17.00 uur"; the same every day, so it can be said anywhere;
- `{hours}`: the hours that apply on the day of the call: on a day with hours of its own (a
  calendar exception, e.g. 24 December 09:00-15:00) "vandaag van 9.00 tot 15.00 uur", on any
  other day the regular hours as `{weekly_hours}`;
- `{opens}`, `{closes}`: the day's own opening and closing time ("9.00" / "9 am"; the text says
  "uur"), only in the announcement of an exception that has hours: no other text knows a day
  that certainly has hours.
"""

from __future__ import annotations

from datetime import time

from flows.model import Calendar, OpeningRange, Weekday

WEEKLY_HOURS = "weekly_hours"
HOURS = "hours"
OPENS = "opens"
CLOSES = "closes"
WEEKDAY = "weekday"
# Fillable wherever the engine speaks with the call's moment at hand.
DAY_PLACEHOLDERS = frozenset({HOURS, WEEKLY_HOURS})
# Fillable only where the day certainly has hours: an exception's announcement with `hours`.
OWN_HOURS_PLACEHOLDERS = frozenset({OPENS, CLOSES})

_DAYS: dict[str, tuple[str, ...]] = {
    "nl": ("maandag", "dinsdag", "woensdag", "donderdag", "vrijdag", "zaterdag", "zondag"),
    "en": ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"),
}
_ORDER = tuple(Weekday)
# Said as `reason` on a day the weekly hours leave closed, when the flow has no text of its own.
DEFAULT_CLOSED_REASON = {
    "nl": "Het klantcontactcentrum is op {weekday} gesloten.",
    "en": "The contact centre is closed on {weekday}s.",
}


def _lang(language: str) -> str:
    return "nl" if language == "nl" else "en"


def _end_of_day(moment: time) -> bool:
    return moment.second == 59  # the model keeps "24:00" as the last instant of the day


def spoken_time(moment: time, language: str) -> str:
    """9.00 / 9 am, 15.30 / 3.30 pm, 24.00 / midnight."""
    if _lang(language) == "nl":
        return "24.00" if _end_of_day(moment) else f"{moment.hour}.{moment.minute:02d}"
    if _end_of_day(moment) or (moment.hour == 0 and moment.minute == 0):
        return "midnight"
    if moment.hour == 12 and moment.minute == 0:
        return "noon"
    hour = moment.hour % 12 or 12
    minutes = f".{moment.minute:02d}" if moment.minute else ""
    return f"{hour}{minutes} {'am' if moment.hour < 12 else 'pm'}"


def spoken_range(hours: OpeningRange, language: str) -> str:
    """van 9.00 tot 17.00 uur / from 9 am to 5 pm."""
    opens, closes = spoken_time(hours.opens, language), spoken_time(hours.closes, language)
    if _lang(language) == "nl":
        return f"van {opens} tot {closes} uur"
    return f"from {opens} to {closes}"


def weekday_name(index: int, language: str) -> str:
    """The name of a weekday, Monday = 0 like date.weekday()."""
    return _DAYS[_lang(language)][index]


def weekly_hours(calendar: Calendar, language: str) -> str:
    """The regular weekly hours: days in a row with the same hours go together."""
    lang = _lang(language)
    groups: list[tuple[int, int, OpeningRange]] = []  # first day, last day, hours
    for index, day in enumerate(_ORDER):
        hours = calendar.weekly.get(day)
        if hours is None:
            continue
        if groups and groups[-1][1] == index - 1 and groups[-1][2] == hours:
            groups[-1] = (groups[-1][0], index, hours)
        else:
            groups.append((index, index, hours))
    if not groups:
        return "op geen enkele vaste dag" if lang == "nl" else "on no regular day"
    parts = [_group(first, last, hours, lang) for first, last, hours in groups]
    if len(parts) == 1:
        return parts[0]
    if lang == "nl":
        return f"{', '.join(parts[:-1])} en {parts[-1]}"
    return f"{', '.join(parts[:-1])}, and {parts[-1]}"


def _group(first: int, last: int, hours: OpeningRange, lang: str) -> str:
    names = _DAYS[lang]
    if lang == "nl":
        if last - first >= 2:
            days = f"van {names[first]} tot en met {names[last]}"
        elif last == first + 1:
            days = f"op {names[first]} en {names[last]}"
        else:
            days = f"op {names[first]}"
        return f"{days} {spoken_range(hours, lang)}"
    if last - first >= 2:
        days = f"{names[first]} to {names[last]}"
    elif last == first + 1:
        days = f"{names[first]} and {names[last]}"
    else:
        days = names[first]
    return f"{days}, {spoken_range(hours, lang)}"


def day_hours(calendar: Calendar, own: OpeningRange | None, language: str) -> str:
    """`{hours}`: the day's own hours (an exception with hours), else the weekly hours."""
    if own is None:
        return weekly_hours(calendar, language)
    today = "vandaag" if _lang(language) == "nl" else "today"
    return f"{today} {spoken_range(own, language)}"


def hour_values(calendar: Calendar, own: OpeningRange | None, language: str) -> dict[str, str]:
    """The values of the hours placeholders on a day; `own`: the day's hours of its own (an
    exception's), which give `{opens}` and `{closes}` too."""
    values = {
        WEEKLY_HOURS: weekly_hours(calendar, language),
        HOURS: day_hours(calendar, own, language),
    }
    if own is not None:
        values[OPENS] = spoken_time(own.opens, language)
        values[CLOSES] = spoken_time(own.closes, language)
    return values


def fill(text: str, values: dict[str, str]) -> str:
    """`text` with each `{name}` of `values` replaced; other braces stay as they are (an
    announcement is not a format string: older flows may hold braces of their own)."""
    for name, value in values.items():
        text = text.replace(f"{{{name}}}", value)
    return text
