"""The forecast: calls per weekday and opening hour over the last full weeks, holidays left out,
the advisers Erlang C needs; `kcc forecast` as a table and as JSON, its refusals; and
GET /api/forecast for supervisors only. On SQLite and the real PostgreSQL.

The weeks are 16 November 2026 .. 10 January 2027 (the eight full weeks before Wednesday
13 January 2027): Christmas (Friday 25 December) and New Year's Day (Friday 1 January) are closed,
24 and 31 December (Thursdays) close at 15:00, as the packaged flow's calendar says.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import Engine
from sqlmodel import Session

from api.settings import DEFAULT_FLOW
from flows.loader import load_flow
from ivr.forecast import ForecastInputError, forecast, parse_target
from ivr.hours import OpeningHours
from ivr.records import CallRecord
from routing.clock import FixedClock
from tests.support.servers import clean_env, run_kcc
from tests.support.staff import AHMED, SANNE, add_staff, signed_in

AMSTERDAM = ZoneInfo("Europe/Amsterdam")
NOW = datetime(2027, 1, 13, 10, 30, tzinfo=AMSTERDAM)  # a Wednesday
FIRST_MONDAY = date(2026, 11, 16)
WEEKS = 8
TARGET = parse_target("80/20")
# Erlang C by hand, 80/20 at 300 s: 12 calls an hour are 1 erlang; 2 advisers answer 68.8 % within
# 20 s, 3 answer 92.0 %: 3. 10 calls an hour: 3 as well. 6 calls an hour (0.5 erlang): 2.
ADVISERS_FOR_12 = 3
ADVISERS_FOR_6 = 2


def _hours() -> OpeningHours:
    return OpeningHours(load_flow(DEFAULT_FLOW).calendar)


class Calls:
    """Call records added straight to the database, by local (Amsterdam) time."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._count = 0

    def add(
        self,
        day: date,
        hour: int,
        n: int,
        *,
        queued: bool = True,
        talk: int | None = None,
        wrap_up: int | None = None,
    ) -> None:
        with Session(self._engine) as session:
            for i in range(n):
                self._count += 1
                started = datetime(day.year, day.month, day.day, hour, 0, tzinfo=AMSTERDAM)
                started += timedelta(minutes=i * 50 // max(n, 1), seconds=5)
                queued_at = started + timedelta(seconds=40) if queued else None
                answered = queued_at + timedelta(seconds=20) if talk and queued_at else None
                session.add(
                    CallRecord(
                        call_sid=f"CA{self._count:08d}",
                        started_at=started.astimezone(UTC),
                        ended_at=(started + timedelta(minutes=6)).astimezone(UTC),
                        flow="kcc",
                        flow_version="v1",
                        language="nl",
                        product="vog_np",
                        verification="none",
                        outcome="answered" if queued else "ended_by_flow",
                        self_service=not queued,
                        call_status="completed",
                        queued_at=None if queued_at is None else queued_at.astimezone(UTC),
                        answered_at=None if answered is None else answered.astimezone(UTC),
                        talk_seconds=talk,
                        wrap_up_seconds=wrap_up,
                    )
                )
            session.commit()


def _days(weekday: int) -> list[date]:
    """Every date of the period on ISO `weekday`, open or not."""
    first = FIRST_MONDAY + timedelta(days=weekday - 1)
    return [first + timedelta(weeks=w) for w in range(WEEKS)]


def _seed_the_period(engine: Engine) -> None:
    """12 queued calls every Monday 10:00-11:00; 10 every Friday 11:00 the centre was open (and
    none on Christmas and New Year's Day, which were closed); 6 every Thursday 16:00 it was
    open; 5 self-service calls every Tuesday 09:00. Outside the period: calls that must not
    count."""
    calls = Calls(engine)
    for day in _days(1):
        calls.add(day, 10, 12)
    for day in _days(5):
        if day not in {date(2026, 12, 25), date(2027, 1, 1)}:
            calls.add(day, 11, 10)
    for day in _days(4):
        if day not in {date(2026, 12, 24), date(2026, 12, 31)}:  # closed at 15:00 then
            calls.add(day, 16, 6)
    for day in _days(2):
        calls.add(day, 9, 5, queued=False)
    calls.add(date(2027, 1, 11), 10, 40)  # this week's Monday: not a full week yet
    calls.add(date(2026, 11, 9), 10, 40)  # the Monday before the period


def _cell(cells: list[dict[str, object]], weekday: int, hour: int) -> dict[str, object]:
    return next(c for c in cells if c["weekday"] == weekday and c["hour"] == hour)


def _url(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=False)


# -- the figures ---------------------------------------------------------------------------------


def test_mean_calls_per_open_hour_and_the_advisers_erlang_c_needs(db_engine: Engine) -> None:
    _seed_the_period(db_engine)
    result = forecast(db_engine, _hours(), now=NOW, weeks=WEEKS, target=TARGET)
    assert (result.first_day, result.last_day) == (FIRST_MONDAY, date(2027, 1, 10))
    by_place = {(c.weekday, c.hour): c for c in result.cells}
    # Only the opening hours: Monday to Friday 09:00-17:00, no weekend, no evening.
    assert sorted(by_place) == [(d, h) for d in range(1, 6) for h in range(9, 17)]
    monday = by_place[(1, 10)]
    assert (monday.calls_per_hour, monday.advisers, monday.open_days) == (12, ADVISERS_FOR_12, 8)
    # The two closed Fridays are left out: 10 a Friday, not 80 calls / 8 Fridays... of 7.5.
    friday = by_place[(5, 11)]
    assert (friday.calls_per_hour, friday.open_days) == (10, 6)
    # 24 and 31 December closed at 15:00: their 16:00 does not count either.
    thursday_late = by_place[(4, 16)]
    assert (thursday_late.calls_per_hour, thursday_late.advisers) == (6, ADVISERS_FOR_6)
    assert thursday_late.open_days == 6
    assert by_place[(4, 14)].open_days == 8
    # Self-service calls come in, but never reach an adviser.
    tuesday = by_place[(2, 9)]
    assert (tuesday.incoming_per_hour, tuesday.calls_per_hour, tuesday.advisers) == (5, 0, 0)
    assert by_place[(3, 12)].calls_per_hour == 0
    assert result.handle_seconds == 300 and result.handle_source.value == "default"
    peak = result.peak
    assert peak is not None and (peak.weekday, peak.hour) == (1, 10)


def test_the_handling_time_comes_from_the_records_when_they_have_it(db_engine: Engine) -> None:
    calls = Calls(db_engine)
    for day in _days(1):
        calls.add(day, 10, 12, talk=400, wrap_up=50)  # 450 s: 1.5 erlangs
    result = forecast(db_engine, _hours(), now=NOW, weeks=WEEKS, target=TARGET)
    assert result.handle_source.value == "records"
    assert (result.handle_seconds, result.handled_calls) == (450, 96)
    monday = next(c for c in result.cells if (c.weekday, c.hour) == (1, 10))
    assert (monday.calls_per_hour, monday.advisers) == (12, 4)  # 3 answer 79.6 % within 20 s


def test_fewer_weeks_and_a_stricter_target_change_the_answer(sqlite_engine: Engine) -> None:
    calls = Calls(sqlite_engine)
    for day in _days(3)[-2:]:  # the last two Wednesdays only
        calls.add(day, 13, 24)
    hours = _hours()
    two = forecast(sqlite_engine, hours, now=NOW, weeks=2, target=TARGET)
    eight = forecast(sqlite_engine, hours, now=NOW, weeks=8, target=TARGET)
    assert next(c for c in two.cells if (c.weekday, c.hour) == (3, 13)).calls_per_hour == 24
    assert next(c for c in eight.cells if (c.weekday, c.hour) == (3, 13)).calls_per_hour == 6
    strict = forecast(sqlite_engine, hours, now=NOW, weeks=2, target=parse_target("90/10"))
    assert next(c for c in two.cells if (c.weekday, c.hour) == (3, 13)).advisers == 4
    assert next(c for c in strict.cells if (c.weekday, c.hour) == (3, 13)).advisers == 5


def test_no_records_gives_zeros_and_no_peak(sqlite_engine: Engine) -> None:
    result = forecast(sqlite_engine, _hours(), now=NOW, weeks=WEEKS, target=TARGET)
    assert all(c.calls_per_hour == 0 and c.advisers == 0 for c in result.cells)
    assert result.peak is None


@pytest.mark.parametrize(
    ("text", "valid"),
    [
        *[("80/20", True), ("1/1", True), ("99/600", True), ("100/20", False), ("0/20", False)],
        *[("80/0", False), ("80/601", False), ("80", False), ("eighty/20", False)],
        ("80.5/20", False),
    ],
)
def test_the_target_is_percent_1_to_99_over_1_to_600_seconds(text: str, valid: bool) -> None:
    if valid:
        parse_target(text)
    else:
        with pytest.raises(ForecastInputError) as refused:
            parse_target(text)
        assert refused.value.code == "invalid_target"


# -- kcc forecast -------------------------------------------------------------------------------


def test_kcc_forecast_prints_the_grid_by_the_app_clock(db_engine: Engine) -> None:
    _seed_the_period(db_engine)
    done = run_kcc(
        "forecast",
        env=clean_env(KCC_DATABASE_URL=_url(db_engine), KCC_NOW=NOW.isoformat()),
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == (
        "8 weeks 2026-11-16 .. 2027-01-10, target 80/20, handling time 300 s "
        "(default: no record has one)"
    )
    # Hours down, weekdays across, "calls / advisers" in each cell.
    assert lines[2:11] == [
        "hour        Mon      Tue      Wed      Thu       Fri",
        "09:00   0.0 / 0  0.0 / 0  0.0 / 0  0.0 / 0   0.0 / 0",
        "10:00  12.0 / 3  0.0 / 0  0.0 / 0  0.0 / 0   0.0 / 0",
        "11:00   0.0 / 0  0.0 / 0  0.0 / 0  0.0 / 0  10.0 / 3",
        "12:00   0.0 / 0  0.0 / 0  0.0 / 0  0.0 / 0   0.0 / 0",
        "13:00   0.0 / 0  0.0 / 0  0.0 / 0  0.0 / 0   0.0 / 0",
        "14:00   0.0 / 0  0.0 / 0  0.0 / 0  0.0 / 0   0.0 / 0",
        "15:00   0.0 / 0  0.0 / 0  0.0 / 0  0.0 / 0   0.0 / 0",
        "16:00   0.0 / 0  0.0 / 0  0.0 / 0  6.0 / 2   0.0 / 0",
    ]
    # 12 + 10 + 6 offered, and the 5 self-service calls of Tuesday 09:00 besides.
    assert "a week: 33.0 calls coming in during opening hours, 28.0 of them offered" in done.stdout
    assert "peak: Mon 10:00, 12.0 calls, 3 advisers" in lines


def test_kcc_forecast_json_has_the_cells_and_the_peak(sqlite_engine: Engine) -> None:
    _seed_the_period(sqlite_engine)
    done = run_kcc(
        "forecast",
        "--weeks",
        "8",
        "--target",
        "80/20",
        "--handle-time",
        "450",
        "--format",
        "json",
        env=clean_env(KCC_DATABASE_URL=_url(sqlite_engine), KCC_NOW=NOW.isoformat()),
    )
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer["weeks"] == 8
    assert answer["target"] == {"service_level": 0.8, "seconds": 20}
    assert (answer["from"], answer["to"]) == ("2026-11-16", "2027-01-10")
    # No record has a handling time: the default given is used, and said to be.
    assert answer["handle_time_seconds"] == 450
    assert answer["handle_time_source"] == "default"
    assert len(answer["cells"]) == 40
    monday = _cell(answer["cells"], 1, 10)
    assert (monday["calls_per_hour"], monday["advisers"]) == (12, 4)
    assert answer["peak"]["weekday"] == 1 and answer["peak"]["hour"] == 10


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--weeks", "0"], "weeks must be 1 to 52"),
        (["--weeks", "53"], "weeks must be 1 to 52"),
        (["--target", "100/20"], "not PERCENT/SECONDS"),
        (["--target", "80/601"], "not PERCENT/SECONDS"),
        (["--handle-time", "0"], "handling time must be above 0"),
    ],
)
def test_kcc_forecast_refuses_bad_figures_with_exit_2(
    sqlite_engine: Engine, args: list[str], says: str
) -> None:
    done = run_kcc("forecast", *args, env=clean_env(KCC_DATABASE_URL=_url(sqlite_engine)))
    assert done.returncode == 2
    assert done.stderr.startswith("error: ") and says in done.stderr
    assert "Traceback" not in done.stderr


# -- GET /api/forecast --------------------------------------------------------------------------


async def test_api_forecast_answers_supervisors_with_the_same_json(
    app: FastAPI, http: httpx.AsyncClient, clock: FixedClock
) -> None:
    engine = app.state.services.db_engine
    add_staff(engine, SANNE, AHMED)
    _seed_the_period(engine)
    clock.set(NOW)
    headers = await signed_in(http, SANNE)
    answer = await http.get("/api/forecast?weeks=8&target=80/20", headers=headers)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["from"], body["to"], body["weeks"]) == ("2026-11-16", "2027-01-10", 8)
    assert _cell(body["cells"], 1, 10)["advisers"] == ADVISERS_FOR_12
    assert _cell(body["cells"], 5, 11)["calls_per_hour"] == 10
    assert body["peak"]["hour"] == 10
    strict = (await http.get("/api/forecast?weeks=8&target=99/5", headers=headers)).json()
    assert int(str(_cell(strict["cells"], 1, 10)["advisers"])) > ADVISERS_FOR_12


async def test_api_forecast_is_for_supervisors_only(app: FastAPI, http: httpx.AsyncClient) -> None:
    add_staff(app.state.services.db_engine, SANNE, AHMED)
    anonymous = await http.get("/api/forecast")
    assert (anonymous.status_code, anonymous.json()["code"]) == (401, "not_signed_in")
    adviser = await http.get("/api/forecast", headers=await signed_in(http, AHMED))
    assert (adviser.status_code, adviser.json()["code"]) == (403, "role_required")


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ("weeks=0", "invalid_weeks"),
        ("weeks=53", "invalid_weeks"),
        ("weeks=many", "request_invalid"),
        ("target=80", "invalid_target"),
        ("target=100/20", "invalid_target"),
        ("handle_time=-5", "invalid_handle_time"),
    ],
)
async def test_api_forecast_refuses_bad_input_with_a_code(
    app: FastAPI, http: httpx.AsyncClient, query: str, code: str
) -> None:
    add_staff(app.state.services.db_engine, SANNE)
    refused = await http.get(f"/api/forecast?{query}", headers=await signed_in(http, SANNE))
    assert refused.status_code == 422
    assert refused.json()["code"] == code
