"""Call reports: offered, answered, service level, ASA, AHT, abandoned ... over a period, grouped
by product, theme, day, hour, weekday, adviser or wrap-up code (docs/reports.md defines every
figure). One SQL query per report adds up counts and sums per key in the database (GROUP BY),
on SQLite and on PostgreSQL; Python only adds the few rows that come back into the total and
divides.

Days, hours and weekdays are the contact centre's (the flow calendar's time zone): a period
runs from local midnight of its first day up to local midnight after its last day, and a call
belongs to the moment it started (`started_at`).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from itertools import pairwise
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import (
    Engine,
    Integer,
    String,
    and_,
    case,
    cast,
    func,
    literal,
    literal_column,
    not_,
    select,
    true,
)
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import col

from flows.errors import ErrorKind, KccError
from ivr.records import CallRecord

MAX_DAYS = 400  # a year and a bit: this month against the same month last year
MIN_SL_SECONDS = 1
MAX_SL_SECONDS = 3600
DEFAULT_SL_SECONDS = 30


class Grouping(StrEnum):
    """What a report's rows are: one per value of this."""

    PRODUCT = "product"
    THEME = "theme"
    DAY = "day"  # YYYY-MM-DD, local
    HOUR = "hour"  # 0-23, local
    WEEKDAY = "weekday"  # 1 Monday ... 7 Sunday (ISO), local
    ADVISER = "adviser"
    WRAP_UP = "wrap_up"


class ReportInvalid(KccError):
    """A report asked for with a bad period, grouping or service-level time."""

    kind = ErrorKind.INVALID

    def __init__(self, code: str, message: str, **params: str | int | None) -> None:
        super().__init__(message, **params)
        self.code = code


@dataclass(frozen=True)
class ReportQuery:
    """What to report: the period (both dates included), the grouping, the answer time the
    service level counts, and optionally one product only."""

    start: date
    end: date
    by: Grouping
    sl_seconds: int = DEFAULT_SL_SECONDS
    product: str | None = None

    @classmethod
    def parse(
        cls,
        start: str,
        end: str,
        by: str = Grouping.PRODUCT.value,
        sl_seconds: int = DEFAULT_SL_SECONDS,
        product: str | None = None,
    ) -> ReportQuery:
        """The query from text as a person types it; ReportInvalid (with a code) if wrong."""
        first = _parse_date(start, "from")
        last = _parse_date(end, "to")
        if first > last:
            raise ReportInvalid(
                "report_period_reversed",
                f"'from' ({first}) is after 'to' ({last})",
                start=first.isoformat(),
                end=last.isoformat(),
            )
        days = (last - first).days + 1
        if days > MAX_DAYS:
            raise ReportInvalid(
                "report_period_too_long",
                f"the period has {days} days; a report covers at most {MAX_DAYS}",
                days=days,
                max_days=MAX_DAYS,
            )
        try:
            grouping = Grouping(by)
        except ValueError:
            choices = ", ".join(g.value for g in Grouping)
            raise ReportInvalid(
                "report_grouping_unknown",
                f"cannot group by {by!r}; choose one of {choices}",
                by=by,
                choices=choices,
            ) from None
        if not MIN_SL_SECONDS <= sl_seconds <= MAX_SL_SECONDS:
            raise ReportInvalid(
                "report_sl_seconds_invalid",
                f"sl_seconds must be from {MIN_SL_SECONDS} to {MAX_SL_SECONDS}, not {sl_seconds}",
                sl_seconds=sl_seconds,
                min=MIN_SL_SECONDS,
                max=MAX_SL_SECONDS,
            )
        return cls(first, last, grouping, sl_seconds, product or None)


def _parse_date(text: str, name: str) -> date:
    try:
        if len(text) != 10:
            raise ValueError(text)
        return date.fromisoformat(text)
    except ValueError:
        raise ReportInvalid(
            "report_date_invalid",
            f"'{name}' must be a date as YYYY-MM-DD, not {text!r}",
            field=name,
            value=text,
        ) from None


@dataclass(frozen=True)
class Figures:
    """The figures of one row, or of all calls (docs/reports.md defines each)."""

    calls: int  # every call recorded (a queue or not)
    offered: int
    answered: int
    answered_in_sl: int
    abandoned: int
    service_level: float | None  # answered_in_sl / offered; None without offered calls
    asa_seconds: float | None
    aht_seconds: float | None
    abandon_rate: float | None
    self_service: int
    ended_in_menu: int
    callbacks: int
    transfers: int
    survey_responses: int
    survey_average: float | None


FIGURE_NAMES = [f.name for f in fields(Figures)]

Key = str | int | None


@dataclass(frozen=True)
class ReportRow:
    key: Key
    figures: Figures


@dataclass(frozen=True)
class Report:
    query: ReportQuery
    rows: list[ReportRow]
    total: Figures  # over all calls of the period (and product): its means are not of the rows'


# -- the query -----------------------------------------------------------------------------------

_KEY = "report_key"


def period_bounds(query: ReportQuery, zone: ZoneInfo) -> tuple[datetime, datetime]:
    """The period in UTC: local midnight of the first day, up to local midnight after the last."""
    return _midnight(query.start, zone), _midnight(query.end + timedelta(days=1), zone)


def _midnight(day: date, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, time(0), tzinfo=zone).astimezone(UTC)


def offset_changes(start: datetime, end: datetime, zone: ZoneInfo) -> list[tuple[datetime, int]]:
    """The zone's UTC offset (seconds) at `start`, then each instant up to `end` it changes and
    the new offset (summer and winter time), to the second."""
    changes = [(start, _offset(start, zone))]
    step = timedelta(hours=6)  # no zone changes its offset twice within 6 hours
    at = start
    while at < end:
        following = min(at + step, end)
        if _offset(following, zone) != changes[-1][1]:
            low, high = at, following  # the change is in (low, high]
            while high - low > timedelta(seconds=1):
                middle = low + (high - low) / 2
                if _offset(middle, zone) == changes[-1][1]:
                    low = middle
                else:
                    high = middle
            changed = high.replace(microsecond=0)
            changes.append((changed, _offset(changed, zone)))
        at = following
    return changes


def _offset(at: datetime, zone: ZoneInfo) -> int:
    delta = at.astimezone(zone).utcoffset()
    assert delta is not None
    return int(delta.total_seconds())


def _local_text(
    dialect: str, zone: ZoneInfo, changes: list[tuple[datetime, int]], pattern: str
) -> Any:
    """started_at in the zone, formatted by `pattern` (strftime's %Y-%m-%d, %H or %w)."""
    started = CallRecord.started_at
    if dialect == "postgresql":
        # the database knows the zone; its own formats for the same fields
        local = func.timezone(zone.key, started)
        if pattern == "%Y-%m-%d":
            return func.to_char(local, "YYYY-MM-DD", type_=String)
        field = {"%H": "hour", "%w": "isodow"}[pattern]
        return cast(func.extract(field, local), Integer)
    # SQLite has no time zones: the period's offsets, one CASE branch per summer/winter change
    modifiers: list[tuple[ColumnElement[bool], str]] = []
    for (_, offset), (changed, _) in pairwise(changes):
        modifiers.append((col(started) < changed, f"{offset:+d} seconds"))
    modifier: Any = (
        case(*modifiers, else_=f"{changes[-1][1]:+d} seconds")
        if modifiers
        else literal(f"{changes[-1][1]:+d} seconds", String)
    )
    local_text = func.strftime(pattern, started, modifier, type_=String)
    return local_text if pattern == "%Y-%m-%d" else cast(local_text, Integer)


def _key_column(
    query: ReportQuery, dialect: str, zone: ZoneInfo, changes: list[tuple[datetime, int]]
) -> Any:
    match query.by:
        case Grouping.PRODUCT:
            return CallRecord.product
        case Grouping.THEME:
            return CallRecord.theme
        case Grouping.ADVISER:
            return CallRecord.adviser
        case Grouping.WRAP_UP:
            return CallRecord.wrap_up_code
        case Grouping.DAY:
            return _local_text(dialect, zone, changes, "%Y-%m-%d")
        case Grouping.HOUR:
            return _local_text(dialect, zone, changes, "%H")
        case Grouping.WEEKDAY:
            return _local_text(dialect, zone, changes, "%w")


# What the database adds up per row: counts and sums, never means, so that the total is the
# sum of the rows (every call is in exactly one row, a null key too) and the means of the total
# are over all its calls. One pass over the period's rows gives both.
_SUMS = [
    "calls", "offered", "answered", "answered_in_sl", "abandoned", "wait_sum", "wait_count",
    "handling_sum", "handling_count", "self_service", "ended_in_menu", "callbacks", "transfers",
    "survey_responses", "survey_sum",
]  # fmt: skip


def _sum_columns(sl_seconds: int) -> list[Any]:
    r = CallRecord
    queued = col(r.queued_at).is_not(None)
    answered = col(r.answered_at).is_not(None)

    def count_of(condition: ColumnElement[bool]) -> Any:
        return func.sum(case((condition, 1), else_=0))

    handling = func.coalesce(r.talk_seconds, 0) + func.coalesce(r.wrap_up_seconds, 0)
    answered_wait = case((answered, r.wait_seconds))
    answered_handling = case((answered, handling))
    columns = [
        func.count(),
        count_of(queued),
        count_of(answered),
        count_of(and_(answered, col(r.wait_seconds) <= sl_seconds)),
        count_of(col(r.abandoned) == true()),
        func.sum(answered_wait),
        func.count(answered_wait),
        func.sum(answered_handling),
        func.count(answered_handling),
        count_of(col(r.self_service) == true()),
        count_of(and_(not_(queued), col(r.self_service) != true())),
        count_of(col(r.callback_requested) == true()),
        count_of(col(r.transfer_mode).is_not(None)),
        func.count(col(r.survey_score)),
        func.sum(r.survey_score),
    ]
    return [column.label(name) for column, name in zip(columns, _SUMS, strict=True)]


def build_statement(query: ReportQuery, dialect: str, zone: ZoneInfo) -> Any:
    """The report's one statement: the sums of each key's calls in the period, read through the
    index on started_at (revision 0007)."""
    start, end = period_bounds(query, zone)
    changes = offset_changes(start, end, zone)
    started = col(CallRecord.started_at)
    conditions = [started >= start, started < end]
    if query.product is not None:
        conditions.append(col(CallRecord.product) == query.product)
    key = _key_column(query, dialect, zone, changes)
    # Grouped by the label: the key's expression has parameters (the period's offsets), and
    # PostgreSQL would not see two renderings of it as the same expression.
    return (
        select(key.label(_KEY), *_sum_columns(query.sl_seconds))
        .where(*conditions)
        .group_by(literal_column(_KEY))
    )


def run_report(engine: Engine, query: ReportQuery, zone: ZoneInfo) -> Report:
    statement = build_statement(query, engine.dialect.name, zone)
    with engine.connect() as connection:
        result = connection.execute(statement).mappings().all()
    sums = [
        (_key(query.by, row[_KEY]), [float(row[name] or 0) for name in _SUMS]) for row in result
    ]
    sums.sort(key=lambda item: (item[0] is None, item[0] if item[0] is not None else ""))
    total = [0.0] * len(_SUMS)
    for _, row_sums in sums:
        total = [a + b for a, b in zip(total, row_sums, strict=True)]
    return Report(query, [ReportRow(key, _figures(row)) for key, row in sums], _figures(total))


def _key(by: Grouping, value: Any) -> Key:
    if value is None:
        return None
    if by is Grouping.WEEKDAY:
        number = int(value)
        return 7 if number == 0 else number  # SQLite's %w: Sunday is 0; ISO: 7
    if by is Grouping.HOUR:
        return int(value)
    return str(value)


def _figures(sums: list[float]) -> Figures:
    named = dict(zip(_SUMS, sums, strict=True))

    def number(name: str) -> int:
        return round(named[name])

    def mean(total: str, count: str, digits: int) -> float | None:
        return round(named[total] / named[count], digits) if named[count] else None

    offered = number("offered")
    return Figures(
        calls=number("calls"),
        offered=offered,
        answered=number("answered"),
        answered_in_sl=number("answered_in_sl"),
        abandoned=number("abandoned"),
        service_level=_rate(number("answered_in_sl"), offered),
        asa_seconds=mean("wait_sum", "wait_count", 1),
        aht_seconds=mean("handling_sum", "handling_count", 1),
        abandon_rate=_rate(number("abandoned"), offered),
        self_service=number("self_service"),
        ended_in_menu=number("ended_in_menu"),
        callbacks=number("callbacks"),
        transfers=number("transfers"),
        survey_responses=number("survey_responses"),
        survey_average=mean("survey_sum", "survey_responses", 2),
    )


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


# -- what a report looks like outside --------------------------------------------------------


def report_json(report: Report) -> dict[str, Any]:
    query = report.query
    return {
        "from": query.start.isoformat(),
        "to": query.end.isoformat(),
        "by": query.by.value,
        "sl_seconds": query.sl_seconds,
        "product": query.product,
        "rows": [{"key": row.key, **_figures_json(row.figures)} for row in report.rows],
        "total": _figures_json(report.total),
    }


def _figures_json(figures: Figures) -> dict[str, Any]:
    return {name: getattr(figures, name) for name in FIGURE_NAMES}


NO_KEY = "(none)"  # a row of calls without the grouping's value (no theme, no adviser)
TOTAL_KEY = "(total)"


def report_csv(report: Report) -> str:
    """A header (the grouping, then every figure), a line per row, and the total last."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([report.query.by.value, *FIGURE_NAMES])
    for row in report.rows:
        writer.writerow([NO_KEY if row.key is None else row.key, *_cells(row.figures)])
    writer.writerow([TOTAL_KEY, *_cells(report.total)])
    return out.getvalue()


def _cells(figures: Figures) -> list[str]:
    return ["" if (v := getattr(figures, name)) is None else str(v) for name in FIGURE_NAMES]


def report_table(report: Report) -> str:
    """The report for people: aligned columns, rates as percentages."""
    header = [report.query.by.value, *_TABLE_COLUMNS]
    lines: list[Sequence[str]] = [header]
    for row in report.rows:
        lines.append([NO_KEY if row.key is None else str(row.key), *_table_cells(row.figures)])
    lines.append([TOTAL_KEY, *_table_cells(report.total)])
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    return "\n".join(
        "  ".join(
            cell.ljust(width) if i == 0 else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(line, widths, strict=True))
        ).rstrip()
        for line in lines
    )


_TABLE_COLUMNS = [
    "calls", "offered", "answered", "in_sl", "abandoned", "SL", "ASA s", "AHT s", "abandon",
    "self_service", "in_menu", "callbacks", "transfers", "surveys", "survey_avg",
]  # fmt: skip


def _table_cells(f: Figures) -> list[str]:
    def percent(value: float | None) -> str:
        return "-" if value is None else f"{value:.1%}"

    def plain(value: float | None) -> str:
        return "-" if value is None else f"{value:g}"

    return [
        str(f.calls), str(f.offered), str(f.answered), str(f.answered_in_sl), str(f.abandoned),
        percent(f.service_level), plain(f.asa_seconds), plain(f.aht_seconds),
        percent(f.abandon_rate), str(f.self_service), str(f.ended_in_menu), str(f.callbacks),
        str(f.transfers), str(f.survey_responses), plain(f.survey_average),
    ]  # fmt: skip
