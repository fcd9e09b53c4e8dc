"""Prompts speak the day's real hours: placeholders the engine fills from the calendar.

On 24 December (an exception, 09:00-15:00) a caller after 15:00 heard "tot 15:00 uur" and then
"van 9 tot 17 uur". Now the closed message says the day's own hours, the announcement its own
closing time, and the validator allows each placeholder only where it can be filled.
"""

from __future__ import annotations

import re
from datetime import datetime, time
from pathlib import Path

import pytest

from flows.loader import check_flow_text, parse_flow
from flows.model import Calendar, Flow, OpeningRange
from flows.paths import flow_paths, format_report
from flows.spoken_hours import spoken_range, spoken_time, weekly_hours
from ivr.engine import Engine
from ivr.hours import OpeningHours
from ivr.session import CallSession
from ivr.turn import AskKeys, Turn
from tests.support.clock import AMSTERDAM
from tests.support.database import sqlite_url
from tests.support.flow_drafts import TEXT
from tests.support.servers import invoke_kcc

CHRISTMAS_EVE_EVENING = datetime(2026, 12, 24, 16, 30, tzinfo=AMSTERDAM)
CHRISTMAS_EVE_MORNING = datetime(2026, 12, 24, 10, 0, tzinfo=AMSTERDAM)
TUESDAY_EVENING = datetime(2026, 12, 1, 19, 30, tzinfo=AMSTERDAM)
WEEKLY_NL = "van maandag tot en met vrijdag van 9.00 tot 17.00 uur"
WEEKLY_EN = "Monday to Friday, from 9 am to 5 pm"
SEVENTEEN = re.compile(r"\b17\b|5 pm")


def engine_for(text: str = TEXT) -> Engine:
    flow = parse_flow(text)
    return Engine(flow, OpeningHours(flow.calendar))


def first_turn(engine: Engine, at: datetime, language: str = "nl") -> str:
    session = CallSession(
        call_sid="CA" + "2" * 32,
        caller="+31612345678",
        flow=engine.flow.name,
        flow_version="test",
        language=language,
        started_at=at,
    )
    return spoken(engine.start(session, at))


def spoken(turn: Turn) -> str:
    texts = [say.text for say in turn.says]
    if isinstance(turn.ending, AskKeys):
        texts += [say.text for say in turn.ending.prompt]
    return " ".join(texts)


def problems(text: str) -> list[str]:
    _, found = check_flow_text(text, "kcc.yaml")
    return sorted(problem.message for problem in found)


# -- how hours sound ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("moment", "dutch", "english"),
    [
        (time(9, 0), "9.00", "9 am"),
        (time(15, 0), "15.00", "3 pm"),
        (time(8, 30), "8.30", "8.30 am"),
        (time(12, 0), "12.00", "noon"),
        (time(12, 45), "12.45", "12.45 pm"),
        (time(0, 0), "0.00", "midnight"),
        (time(23, 59, 59, 999999), "24.00", "midnight"),  # how the model keeps "24:00"
    ],
)
def test_a_time_as_dutch_and_english_phone_lines_say_it(
    moment: time, dutch: str, english: str
) -> None:
    assert spoken_time(moment, "nl") == dutch
    assert spoken_time(moment, "en") == english


def test_a_range_says_uur_once_in_dutch() -> None:
    hours = OpeningRange.model_validate("09:00-15:00")
    assert spoken_range(hours, "nl") == "van 9.00 tot 15.00 uur"
    assert spoken_range(hours, "en") == "from 9 am to 3 pm"


@pytest.mark.parametrize(
    ("weekly", "dutch", "english"),
    [
        ({d: "09:00-17:00" for d in ("monday", "tuesday", "wednesday", "thursday", "friday")},
         WEEKLY_NL, WEEKLY_EN),
        ({"monday": "09:00-17:00", "tuesday": "09:00-17:00", "wednesday": "09:00-17:00",
          "thursday": "09:00-17:00", "friday": "09:00-15:00", "saturday": "10:00-12:30"},
         "van maandag tot en met donderdag van 9.00 tot 17.00 uur, op vrijdag van 9.00 tot "
         "15.00 uur en op zaterdag van 10.00 tot 12.30 uur",
         "Monday to Thursday, from 9 am to 5 pm, Friday, from 9 am to 3 pm, and Saturday, "
         "from 10 am to 12.30 pm"),
        ({"monday": "08:00-20:00", "tuesday": "08:00-20:00", "thursday": "08:00-20:00"},
         "op maandag en dinsdag van 8.00 tot 20.00 uur en op donderdag van 8.00 tot 20.00 uur",
         "Monday and Tuesday, from 8 am to 8 pm, and Thursday, from 8 am to 8 pm"),
    ],
    ids=["weekdays", "short-friday-and-saturday", "not-in-a-row"],
)  # fmt: skip
def test_the_weekly_hours_group_days_in_a_row_with_the_same_hours(
    weekly: dict[str, str], dutch: str, english: str
) -> None:
    calendar = Calendar.model_validate({"weekly": weekly})
    assert weekly_hours(calendar, "nl") == dutch
    assert weekly_hours(calendar, "en") == english


# -- what callers hear -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "at", [CHRISTMAS_EVE_EVENING, datetime(2026, 12, 31, 15, 0, tzinfo=AMSTERDAM)]
)
def test_after_closing_on_a_short_day_the_caller_hears_that_days_hours_not_17(at: datetime) -> None:
    engine = engine_for()

    dutch = first_turn(engine, at, "nl")
    english = first_turn(engine, at, "en")

    assert "bereikbaar tot 15.00 uur." in dutch  # the announcement, from {closes}
    assert "Het klantcontactcentrum van Justis is vandaag van 9.00 tot 15.00 uur bereikbaar." in (
        dutch
    )
    assert "open until 3 pm." in english
    assert "The Justis contact centre is open today from 9 am to 3 pm." in english
    assert not SEVENTEEN.search(dutch), dutch
    assert not SEVENTEEN.search(english), english


def test_on_a_short_day_the_open_menu_hears_the_announcement_with_its_time() -> None:
    text = first_turn(engine_for(), CHRISTMAS_EVE_MORNING)
    assert text.startswith(
        "Welkom bij Justis, de screeningsautoriteit. "
        "Op 24 december is het klantcontactcentrum bereikbaar tot 15.00 uur."
    )
    assert "{" not in text


def test_on_an_ordinary_evening_and_a_holiday_the_weekly_hours_are_said() -> None:
    engine = engine_for()
    evening = first_turn(engine, TUESDAY_EVENING)
    assert f"Het klantcontactcentrum van Justis is {WEEKLY_NL} bereikbaar." in evening
    assert f"The Justis contact centre is open {WEEKLY_EN}." in first_turn(
        engine, TUESDAY_EVENING, "en"
    )
    kings_day = first_turn(engine, datetime(2026, 4, 27, 10, 0, tzinfo=AMSTERDAM))
    assert "Koningsdag" in kings_day and WEEKLY_NL in kings_day


def test_kcc_call_on_christmas_eve_after_three_never_says_17(isolated: Path) -> None:
    result = invoke_kcc(
        "call", "--at", "2026-12-24T16:30+01:00", "--keys", "-",
        env={"KCC_DATABASE_URL": sqlite_url(isolated)},
    )  # fmt: skip

    assert result.exit_code == 0, result.output
    assert "Op 24 december is het klantcontactcentrum bereikbaar tot 15.00 uur." in result.stdout
    assert "is vandaag van 9.00 tot 15.00 uur bereikbaar" in result.stdout
    said = [line for line in result.stdout.splitlines() if line.startswith("  [")]
    assert said and not any(SEVENTEEN.search(line) for line in said), said


def test_weekly_hours_can_be_said_by_the_system_prompts_too() -> None:
    text = TEXT.replace(
        '"Excuses, er ging iets mis. Belt u later opnieuw',
        '"Het klantcontactcentrum is {weekly_hours} bereikbaar.',
    )
    assert text != TEXT, "the error_call_back prompt changed: update this test"
    engine = engine_for(text)
    said = engine.say("error_call_back", "nl")  # as the call handler says it: no moment
    assert said.text.startswith(f"Het klantcontactcentrum is {WEEKLY_NL} bereikbaar.")


# -- the validator: a placeholder only where it can be filled ----------------------------------


def test_the_shipped_flow_uses_the_placeholders_and_is_valid() -> None:
    assert problems(TEXT) == []
    assert "{hours}" in TEXT and "{closes}" in TEXT and "9 tot 17" not in TEXT


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        (
            "Het klantcontactcentrum van Justis is {hours} bereikbaar.",
            "Het klantcontactcentrum van Justis is tot {closes} uur bereikbaar.",
            "prompts.closed.nl: unknown {placeholder} in the text (allowed here: {hours}, "
            "{weekly_hours}; write {{ and }} for braces)",
        ),
        (
            '"Excuses, er ging iets mis. Belt u later opnieuw',
            '"Het klantcontactcentrum is {hours} bereikbaar.',
            "prompts.error_call_back.nl: unknown {placeholder} in the text (allowed here: "
            "{weekly_hours}; write {{ and }} for braces)",
        ),
        (
            '"Vandaag is het {holiday}. Het klantcontactcentrum is vandaag gesloten."',
            '"Vandaag is het {holiday}. Wij zijn open tot {closes} uur."',
            "calendar.public_holidays.announcement.nl: {closes} cannot be filled here (a holiday "
            "has no hours; allowed here: {holiday}, {hours}, {weekly_hours})",
        ),
        (
            '"Het klantcontactcentrum is in het weekend gesloten."',
            '"Het klantcontactcentrum is {hours} bereikbaar."',
            "calendar.weekly_closed_reason.nl: {hours} cannot be filled here (it is given on a "
            "day without hours; allowed here: {weekday})",
        ),
    ],
    ids=["closes-in-a-prompt", "hours-in-a-system-prompt", "closes-on-a-holiday", "reason"],
)
def test_a_placeholder_where_it_cannot_be_filled_is_refused(
    old: str, new: str, message: str
) -> None:
    assert old in TEXT
    assert problems(TEXT.replace(old, new, 1)) == [message]


def test_opens_and_closes_only_in_an_exception_that_has_hours() -> None:
    closure = TEXT.replace('      hours: "09:00-15:00"\n', "", 1)  # 24 December: closed
    assert problems(closure) == [
        "calendar.exceptions[0].announcement.en: {closes} cannot be filled here (this exception "
        "closes the day (it has no hours); allowed here: {hours}, {weekly_hours})",
        "calendar.exceptions[0].announcement.nl: {closes} cannot be filled here (this exception "
        "closes the day (it has no hours); allowed here: {hours}, {weekly_hours})",
    ]


def test_a_weekly_closed_reason_needs_every_language() -> None:
    text = TEXT.replace('    en: "The contact centre is closed at weekends."\n', "", 1)
    assert problems(text) == ["calendar.weekly_closed_reason: missing translation for 'en'"]


# -- older stored versions ---------------------------------------------------------------------

OLD_CLOSED_NL = (
    "Het klantcontactcentrum van Justis is bereikbaar van maandag tot en met vrijdag, van 9 tot "
    "17 uur. Kijk voor informatie over uw aanvraag op justis.nl. Wilt u nu de status van uw "
    "aanvraag horen? Toets dan 1."
)


def older_version() -> str:
    """The shipped flow as it was before the placeholders: fixed hours, no weekend reason, and
    an announcement with braces of its own (never a format string)."""
    text = re.sub(
        r"  # The reason GET /api/hours.*\n  weekly_closed_reason:\n(    .*\n){2}", "", TEXT
    )
    text = text.replace("bereikbaar tot {closes} uur.", "bereikbaar tot 15:00 uur {ca.}.")
    text = text.replace("open until {closes}.", "open until 3 pm.")
    closed = re.search(r"  closed:\n    nl: >-\n(      .*\n){3}", text)
    assert closed is not None
    return text.replace(closed.group(0), f"  closed:\n    nl: >-\n      {OLD_CLOSED_NL}\n")


def test_an_older_stored_version_without_placeholders_loads_and_is_said_as_written() -> None:
    text = older_version()
    assert "weekly_closed_reason" not in text and "{hours}" not in text.split("nl: >-")[1][:200]
    engine = engine_for(text)
    said = first_turn(engine, CHRISTMAS_EVE_EVENING)
    assert "Op 24 december is het klantcontactcentrum bereikbaar tot 15:00 uur {ca.}." in said
    assert OLD_CLOSED_NL in said
    # No text of its own for weekends: the built-in reason.
    saturday = engine.hours.status(datetime(2026, 12, 5, 12, 0, tzinfo=AMSTERDAM))
    assert saturday.reason == {
        "nl": "Het klantcontactcentrum is op zaterdag gesloten.",
        "en": "The contact centre is closed on Saturdays.",
    }


# -- kcc flows paths ---------------------------------------------------------------------------


def test_flows_paths_shows_the_hours_the_flow_gives() -> None:
    flow: Flow = parse_flow(TEXT)
    lines = " ".join(" ".join(format_report(flow_paths(flow, "nl"), full=True)).split())
    assert f"Het klantcontactcentrum van Justis is {WEEKLY_NL} bereikbaar." in lines
    assert "Op 24 december is het klantcontactcentrum bereikbaar tot 15.00 uur." in lines
    assert "{" not in lines
    english = " ".join(" ".join(format_report(flow_paths(flow, "en"), full=True)).split())
    assert f"The Justis contact centre is open {WEEKLY_EN}." in english
