"""`kcc forecast`: expected calls per weekday and hour from the call records of the last weeks,
with the advisers Erlang C needs per hour (ivr/forecast.py, docs/staffing.md)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated

import typer

from api.cli.staffing import OutputFormat

if TYPE_CHECKING:
    from ivr.forecast import Forecast

DAY_NAMES = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def _fail(message: str, code: int) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def forecast(
    # The defaults live in ivr/forecast.py, imported only when the command runs (it is slow to
    # import, and every `kcc` command would pay for it).
    weeks: Annotated[
        int | None,
        typer.Option(
            metavar="N",
            help="Full weeks of call records to average, 1-52 (default 8).",
            show_default=False,
        ),
    ] = None,
    target: Annotated[
        str | None,
        typer.Option(
            metavar="PERCENT/SECONDS",
            help="Service level to staff for (default 80/20: 80 % of calls answered within 20 s).",
            show_default=False,
        ),
    ] = None,
    handle_time: Annotated[
        float | None,
        typer.Option(
            metavar="SECONDS",
            help="Handling time (talk plus wrap-up) when no record has one (default 300).",
            show_default=False,
        ),
    ] = None,
    output: Annotated[
        OutputFormat, typer.Option("--format", help="Table for people, JSON for programs.")
    ] = OutputFormat.TABLE,
) -> None:
    """Expected calls per weekday and opening hour, and the advisers needed (Erlang C)."""
    from sqlalchemy.exc import OperationalError

    from api.cli.main import _settings
    from api.database.schema import SchemaError, open_database
    from api.services import current_flow
    from flows.errors import FlowInvalid
    from ivr.forecast import (
        DEFAULT_HANDLE_SECONDS,
        DEFAULT_TARGET,
        DEFAULT_WEEKS,
        ForecastInputError,
        checked_handle_seconds,
        checked_weeks,
        forecast_json,
        parse_target,
    )
    from ivr.forecast import forecast as make_forecast
    from routing.clock import Clock, ShiftedClock, SystemClock

    weeks = DEFAULT_WEEKS if weeks is None else weeks
    handle_time = DEFAULT_HANDLE_SECONDS if handle_time is None else handle_time
    try:
        checked_weeks(weeks)
        wanted = parse_target(DEFAULT_TARGET if target is None else target)
        checked_handle_seconds(handle_time)
    except ForecastInputError as exc:
        raise _fail(exc.message, 2) from exc
    settings = _settings()
    clock: Clock = ShiftedClock(settings.now) if settings.now else SystemClock()
    try:
        hours = current_flow(settings).engine.hours
        engine = open_database(settings.database_url)
    except SchemaError as exc:
        raise _fail(exc.message, 1) from exc
    except FlowInvalid as exc:
        raise _fail(
            f"the flow {settings.flow} is invalid; its calendar is needed: {exc}", 1
        ) from exc
    except OperationalError as exc:
        raise _fail(f"cannot reach the database: {exc.orig}", 1) from exc
    try:
        result = make_forecast(
            engine,
            hours,
            now=clock.now(),
            weeks=weeks,
            target=wanted,
            default_handle_seconds=handle_time,
        )
    finally:
        engine.dispose()
    if output is OutputFormat.JSON:
        typer.echo(json.dumps(forecast_json(result), indent=2))
    else:
        typer.echo(forecast_table(result))


def forecast_table(result: Forecast) -> str:
    """Hours down, weekdays across, each cell "calls / advisers"; what it is based on above."""
    from ivr.forecast import HandleTimeSource

    if result.handle_source is HandleTimeSource.RECORDS:
        handling = (
            f"handling time {result.handle_seconds:.0f} s "
            f"(mean of {result.handled_calls} answered calls)"
        )
    else:
        handling = f"handling time {result.handle_seconds:g} s (default: no record has one)"
    lines = [
        f"{result.weeks} weeks {result.first_day.isoformat()} .. {result.last_day.isoformat()}, "
        f"target {result.target}, {handling}",
        "cells: calls offered to advisers per hour / advisers needed",
    ]
    days = sorted({cell.weekday for cell in result.cells})
    hours = sorted({cell.hour for cell in result.cells})
    by_place = {(cell.weekday, cell.hour): cell for cell in result.cells}
    rows: list[list[str]] = [["hour", *(DAY_NAMES[day - 1] for day in days)]]
    for hour in hours:
        row = [f"{hour:02d}:00"]
        for day in days:
            cell = by_place.get((day, hour))
            row.append("closed" if cell is None else f"{cell.calls_per_hour:.1f} / {cell.advisers}")
        rows.append(row)
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines.extend(
        "  ".join(
            cell.ljust(width) if i == 0 else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        ).rstrip()
        for row in rows
    )
    offered = sum(cell.calls_per_hour for cell in result.cells)
    incoming = sum(cell.incoming_per_hour for cell in result.cells)
    lines.append(
        f"a week: {incoming:.1f} calls coming in during opening hours, "
        f"{offered:.1f} of them offered to advisers"
    )
    peak = result.peak
    if peak is None:
        lines.append("no calls offered to advisers in these weeks")
    else:
        lines.append(
            f"peak: {DAY_NAMES[peak.weekday - 1]} {peak.hour:02d}:00, "
            f"{peak.calls_per_hour:.1f} calls, {peak.advisers} advisers"
        )
    return "\n".join(lines)


def register_forecast_command(app: typer.Typer) -> None:
    app.command()(forecast)
