"""Opening hours: weekly hours, Dutch public holidays, exceptions and daylight-saving time."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import pytest

from flows.model import Calendar
from ivr.hours import NeverOpenError, OpeningHours
from tests.support.clock import AMSTERDAM

HOLIDAY_ANNOUNCEMENT = {
    "nl": "Vandaag, {holiday}, is het klantcontactcentrum gesloten.",
    "en": "Today, {holiday}, the contact centre is closed.",
}
CHRISTMAS_EVE = {
    "nl": "Op 24 december zijn wij tot 15:00 uur bereikbaar.",
    "en": "On 24 December we are open until 3 pm.",
}
NEW_YEARS_EVE = {
    "nl": "Op oudejaarsdag is het klantcontactcentrum gesloten.",
    "en": "On New Year's Eve the contact centre is closed.",
}
SUMMER_CLOSURE = {
    "nl": "Van 3 tot en met 5 augustus zijn wij gesloten.",
    "en": "From 3 to 5 August we are closed.",
}
SATURDAY_OPENING = {
    "nl": "Vandaag zijn wij extra open van 10:00 tot 14:00 uur.",
    "en": "Today we are open from 10 am to 2 pm.",
}


def calendar_data(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "timezone": "Europe/Amsterdam",
        "weekly": {
            day: "09:00-17:00" for day in ("monday", "tuesday", "wednesday", "thursday", "friday")
        },
        "public_holidays": {
            "country": "NL",
            "observe": [
                "New Year's Day",
                "Easter Monday",
                "King's Day",
                "Liberation Day",
                "Ascension Day",
                "Pentecost Monday",
                "Christmas Day",
                "Second Day of Christmas",
            ],
            "announcement": HOLIDAY_ANNOUNCEMENT,
        },
        "exceptions": [
            {"date": "2026-12-24", "hours": "09:00-15:00", "announcement": CHRISTMAS_EVE},
            {"date": "2026-12-31", "announcement": NEW_YEARS_EVE},
            {"date": "2026-08-03", "until": "2026-08-05", "announcement": SUMMER_CLOSURE},
            {"date": "2026-11-28", "hours": "10:00-14:00", "announcement": SATURDAY_OPENING},
        ],
    }
    data.update(overrides)
    return data


@pytest.fixture(scope="module")
def hours() -> OpeningHours:
    return OpeningHours(Calendar.model_validate(calendar_data()))


def local(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=AMSTERDAM)


# -- an ordinary week (Tuesday 9 June 2026) -------------------------------------------------


def test_closed_before_nine_and_opens_at_nine_the_same_day(hours: OpeningHours) -> None:
    status = hours.status(local(2026, 6, 9, 8, 59))
    assert not status.open
    assert status.next_open == local(2026, 6, 9, 9, 0)
    assert status.closes_at is None
    assert status.reason is None
    assert status.announcement is None


def test_opens_at_nine_sharp(hours: OpeningHours) -> None:
    at = local(2026, 6, 9, 9, 0)
    status = hours.status(at)
    assert status.open
    assert status.next_open == at
    assert status.closes_at == local(2026, 6, 9, 17, 0)
    assert status.reason is None
    assert status.announcement is None


def test_open_at_four_fifty_nine_and_closes_at_seventeen(hours: OpeningHours) -> None:
    status = hours.status(local(2026, 6, 9, 16, 59))
    assert status.open
    assert status.closes_at == local(2026, 6, 9, 17, 0)


def test_closes_at_seventeen_sharp_and_opens_next_weekday(hours: OpeningHours) -> None:
    status = hours.status(local(2026, 6, 9, 17, 0))
    assert not status.open
    assert status.next_open == local(2026, 6, 10, 9, 0)
    assert status.closes_at is None


def test_friday_evening_opens_again_on_monday(hours: OpeningHours) -> None:
    status = hours.status(local(2026, 6, 12, 17, 0))
    assert not status.open
    assert status.next_open == local(2026, 6, 15, 9, 0)


@pytest.mark.parametrize(
    ("at", "dutch", "english"),
    [
        (local(2026, 6, 13, 12, 0), "zaterdag", "Saturday"),
        (local(2026, 6, 14, 12, 0), "zondag", "Sunday"),
    ],
    ids=["saturday", "sunday"],
)
def test_weekend_is_closed_until_monday_with_a_reason_and_no_announcement(
    hours: OpeningHours, at: datetime, dutch: str, english: str
) -> None:
    status = hours.status(at)
    assert not status.open
    assert not hours.is_open(at)
    assert status.next_open == local(2026, 6, 15, 9, 0)
    assert status.reason == {  # the built-in text: this calendar has none of its own
        "nl": f"Het klantcontactcentrum is op {dutch} gesloten.",
        "en": f"The contact centre is closed on {english}s.",
    }
    assert status.announcement is None  # nothing extra is said to callers


def test_the_weekend_reason_comes_from_the_calendar_when_it_has_one() -> None:
    reason = {"nl": "In het weekend ({weekday}) zijn wij gesloten.", "en": "Closed at weekends."}
    calendar = Calendar.model_validate(calendar_data(weekly_closed_reason=reason))
    status = OpeningHours(calendar).status(local(2026, 6, 14, 12, 0))
    assert status.reason == {"nl": "In het weekend (zondag) zijn wij gesloten.", "en": reason["en"]}
    assert OpeningHours(calendar).status(local(2026, 6, 9, 20, 0)).reason is None  # a weekday


def test_open_status_reports_the_moment_asked_in_local_time(hours: OpeningHours) -> None:
    at = datetime(2026, 6, 9, 10, 0, tzinfo=UTC)
    status = hours.status(at)
    assert status.open
    assert status.next_open == at
    assert status.next_open.tzinfo == AMSTERDAM
    assert status.next_open.hour == 12


@pytest.mark.parametrize(
    "at",
    [local(2026, 6, 9, 8, 59), local(2026, 6, 9, 9), local(2026, 6, 9, 17), local(2026, 6, 13, 10)],
)
def test_is_open_agrees_with_status(hours: OpeningHours, at: datetime) -> None:
    assert hours.is_open(at) == hours.status(at).open


def test_naive_datetime_is_refused(hours: OpeningHours) -> None:
    with pytest.raises(ValueError, match="no timezone"):
        hours.status(datetime(2026, 6, 9, 10, 0))
    with pytest.raises(ValueError, match="no timezone"):
        hours.is_open(datetime(2026, 6, 9, 10, 0))


# -- public holidays -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("day", "dutch", "english", "next_open"),
    [
        (date(2026, 4, 27), "Koningsdag", "King's Day", local(2026, 4, 28, 9)),
        (date(2026, 5, 14), "Hemelvaartsdag", "Ascension Day", local(2026, 5, 15, 9)),
        (date(2026, 5, 25), "Tweede pinksterdag", "Pentecost Monday", local(2026, 5, 26, 9)),
        (date(2026, 12, 25), "Eerste kerstdag", "Christmas Day", local(2026, 12, 28, 9)),
        (date(2026, 12, 26), "Tweede kerstdag", "Second Day of Christmas", local(2026, 12, 28, 9)),
    ],
    ids=["kings-day", "ascension-day", "whit-monday", "christmas-day", "boxing-day"],
)
def test_observed_holiday_is_closed_with_its_name_in_the_announcement(
    hours: OpeningHours, day: date, dutch: str, english: str, next_open: datetime
) -> None:
    status = hours.status(datetime.combine(day, time(10, 0), tzinfo=AMSTERDAM))
    assert not status.open
    assert status.reason == {"nl": dutch, "en": english}
    assert status.announcement == {
        "nl": f"Vandaag, {dutch}, is het klantcontactcentrum gesloten.",
        "en": f"Today, {english}, the contact centre is closed.",
    }
    assert status.next_open == next_open
    assert status.closes_at is None


def test_good_friday_is_not_observed_so_open_as_usual(hours: OpeningHours) -> None:
    status = hours.status(local(2026, 4, 3, 10, 0))
    assert status.open
    assert status.reason is None
    assert status.announcement is None
    assert status.closes_at == local(2026, 4, 3, 17, 0)


def test_holiday_announcement_in_a_language_without_holiday_names_uses_english() -> None:
    public = calendar_data()["public_holidays"] | {
        "announcement": {**HOLIDAY_ANNOUNCEMENT, "de": "Heute, {holiday}, geschlossen."}
    }
    hours = OpeningHours(Calendar.model_validate(calendar_data(public_holidays=public)))
    status = hours.status(local(2026, 4, 27, 10, 0))
    assert status.announcement is not None
    assert status.announcement["de"] == "Heute, King's Day, geschlossen."


def test_unknown_holiday_name_is_refused_with_the_known_names() -> None:
    public = calendar_data()["public_holidays"] | {"observe": ["Kings Day", "Christmas Day"]}
    with pytest.raises(ValueError, match=r"^unknown holiday 'Kings Day' for NL \(known: ") as err:
        OpeningHours(Calendar.model_validate(calendar_data(public_holidays=public)))
    assert "King's Day" in str(err.value)
    assert "Second Day of Christmas" in str(err.value)


def test_unknown_holiday_country_is_refused() -> None:
    public = calendar_data()["public_holidays"] | {"country": "XX"}
    with pytest.raises(ValueError, match="unknown holiday country 'XX'"):
        OpeningHours(Calendar.model_validate(calendar_data(public_holidays=public)))


def test_unknown_timezone_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown timezone 'Europe/Atlantis'"):
        OpeningHours(Calendar.model_validate(calendar_data(timezone="Europe/Atlantis")))


def test_calendar_without_public_holidays_is_open_on_kings_day() -> None:
    hours = OpeningHours(Calendar.model_validate(calendar_data(public_holidays=None)))
    assert hours.is_open(local(2026, 4, 27, 10, 0))


# -- daylight-saving time ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("at_utc", "is_open", "offset_hours"),
    [
        (datetime(2026, 3, 30, 6, 59, tzinfo=UTC), False, 2),  # 08:59 CEST
        (datetime(2026, 3, 30, 7, 0, tzinfo=UTC), True, 2),  # 09:00 CEST
        (datetime(2026, 10, 26, 7, 59, tzinfo=UTC), False, 1),  # 08:59 CET
        (datetime(2026, 10, 26, 8, 0, tzinfo=UTC), True, 1),  # 09:00 CET
    ],
    ids=["spring-0859", "spring-0900", "autumn-0859", "autumn-0900"],
)
def test_monday_after_dst_change_opens_at_nine_local(
    hours: OpeningHours, at_utc: datetime, is_open: bool, offset_hours: int
) -> None:
    status = hours.status(at_utc)
    assert status.open is is_open
    nine_local = at_utc.replace(hour=9 - offset_hours, minute=0)
    assert status.next_open == nine_local
    assert status.next_open.utcoffset() == timedelta(hours=offset_hours)
    assert status.next_open.time() == time(9, 0)


@pytest.mark.parametrize(
    ("friday_evening", "monday_morning"),
    [
        (
            datetime.fromisoformat("2026-03-27T17:00:00+01:00"),
            datetime.fromisoformat("2026-03-30T09:00:00+02:00"),
        ),
        (
            datetime.fromisoformat("2026-10-23T17:00:00+02:00"),
            datetime.fromisoformat("2026-10-26T09:00:00+01:00"),
        ),
    ],
    ids=["spring-forward", "fall-back"],
)
def test_next_open_across_dst_change_is_nine_local_on_monday(
    hours: OpeningHours, friday_evening: datetime, monday_morning: datetime
) -> None:
    status = hours.status(friday_evening)
    assert not status.open
    assert status.next_open == monday_morning
    assert status.next_open.isoformat() == monday_morning.isoformat()


# -- exceptions ----------------------------------------------------------------------------


def test_christmas_eve_is_open_until_fifteen_with_announcement(hours: OpeningHours) -> None:
    status = hours.status(local(2026, 12, 24, 14, 59))
    assert status.open
    assert status.closes_at == local(2026, 12, 24, 15, 0)
    assert status.announcement == CHRISTMAS_EVE
    assert status.reason == CHRISTMAS_EVE


def test_christmas_eve_closes_at_fifteen_and_opens_after_christmas_weekend(
    hours: OpeningHours,
) -> None:
    status = hours.status(local(2026, 12, 24, 15, 0))
    assert not status.open
    assert status.announcement == CHRISTMAS_EVE
    # 25 and 26 December are holidays, 27 December is a Sunday.
    assert status.next_open == local(2026, 12, 28, 9, 0)


@pytest.mark.parametrize("hour", [8, 9, 12, 16])
def test_new_years_eve_closure_is_closed_all_day_with_announcement(
    hours: OpeningHours, hour: int
) -> None:
    status = hours.status(local(2026, 12, 31, hour, 0))
    assert not status.open
    assert status.announcement == NEW_YEARS_EVE
    assert status.reason == NEW_YEARS_EVE
    # 1 January 2027 is New Year's Day (Friday), then the weekend.
    assert status.next_open == local(2027, 1, 4, 9, 0)


@pytest.mark.parametrize("day", [3, 4, 5])
def test_closure_with_until_closes_every_day_in_the_range(hours: OpeningHours, day: int) -> None:
    status = hours.status(local(2026, 8, day, 10, 0))
    assert not status.open
    assert status.announcement == SUMMER_CLOSURE
    assert status.next_open == local(2026, 8, 6, 9, 0)


@pytest.mark.parametrize("day", [date(2026, 7, 31), date(2026, 8, 6)])
def test_days_around_a_closure_range_are_ordinary(hours: OpeningHours, day: date) -> None:
    status = hours.status(datetime.combine(day, time(10, 0), tzinfo=AMSTERDAM))
    assert status.open
    assert status.announcement is None


def test_exception_with_hours_opens_a_saturday(hours: OpeningHours) -> None:
    before = hours.status(local(2026, 11, 28, 9, 59))
    assert not before.open
    assert before.next_open == local(2026, 11, 28, 10, 0)
    assert before.announcement == SATURDAY_OPENING
    during = hours.status(local(2026, 11, 28, 10, 0))
    assert during.open
    assert during.closes_at == local(2026, 11, 28, 14, 0)


def test_exception_overrides_a_public_holiday() -> None:
    announcement = {"nl": "Koningsdag open.", "en": "Open on King's Day."}
    exception = {"date": "2026-04-27", "hours": "10:00-12:00", "announcement": announcement}
    hours = OpeningHours(Calendar.model_validate(calendar_data(exceptions=[exception])))
    status = hours.status(local(2026, 4, 27, 11, 0))
    assert status.open
    assert status.announcement == announcement
    assert hours.day_plan(date(2026, 4, 27)).source == "exception"


def test_shortest_overlapping_exception_wins() -> None:
    long_closure = {"date": "2026-07-01", "until": "2026-07-31", "announcement": SUMMER_CLOSURE}
    one_day = {"date": "2026-07-15", "hours": "10:00-12:00", "announcement": SATURDAY_OPENING}
    hours = OpeningHours(Calendar.model_validate(calendar_data(exceptions=[long_closure, one_day])))
    assert hours.is_open(local(2026, 7, 15, 11, 0))
    assert not hours.is_open(local(2026, 7, 14, 11, 0))
    assert hours.status(local(2026, 7, 14, 11, 0)).next_open == local(2026, 7, 15, 10, 0)


# -- day plans and the search horizon ------------------------------------------------------


@pytest.mark.parametrize(
    ("day", "source", "closed"),
    [
        (date(2026, 6, 9), "weekly", False),
        (date(2026, 6, 13), "weekly", True),
        (date(2026, 4, 27), "holiday", True),
        (date(2026, 12, 24), "exception", False),
        (date(2026, 12, 31), "exception", True),
    ],
    ids=["weekday", "saturday", "kings-day", "christmas-eve", "new-years-eve"],
)
def test_day_plan_says_what_decided_the_day(
    hours: OpeningHours, day: date, source: str, closed: bool
) -> None:
    plan = hours.day_plan(day)
    assert plan.day == day
    assert plan.source == source
    assert plan.closed is closed
    assert (plan.hours is None) is closed


def test_calendar_that_never_opens_raises_never_open_from_status() -> None:
    hours = OpeningHours(Calendar.model_validate(calendar_data(weekly={}, exceptions=[])))
    at = local(2026, 6, 9, 10, 0)
    assert not hours.is_open(at)
    with pytest.raises(NeverOpenError, match="does not open in the 400 days"):
        hours.status(at)
