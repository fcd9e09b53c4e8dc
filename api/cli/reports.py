"""`kcc report`: call figures of a period (offered, answered, service level, ASA, AHT ...) from
the call records of the configured database, grouped as asked (ivr/reports.py, docs/reports.md)."""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Annotated

import typer

from ivr.reports import DEFAULT_SL_SECONDS, Grouping


class ReportFormat(StrEnum):
    TABLE = "table"
    CSV = "csv"
    JSON = "json"


def _fail(message: str, code: int) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def report(
    start: Annotated[
        str, typer.Option("--from", metavar="YYYY-MM-DD", help="First day (included).")
    ],
    end: Annotated[str, typer.Option("--to", metavar="YYYY-MM-DD", help="Last day (included).")],
    by: Annotated[
        str,
        typer.Option(
            metavar="GROUPING",
            help="One row per "
            + ", ".join(g.value for g in list(Grouping)[:-1])
            + f" or {list(Grouping)[-1].value}.",
        ),
    ] = Grouping.PRODUCT.value,
    sl_seconds: Annotated[
        int,
        typer.Option(
            metavar="SECONDS", help="Service level: answered within this many seconds (1-3600)."
        ),
    ] = DEFAULT_SL_SECONDS,
    product: Annotated[
        str | None, typer.Option(metavar="PRODUCT", help="Only the calls about this product.")
    ] = None,
    output: Annotated[
        ReportFormat,
        typer.Option("--format", help="Table for people, CSV for spreadsheets, JSON for programs."),
    ] = ReportFormat.TABLE,
) -> None:
    """Calls of a period from the call records (KCC_DATABASE_URL), per product, theme, day,
    hour, weekday, adviser or wrap-up code; days in the flow calendar's time zone."""
    from zoneinfo import ZoneInfo

    from sqlalchemy.exc import OperationalError

    from api.cli.main import _settings
    from api.database.schema import SchemaError, open_database
    from api.services import current_flow
    from flows.errors import FlowInvalid
    from ivr.reports import ReportInvalid, ReportQuery, report_csv, report_json, report_table
    from ivr.reports import run_report as run

    try:
        query = ReportQuery.parse(start, end, by, sl_seconds, product)
    except ReportInvalid as exc:
        raise _fail(exc.message, 2) from exc
    settings = _settings()
    try:
        zone = ZoneInfo(current_flow(settings).engine.flow.calendar.timezone)
        engine = open_database(settings.database_url)
    except SchemaError as exc:
        raise _fail(exc.message, 1) from exc
    except FlowInvalid as exc:
        raise _fail(f"the live flow is invalid: {exc.message}", 1) from exc
    except OperationalError as exc:
        raise _fail(f"cannot reach the database: {exc.orig}", 1) from exc
    try:
        result = run(engine, query, zone)
    finally:
        engine.dispose()
    if output is ReportFormat.JSON:
        typer.echo(json.dumps(report_json(result), indent=2))
    elif output is ReportFormat.CSV:
        typer.echo(report_csv(result), nl=False)
    else:
        typer.echo(report_table(result))


def register_report_command(app: typer.Typer) -> None:
    app.command()(report)
