"""Call reports (ivr/reports.py, `kcc report`, GET /api/reports) over a fixed set of call records
whose figures are worked out by hand below, on SQLite and on the real PostgreSQL.

November 2026 in Amsterdam is winter time (UTC+1). The calls (local time):

    J  Sun 01 00:20  gva           queued, answered after 5 s, talk 60 + wrap-up 0, bram, mark 10
    A  Mon 02 09:10  vog_np/status queued, answered after 10 s, talk 300 + 60, ahmed, informed,
                                   mark 9
    B  Mon 02 09:40  vog_np/procedure queued, answered after 45 s, talk 200 + 40, bram, informed,
                                   transferred (cold), mark 6
    C  Mon 02 10:05  vog_np/status self-service (heard the status, never queued)
    D  Tue 03 14:20  vog_rp        queued, hung up after 70 s (abandoned)
    E  Tue 03 14:50  vog_rp        queued, asked for a callback after 20 s (abandoned)
    G  Sat 07 11:00  vog_np/status queued, answered after exactly 30 s, talk 100, no wrap-up
                                   time yet, ahmed, status_given
    F  Sun 08 23:30  (no product)  hung up in the menu
  and outside the period, though UTC would put them in it or near it:
    H  Sat 31 Oct 23:30 local (22:30 UTC), I  Tue 01 Dec 00:10 local (30 Nov 23:10 UTC)

Over November with sl_seconds=30: 8 calls; offered 6 (A B D E G J); answered 4 (A B G J);
answered in 30 s: 3 (A 10, G 30, J 5; B took 45); abandoned 2 (D E); service level 3/6 = 0.5;
ASA (10 + 45 + 30 + 5) / 4 = 22.5; AHT (360 + 240 + 100 + 60) / 4 = 190; abandon rate 2/6;
self-service 1 (C); ended in the menu 1 (F); callbacks 1 (E); transfers 1 (B); survey 3 marks,
average (9 + 6 + 10) / 3 = 8.33.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import Engine
from sqlmodel import Session

from ivr.records import CallRecord
from ivr.reports import ReportInvalid, ReportQuery, offset_changes, report_json, run_report
from tests.conftest import PUBLIC_URL
from tests.support.report_calls import AMSTERDAM, CALLS, NOVEMBER, TOTAL, add_calls, call
from tests.support.servers import clean_env, invoke_kcc, run_kcc
from tests.support.staff import AHMED, SANNE, add_staff, signed_in


@pytest.fixture
def calls(db_engine: Engine) -> Engine:
    add_calls(db_engine, CALLS)
    return db_engine


def report(engine: Engine, by: str, **options: Any) -> dict[str, Any]:
    query = ReportQuery.parse(*options.pop("period", NOVEMBER), by=by, **options)
    return report_json(run_report(engine, query, AMSTERDAM))


def rows(answer: dict[str, Any], *names: str) -> dict[Any, tuple[Any, ...]]:
    return {row["key"]: tuple(row[name] for name in names) for row in answer["rows"]}


# -- the figures ---------------------------------------------------------------------------------


def test_the_total_follows_each_definition(calls: Engine) -> None:
    answer = report(calls, "product")
    assert answer["total"] == TOTAL
    assert (answer["from"], answer["to"], answer["sl_seconds"]) == (*NOVEMBER, 30)


def test_by_product_each_row_and_calls_that_never_queued(calls: Engine) -> None:
    answer = report(calls, "product")
    assert [row["key"] for row in answer["rows"]] == ["gva", "vog_np", "vog_rp", None]
    by_key = {row["key"]: row for row in answer["rows"]}
    assert by_key["vog_np"] == {
        "key": "vog_np", "calls": 4, "offered": 3, "answered": 3, "answered_in_sl": 2,
        "abandoned": 0, "service_level": 0.6667, "asa_seconds": 28.3, "aht_seconds": 233.3,
        "abandon_rate": 0.0, "self_service": 1, "ended_in_menu": 0, "callbacks": 0,
        "transfers": 1, "survey_responses": 2, "survey_average": 7.5,
    }  # fmt: skip
    # nobody answered: no ASA or AHT, not zero; every offered call abandoned
    assert by_key["vog_rp"]["abandon_rate"] == 1.0
    assert by_key["vog_rp"]["service_level"] == 0.0
    assert (by_key["vog_rp"]["asa_seconds"], by_key["vog_rp"]["aht_seconds"]) == (None, None)
    assert by_key["vog_rp"]["callbacks"] == 1
    # the call that ended in the menu has a row of its own, with no rates at all
    assert by_key[None]["calls"] == by_key[None]["ended_in_menu"] == 1
    assert by_key[None]["offered"] == 0
    assert by_key[None]["service_level"] is None
    assert by_key[None]["abandon_rate"] is None
    # by product the rows add up to the total (each call has one product or none)
    for name in ("calls", "offered", "answered", "answered_in_sl", "abandoned", "self_service"):
        assert sum(row[name] for row in answer["rows"]) == TOTAL[name]


@pytest.mark.parametrize("by", ["product", "theme", "day", "hour", "weekday", "adviser", "wrap_up"])
def test_every_grouping_has_the_same_total_and_its_rows_add_up_to_it(
    calls: Engine, by: str
) -> None:
    answer = report(calls, by)
    assert answer["total"] == TOTAL
    counts = [name for name, value in TOTAL.items() if isinstance(value, int)]
    assert {name: sum(row[name] for row in answer["rows"]) for name in counts} == {
        name: TOTAL[name] for name in counts
    }


def test_service_level_counts_the_seconds_asked_for(calls: Engine) -> None:
    # within 60 s: B (45 s) too; within 5 s: J alone (5 s is within 5 s)
    assert report(calls, "product", sl_seconds=60)["total"]["answered_in_sl"] == 4
    assert report(calls, "product", sl_seconds=60)["total"]["service_level"] == 0.6667
    assert report(calls, "product", sl_seconds=5)["total"]["answered_in_sl"] == 1


def test_by_theme_and_vog_np_themes_only(calls: Engine) -> None:
    everyone = report(calls, "theme")
    assert rows(everyone, "calls", "offered") == {
        "procedure": (1, 1), "status": (3, 2), None: (4, 3),  # J D E F: no theme
    }  # fmt: skip
    assert everyone["total"] == TOTAL
    vog_np = report(calls, "theme", product="vog_np")
    assert rows(vog_np, "calls", "offered", "answered_in_sl", "self_service") == {
        "procedure": (1, 1, 0, 0),
        "status": (3, 2, 2, 1),
    }
    assert vog_np["product"] == "vog_np"
    assert vog_np["total"]["calls"] == 4


def test_by_day_hour_and_weekday_in_amsterdam_time(calls: Engine) -> None:
    assert rows(report(calls, "day"), "calls") == {
        "2026-11-01": (1,), "2026-11-02": (3,), "2026-11-03": (2,), "2026-11-07": (1,),
        "2026-11-08": (1,),
    }  # fmt: skip
    assert rows(report(calls, "hour"), "calls", "answered") == {
        0: (1, 1), 9: (2, 2), 10: (1, 0), 11: (1, 1), 14: (2, 0), 23: (1, 0),
    }  # fmt: skip
    # ISO weekdays: 1 Monday ... 7 Sunday
    assert rows(report(calls, "weekday"), "calls") == {1: (3,), 2: (2,), 6: (1,), 7: (2,)}


def test_by_adviser_and_wrap_up_code(calls: Engine) -> None:
    assert rows(report(calls, "adviser"), "calls", "answered", "aht_seconds") == {
        "ahmed": (2, 2, 230.0), "bram": (2, 2, 150.0), None: (4, 0, None),
    }  # fmt: skip
    assert rows(report(calls, "wrap_up"), "calls", "transfers") == {
        "informed": (2, 1), "status_given": (1, 0), None: (5, 0),
    }  # fmt: skip


def test_days_and_hours_across_the_change_to_winter_time(db_engine: Engine) -> None:
    # 25 October 2026: 03:00 summer time becomes 02:00 winter time (01:00 UTC), so 02:30 comes
    # twice; the day starts at 22:00 UTC the evening before.
    at = [
        datetime(2026, 10, 24, 21, 30, tzinfo=UTC),  # 23:30 on the 24th (summer time)
        datetime(2026, 10, 24, 22, 30, tzinfo=UTC),  # 00:30 on the 25th
        datetime(2026, 10, 25, 0, 30, tzinfo=UTC),  # 02:30 summer time
        datetime(2026, 10, 25, 1, 30, tzinfo=UTC),  # 02:30 winter time
        datetime(2026, 10, 25, 22, 59, tzinfo=UTC),  # 23:59 on the 25th (winter time)
    ]
    add_calls(db_engine, [call(str(n), "2026-01-01 00:00", "gva") for n in range(len(at))])
    with Session(db_engine) as session:
        for n, moment in enumerate(at):
            record = session.get(CallRecord, n + 1)
            assert record is not None
            record.started_at = moment
        session.commit()
    period = ("2026-10-24", "2026-10-25")
    assert rows(report(db_engine, "day", period=period), "calls") == {
        "2026-10-24": (1,), "2026-10-25": (4,),
    }  # fmt: skip
    assert rows(report(db_engine, "hour", period=period), "calls") == {
        0: (1,), 2: (2,), 23: (2,),
    }  # fmt: skip
    assert rows(report(db_engine, "day", period=("2026-10-25", "2026-10-25")), "calls") == {
        "2026-10-25": (4,)
    }


def test_offsets_change_at_the_instants_the_zone_says() -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    changes = offset_changes(start, datetime(2027, 1, 1, tzinfo=UTC), AMSTERDAM)
    assert changes == [
        (start, 3600),
        (datetime(2026, 3, 29, 1, 0, tzinfo=UTC), 7200),
        (datetime(2026, 10, 25, 1, 0, tzinfo=UTC), 3600),
    ]


def test_an_empty_period_has_no_rows_zero_counts_and_no_rates(calls: Engine) -> None:
    answer = report(calls, "day", period=("2026-01-01", "2026-01-31"))
    assert answer["rows"] == []
    total = answer["total"]
    assert total["calls"] == total["offered"] == total["survey_responses"] == 0
    for rate in ("service_level", "asa_seconds", "aht_seconds", "abandon_rate", "survey_average"):
        assert total[rate] is None
    json.dumps(answer, allow_nan=False)  # no NaN anywhere


# -- what is refused ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "end", "by", "sl_seconds", "code"),
    [
        ("2026-11-30", "2026-11-01", "product", 30, "report_period_reversed"),
        ("2026-13-01", "2026-11-30", "product", 30, "report_date_invalid"),
        ("2026-11-01", "30-11-2026", "product", 30, "report_date_invalid"),
        ("", "2026-11-30", "product", 30, "report_date_invalid"),
        ("2026-11-01", "2026-11-30", "month", 30, "report_grouping_unknown"),
        ("2026-11-01", "2026-11-30", "product", 0, "report_sl_seconds_invalid"),
        ("2026-11-01", "2026-11-30", "product", 3601, "report_sl_seconds_invalid"),
        ("2025-01-01", "2026-02-05", "product", 30, "report_period_too_long"),  # 401 days
    ],
)
def test_bad_questions_are_refused_with_a_code(
    start: str, end: str, by: str, sl_seconds: int, code: str
) -> None:
    with pytest.raises(ReportInvalid) as refused:
        ReportQuery.parse(start, end, by, sl_seconds)
    assert refused.value.code == code


def test_the_longest_period_and_the_bounds_of_sl_seconds_are_allowed() -> None:
    assert ReportQuery.parse("2025-01-01", "2026-02-04", "day", 1).sl_seconds == 1  # 400 days
    assert ReportQuery.parse("2026-11-01", "2026-11-01", "day", 3600).sl_seconds == 3600


# -- the API -------------------------------------------------------------------------------------


@pytest.fixture
async def api(make_app: Callable[..., FastAPI], calls: Engine) -> httpx.AsyncClient:
    """The app on the database of `calls` (SQLite or PostgreSQL), Sanne and Ahmed in it."""
    add_staff(calls, SANNE, AHMED)
    app = make_app(database_url=calls.url.render_as_string(hide_password=False))
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=PUBLIC_URL)


async def test_api_answers_supervisors_with_the_report(api: httpx.AsyncClient) -> None:
    headers = await signed_in(api, SANNE)
    answer = await api.get(
        "/api/reports",
        params={"from": NOVEMBER[0], "to": NOVEMBER[1], "by": "product"},
        headers=headers,
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["from"], body["to"], body["by"], body["sl_seconds"]) == (*NOVEMBER, "product", 30)
    assert body["total"] == TOTAL
    assert [row["key"] for row in body["rows"]] == ["gva", "vog_np", "vog_rp", None]
    themes = await api.get(
        "/api/reports",
        params={"from": NOVEMBER[0], "to": NOVEMBER[1], "by": "theme", "product": "vog_np"},
        headers=headers,
    )
    assert rows(themes.json(), "calls") == {"procedure": (1,), "status": (3,)}


async def test_api_csv_is_a_download_with_a_line_per_row_and_the_total(
    api: httpx.AsyncClient,
) -> None:
    headers = await signed_in(api, SANNE)
    answer = await api.get(
        "/api/reports",
        params={"from": NOVEMBER[0], "to": NOVEMBER[1], "by": "weekday", "format": "csv"},
        headers=headers,
    )
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/csv")
    assert answer.headers["content-disposition"] == (
        'attachment; filename="kcc-report-weekday-2026-11-01-2026-11-30.csv"'
    )
    lines = list(csv.DictReader(io.StringIO(answer.text)))
    assert [(line["weekday"], line["calls"], line["service_level"]) for line in lines] == [
        ("1", "3", "0.5"), ("2", "2", "0.0"), ("6", "1", "1.0"), ("7", "2", "1.0"),
        ("(total)", "8", "0.5"),
    ]  # fmt: skip
    assert lines[1]["asa_seconds"] == ""  # no answered call: empty, not 0


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"from": "2026-11-30", "to": "2026-11-01"}, "report_period_reversed"),
        ({"from": "2026-11-31", "to": "2026-12-01"}, "report_date_invalid"),
        ({"from": "2026-11-01", "to": "2026-11-30", "by": "month"}, "report_grouping_unknown"),
        (
            {"from": "2026-11-01", "to": "2026-11-30", "sl_seconds": "0"},
            "report_sl_seconds_invalid",
        ),
        ({"from": "2025-01-01", "to": "2026-11-30"}, "report_period_too_long"),
        ({"from": "2026-11-01"}, "request_invalid"),
        ({"from": "2026-11-01", "to": "2026-11-30", "format": "xls"}, "request_invalid"),
    ],
)
async def test_api_refuses_a_bad_question_with_422_and_a_code(
    api: httpx.AsyncClient, params: dict[str, str], code: str
) -> None:
    answer = await api.get("/api/reports", params=params, headers=await signed_in(api, SANNE))
    assert answer.status_code == 422, answer.text
    assert answer.json()["code"] == code


async def test_api_is_for_supervisors_only(api: httpx.AsyncClient) -> None:
    params = {"from": NOVEMBER[0], "to": NOVEMBER[1]}
    anonymous = await api.get("/api/reports", params=params)
    assert anonymous.status_code == 401
    assert anonymous.json()["code"] == "not_signed_in"
    adviser = await api.get("/api/reports", params=params, headers=await signed_in(api, AHMED))
    assert adviser.status_code == 403
    assert adviser.json()["code"] == "role_required"
    assert "rows" not in adviser.text


# -- the command ---------------------------------------------------------------------------------


def _env(engine: Engine) -> dict[str, str]:
    return clean_env(KCC_DATABASE_URL=engine.url.render_as_string(hide_password=False))


def test_command_prints_json_csv_and_a_table(calls: Engine) -> None:
    done = run_kcc(
        *("report", "--from", NOVEMBER[0], "--to", NOVEMBER[1], "--by", "hour"),
        *("--sl-seconds", "60", "--format", "json"),
        env=_env(calls),
    )
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer["total"]["answered_in_sl"] == 4
    assert rows(answer, "calls")[9] == (2,)
    as_csv = invoke_kcc(
        "report", "--from", NOVEMBER[0], "--to", NOVEMBER[1], "--format", "csv", env=_env(calls)
    )
    assert as_csv.exit_code == 0, as_csv.output
    assert as_csv.stdout.splitlines()[0].startswith("product,calls,offered,answered,")
    assert as_csv.stdout.splitlines()[-1].startswith("(total),8,6,4,3,2,0.5,22.5,190.0,")
    table = invoke_kcc("report", "--from", NOVEMBER[0], "--to", NOVEMBER[1], env=_env(calls))
    assert table.exit_code == 0, table.output
    lines = table.stdout.splitlines()
    assert lines[0].split()[:3] == ["product", "calls", "offered"]
    assert lines[-1].split()[:7] == ["(total)", "8", "6", "4", "3", "2", "50.0%"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--from", "2026-11-30", "--to", "2026-11-01"), "is after"),
        (("--from", "2026-11-01", "--to", "2026-11-31"), "must be a date as YYYY-MM-DD"),
        (("--from", "2026-11-01", "--to", "2026-11-30", "--by", "month"), "cannot group by"),
        (("--from", "2026-11-01", "--to", "2026-11-30", "--sl-seconds", "0"), "sl_seconds"),
        (("--from", "2024-11-01", "--to", "2026-11-30"), "at most 400"),
    ],
)
def test_command_refuses_a_bad_question_with_exit_2(
    sqlite_engine: Engine, args: tuple[str, ...], message: str
) -> None:
    done = invoke_kcc("report", *args, env=_env(sqlite_engine))
    assert done.exit_code == 2
    assert message in done.stderr
    assert done.stdout == ""
