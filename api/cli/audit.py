"""`kcc audit monitor`: the audit log of supervisors' monitoring (who listened to which call,
in which modes, when and how long), read from the database."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated

import typer


def _moment(text: str) -> datetime:
    """--from/--to: an ISO-8601 date or time; without an offset it is UTC."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise typer.BadParameter(
            f"{text!r} is not an ISO-8601 date or time, e.g. 2026-12-01"
        ) from exc
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _time(at: datetime | None) -> str:
    if at is None:
        return "-"
    return (at if at.tzinfo else at.replace(tzinfo=UTC)).strftime("%Y-%m-%d %H:%M:%S")


def register_audit_commands(audit_app: typer.Typer) -> None:
    @audit_app.command("monitor")
    def audit_monitor(
        start: Annotated[
            datetime | None,
            typer.Option("--from", parser=_moment, metavar="TIME", help="Started at or after."),
        ] = None,
        end: Annotated[
            datetime | None,
            typer.Option("--to", parser=_moment, metavar="TIME", help="Started before."),
        ] = None,
    ) -> None:
        """Every monitor session: when, who, which call, the modes, how it ended, how long."""
        from api.cli.main import _fail, _settings
        from api.database.schema import SchemaError, open_database
        from routing.monitor_log import SqlMonitorLog

        if start is not None and end is not None and end <= start:
            raise _fail("--to must be after --from", 2)
        try:
            engine = open_database(_settings().database_url)
        except SchemaError as exc:
            raise _fail(exc.message) from exc
        try:
            rows = SqlMonitorLog(engine).between(start, end)
        finally:
            engine.dispose()
        typer.echo("started (UTC)\tsupervisor\tcall\tadviser\tmodes\tended\thow\tseconds")
        for row in rows:
            modes = ">".join(m["mode"] for m in json.loads(row.modes))
            seconds = "-" if row.seconds is None else str(row.seconds)
            how = row.reason or row.state
            typer.echo(
                f"{_time(row.started_at)}\t{row.supervisor}\t{row.call_sid}\t{row.adviser}\t"
                f"{modes}\t{_time(row.ended_at)}\t{how}\t{seconds}"
            )
        typer.echo(f"{len(rows)} monitor session(s)")
